#!/usr/bin/env bash
# Builds the real Kubernetes and tool binaries the tests run against, from the
# Go module proxy, into a cache outside the repository. Each machine builds once;
# later calls only check the cache. Override versions or the cache with env vars.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.17}"
HELM_VERSION="${HELM_VERSION:-3.22.0}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-0.7.0}"
CACHE_ROOT="${EMAILSETTINGS_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/emailsettings-operator}"
BIN_DIR="$CACHE_ROOT/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION-kubeconform-$KUBECONFORM_VERSION"
WORK_DIR="$CACHE_ROOT/build"
K8S_MINOR="$(echo "$K8S_VERSION" | cut -d. -f2)"
K8S_PATCH="$(echo "$K8S_VERSION" | cut -d. -f3)"
STAGING_VERSION="v0.$K8S_MINOR.$K8S_PATCH"

say() { printf '[build-binaries] %s\n' "$*" >&2; }
fail() {
  say "FAILED: $1"
  say "what to do: check that 'go version' works and the Go module proxy answers"
  say "(go env GOPROXY), then run 'bash hack/build-binaries.sh' again; the log is above."
  say "Or point the tests at your own binaries: see docs/testing.md (EMAILSETTINGS_KUBE_APISERVER etc.)."
  exit 1
}

command -v go >/dev/null || fail "no 'go' on PATH: install Go >= 1.26"
mkdir -p "$BIN_DIR" "$WORK_DIR"

need=()
for b in kube-apiserver kubectl etcd helm kubeconform; do
  [ -x "$BIN_DIR/$b" ] || need+=("$b")
done
if [ ${#need[@]} -eq 0 ]; then
  echo "$BIN_DIR"
  exit 0
fi
say "building ${need[*]} into $BIN_DIR"
say "this takes 10-30 minutes on a new 2-core machine; later runs reuse the cache."

export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

build_kubernetes() {
  local dir="$WORK_DIR/kubernetes-$K8S_VERSION"
  mkdir -p "$dir"
  say "kubernetes v$K8S_VERSION: writing a wrapper module that pins every staging module to $STAGING_VERSION"
  (
    cd "$dir"
    rm -f go.mod go.sum
    local gomod
    gomod="$(cd / && GOFLAGS= go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    [ -f "$gomod" ] || { say "could not download k8s.io/kubernetes@v$K8S_VERSION's go.mod"; exit 1; }
    {
      echo "module emailsettings.local/kubebuild"
      echo
      echo "go 1.26"
      echo
      echo "require k8s.io/kubernetes v$K8S_VERSION"
      echo
      echo "replace ("
      grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}' | grep -v sample-cli-plugin |
        while read -r m; do echo "	$m => $m $STAGING_VERSION"; done
      echo ")"
    } > go.mod
    cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    say "kubernetes: resolving modules (downloads ~300 MB once)"
    go mod tidy -e >/dev/null 2>&1 || go mod tidy
    local pkg="k8s.io/component-base/version"
    local cgo="k8s.io/client-go/pkg/version"
    local ld="-s -w"
    for p in $pkg $cgo; do
      ld="$ld -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$K8S_MINOR -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    say "kubernetes: compiling kube-apiserver and kubectl"
    go build -trimpath -ldflags "$ld" -o "$BIN_DIR/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
  ) || fail "building kube-apiserver/kubectl v$K8S_VERSION"
}

build_etcd() {
  local dir="$WORK_DIR/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  say "etcd v$ETCD_VERSION: wrapper module around go.etcd.io/etcd/server/v3"
  (
    cd "$dir"
    cat > go.mod <<MOD
module emailsettings.local/etcdbuild

go 1.26

require (
	go.etcd.io/etcd/server/v3 v$ETCD_VERSION
	go.etcd.io/etcd/api/v3 v$ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 v$ETCD_VERSION
	go.etcd.io/etcd/client/v3 v$ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 v$ETCD_VERSION
)
MOD
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    go mod tidy -e >/dev/null 2>&1 || go mod tidy
    go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd" go.etcd.io/etcd/server/v3
  ) || fail "building etcd v$ETCD_VERSION"
}

build_helm() {
  say "helm v$HELM_VERSION (Kubernetes version for templates set to 1.$K8S_MINOR)"
  local dir="$WORK_DIR/helm-$HELM_VERSION"
  mkdir -p "$dir"
  (
    cd "$dir"
    GOBIN="$BIN_DIR" go install -trimpath -ldflags "-s -w \
      -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION \
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$K8S_MINOR \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$K8S_MINOR" \
      "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  ) || fail "building helm v$HELM_VERSION"
}

build_kubeconform() {
  say "kubeconform v$KUBECONFORM_VERSION"
  GOBIN="$BIN_DIR" go install -trimpath -ldflags "-s -w" \
    "github.com/yannh/kubeconform/cmd/kubeconform@v$KUBECONFORM_VERSION" || fail "building kubeconform"
}

for b in "${need[@]}"; do
  case "$b" in
    kube-apiserver) build_kubernetes ;;
    kubectl) [ -x "$BIN_DIR/kubectl" ] || build_kubernetes ;;
    etcd) build_etcd ;;
    helm) build_helm ;;
    kubeconform) build_kubeconform ;;
  esac
done
say "done: $(ls "$BIN_DIR" | tr '\n' ' ')"
echo "$BIN_DIR"
