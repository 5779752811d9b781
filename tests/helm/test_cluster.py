"""The rendered chart on the real API server: it applies, RBAC allows exactly what the
operator and the sidecar use, and every pod the chart makes passes Pod Security
`restricted`."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from emailsettings.devstack.kubectl import Kubectl

from .conftest import CHART, Names, Rendered

pytestmark = pytest.mark.kube

APPLIED = ("settings", "namespaced-ha", "cluster-ha")
# The Prometheus Operator's CRD is not part of this project or its test cluster.
NOT_APPLIED = {"ServiceMonitor"}
FIELD_MANAGER = "emailsettings-chart-test"


def _apply(kubectl: Kubectl, docs: list[dict[str, Any]]) -> None:
    if docs:
        kubectl.apply(
            *docs,
            extra=("--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}"),
        )


@pytest.fixture(scope="module")
def applied(
    kubectl: Kubectl, helm_namespaces: Names, renders: dict[str, Rendered]
) -> Iterator[dict[str, Rendered]]:
    """Server-side apply of three rendered releases: CRDs first, then everything else."""
    releases = {name: renders[name] for name in APPLIED}
    crds = [d for r in releases.values() for d in r.all("CustomResourceDefinition")]
    _apply(kubectl, crds)
    for crd in {c["metadata"]["name"] for c in crds}:
        kubectl.run("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    for rendered in releases.values():
        skip = {"CustomResourceDefinition", *NOT_APPLIED}
        _apply(kubectl, [d for d in rendered.docs if d["kind"] not in skip])
    yield releases
    for rendered in releases.values():
        cluster_scoped = [
            d for d in rendered.docs if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}
        ]
        for doc in cluster_scoped:
            kubectl.run("delete", doc["kind"], doc["metadata"]["name"], check=False)
        for doc in rendered.all("ClusterKopfPeering"):
            kubectl.run("delete", "clusterkopfpeering", doc["metadata"]["name"], check=False)


def test_rendered_manifests_apply(kubectl: Kubectl, applied: dict[str, Rendered]) -> None:
    for rendered in applied.values():
        docs = [d for d in rendered.docs if d["kind"] not in NOT_APPLIED]
        text = yaml.safe_dump_all(docs)
        found = kubectl.run("get", "-f", "-", "-o", "name", stdin=text).stdout.split()
        assert len(found) == len(docs), rendered.value_set


def _operator_account(rendered: Rendered) -> str:
    return f"system:serviceaccount:{rendered.namespace}:{rendered.release}-emailsettings-operator"


def _attributes(verb: str, resource: str, *flags: str) -> dict[str, str]:
    """`kubectl auth can-i` arguments as SubjectAccessReview resourceAttributes."""
    resource, _, name = resource.partition("/")
    plural, _, group = resource.partition(".")
    attributes = {"verb": verb, "resource": plural, "group": group, "name": name}
    args = iter(flags)
    for flag in args:
        if flag == "-n":
            attributes["namespace"] = next(args)
        elif flag.startswith("--subresource="):
            attributes["subresource"] = flag.split("=", 1)[1]
        elif flag == "--all-namespaces":
            attributes["namespace"] = ""
        else:
            raise AssertionError(f"unknown flag {flag}")
    return attributes


def _can_all(kubectl: Kubectl, who: str, requests: Sequence[tuple[str, ...]]) -> list[bool]:
    """Answers for many requests in one round trip: SubjectAccessReviews for the account
    (with its groups, as impersonation by `kubectl auth can-i --as` would carry)."""
    _, _, namespace, _ = who.split(":")
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    reviews = [
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": who,
                "groups": [*groups, "system:authenticated"],
                "resourceAttributes": _attributes(*request),
            },
        }
        for request in requests
    ]
    out = kubectl.run("create", "-f", "-", "-o", "json", stdin=yaml.safe_dump_all(reviews))
    decoder, text = json.JSONDecoder(), out.stdout
    answers: list[bool] = []
    position = 0
    while True:  # kubectl prints one JSON document per review, back to back
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            break
        item, position = decoder.raw_decode(text, position)
        answers.append(bool(item["status"]["allowed"]))
    assert len(answers) == len(requests)
    return answers


def _check(
    kubectl: Kubectl,
    who: str,
    allowed: Sequence[tuple[str, ...]],
    denied: Sequence[tuple[str, ...]],
) -> None:
    answers = _can_all(kubectl, who, [*allowed, *denied])
    wrong_denials = [r for r, a in zip(allowed, answers, strict=False) if not a]
    wrong_grants = [r for r, a in zip(denied, answers[len(allowed) :], strict=True) if a]
    assert not wrong_denials, f"{who} needs but lacks {wrong_denials}"
    assert not wrong_grants, f"{who} must not have {wrong_grants}"
    # The reviews answer as `kubectl auth can-i --as` does: cross-check one of each kind.
    for request, expected in ((allowed[0], True), (denied[0], False)):
        result = kubectl.run("auth", "can-i", *request, f"--as={who}", check=False)
        assert result.stdout.strip() == ("yes" if expected else "no"), (request, result)


# (verb, resource, extra flags): everything the operator does in a watched namespace.
OPERATOR_NEEDS = [
    ("get", "emailsettings.emailsettings.io"),
    ("list", "emailsettings.emailsettings.io"),
    ("watch", "emailsettings.emailsettings.io"),
    ("get", "emailsettings.emailsettings.io", "--subresource=status"),
    ("patch", "emailsettings.emailsettings.io", "--subresource=status"),
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("get", "configmaps"),
    ("list", "configmaps"),
    ("watch", "configmaps"),
    ("create", "events"),
    ("patch", "events"),
    ("create", "events.events.k8s.io"),
    ("patch", "events.events.k8s.io"),
]
# What it must never be able to do, even in a watched namespace.
OPERATOR_DENIED = [
    ("create", "secrets"),
    ("update", "secrets"),
    ("patch", "secrets"),
    ("delete", "secrets"),
    ("create", "configmaps"),
    ("patch", "emailsettings.emailsettings.io"),  # never writes the spec
    ("update", "emailsettings.emailsettings.io"),
    ("create", "emailsettings.emailsettings.io"),
    ("delete", "emailsettings.emailsettings.io"),
    ("update", "emailsettings.emailsettings.io", "--subresource=status"),
    ("list", "pods"),
    ("create", "pods"),
    ("get", "serviceaccounts", "--subresource=token"),
    ("create", "kopfpeerings.kopf.dev"),
    ("delete", "kopfpeerings.kopf.dev"),
]


def test_operator_rbac_namespaced_mode(
    kubectl: Kubectl, applied: dict[str, Rendered], names: Names
) -> None:
    rendered = applied["namespaced-ha"]
    peering = f"{rendered.release}-emailsettings-operator"
    allowed: list[tuple[str, ...]] = []
    denied: list[tuple[str, ...]] = []
    for namespace in names.watched:
        ns = ("-n", namespace)
        allowed += [(*request, *ns) for request in OPERATOR_NEEDS]
        allowed += [(verb, "kopfpeerings.kopf.dev", *ns) for verb in ("get", "list", "watch")]
        allowed.append(("patch", f"kopfpeerings.kopf.dev/{peering}", *ns))
        denied.append(("patch", "kopfpeerings.kopf.dev/other", *ns))
        denied += [(*request, *ns) for request in OPERATOR_DENIED]
    # Outside the watched namespaces (the release's own is not watched here): nothing.
    for namespace in (names.outside, names.release_namespace):
        for verb in ("get", "list", "watch"):
            denied.append((verb, "secrets", "-n", namespace))
            denied.append((verb, "configmaps", "-n", namespace))
            denied.append((verb, "emailsettings.emailsettings.io", "-n", namespace))
    for verb in ("get", "list", "watch"):
        denied.append((verb, "secrets", "--all-namespaces"))
        denied.append((verb, "customresourcedefinitions.apiextensions.k8s.io"))
        denied.append((verb, "namespaces"))
    denied.append(("patch", f"clusterkopfpeerings.kopf.dev/{peering}"))
    _check(kubectl, _operator_account(rendered), allowed, denied)


def test_operator_rbac_cluster_mode(
    kubectl: Kubectl, applied: dict[str, Rendered], names: Names
) -> None:
    rendered = applied["cluster-ha"]
    peering = f"{rendered.release}-emailsettings-operator"
    allowed: list[tuple[str, ...]] = []
    denied: list[tuple[str, ...]] = []
    for namespace in (*names.watched, names.outside):
        allowed += [(*request, "-n", namespace) for request in OPERATOR_NEEDS]
        denied += [(*request, "-n", namespace) for request in OPERATOR_DENIED]
    for verb in ("list", "watch"):
        allowed.append((verb, "secrets", "--all-namespaces"))
        allowed.append((verb, "emailsettings.emailsettings.io", "--all-namespaces"))
        allowed.append((verb, "clusterkopfpeerings.kopf.dev"))
    allowed.append(("patch", f"clusterkopfpeerings.kopf.dev/{peering}"))
    denied += [
        ("patch", "clusterkopfpeerings.kopf.dev/other"),
        ("create", "clusterkopfpeerings.kopf.dev"),
        ("get", "customresourcedefinitions.apiextensions.k8s.io"),
        ("list", "namespaces"),
        ("create", "secrets", "--all-namespaces"),
        ("patch", "secrets", "--all-namespaces"),
    ]
    _check(kubectl, _operator_account(rendered), allowed, denied)


def test_sidecar_rbac_reads_one_emailsettings(
    kubectl: Kubectl, applied: dict[str, Rendered]
) -> None:
    rendered = applied["settings"]
    namespace = rendered.namespace
    who = f"system:serviceaccount:{namespace}:{rendered.release}-emailsettings-operator-notifier"
    ns = ("-n", namespace)
    resource = "emailsettings.emailsettings.io"
    allowed = [(verb, f"{resource}/default", *ns) for verb in ("get", "list", "watch")]
    denied: list[tuple[str, ...]] = [("list", resource, *ns)]  # not the whole collection
    for verb in ("get", "list", "watch"):
        denied.append((verb, f"{resource}/other", *ns))
        denied.append((verb, "secrets", *ns))  # the password is a mounted file
        denied.append((verb, "secrets/default-smtp-password", *ns))
    denied += [(verb, f"{resource}/default", *ns) for verb in ("patch", "update", "delete")]
    denied.append(("patch", f"{resource}/default", "--subresource=status", *ns))
    _check(kubectl, who, allowed, denied)
    # The sidecar's real access pattern: list/watch with a metadata.name field selector.
    allowed_list = kubectl.run(
        "get", resource, *ns, "--field-selector=metadata.name=default", f"--as={who}"
    )
    assert "default" in allowed_list.stdout
    denied_list = kubectl.run("get", resource, *ns, f"--as={who}", check=False)
    assert denied_list.returncode != 0
    assert "forbidden" in denied_list.stderr.lower()


def test_sidecar_rbac_api_password_reads_one_secret(
    kubectl: Kubectl, applied: dict[str, Rendered], names: Names
) -> None:
    rendered = applied["namespaced-ha"]
    namespace = names.watched[0]
    who = f"system:serviceaccount:{namespace}:{rendered.release}-emailsettings-operator-notifier"
    ns = ("-n", namespace)
    allowed = [
        ("get", "secrets/smtp-credentials", *ns),
        ("watch", "emailsettings.emailsettings.io/app-mail", *ns),
    ]
    denied = [
        ("get", "secrets/other", *ns),
        ("list", "secrets", *ns),
        ("watch", "secrets/smtp-credentials", *ns),
        ("update", "secrets/smtp-credentials", *ns),
        ("get", "secrets/smtp-credentials", "-n", names.watched[1]),
    ]
    _check(kubectl, who, allowed, denied)


def _pods(rendered: Rendered) -> list[tuple[str, dict[str, Any]]]:
    """Every pod the chart makes: Deployment templates and the helm test Pod."""
    pods: list[tuple[str, dict[str, Any]]] = []
    for deployment in rendered.all("Deployment"):
        template = copy.deepcopy(deployment["spec"]["template"])
        name = deployment["metadata"]["name"]
        pods.append((name, {**template, "metadata": {**template["metadata"], "name": name}}))
    pods.extend((pod["metadata"]["name"], copy.deepcopy(pod)) for pod in rendered.all("Pod"))
    return pods


def _dry_run_pod(kubectl: Kubectl, namespace: str, pod: dict[str, Any]) -> Any:
    document = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod["metadata"]["name"],
            "namespace": namespace,
            "labels": pod["metadata"].get("labels", {}),
        },
        "spec": pod["spec"],
    }
    return kubectl.run(
        "create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(document), check=False
    )


@pytest.mark.parametrize("value_set", ["defaults", "settings", "cluster-ha", "namespaced-ha"])
def test_pods_admitted_under_restricted_pod_security(
    kubectl: Kubectl, helm_namespaces: Names, renders: dict[str, Rendered], value_set: str
) -> None:
    pods = _pods(renders[value_set])
    assert pods
    for name, pod in pods:
        result = _dry_run_pod(kubectl, helm_namespaces.restricted, pod)
        assert result.returncode == 0, (name, result.stderr)
        assert "Warning" not in result.stderr, (name, result.stderr)


def test_restricted_namespace_really_enforces(kubectl: Kubectl, helm_namespaces: Names) -> None:
    """The control for the test above: a pod without the hardening is rejected."""
    pod = {
        "metadata": {"name": "unhardened"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    result = _dry_run_pod(kubectl, helm_namespaces.restricted, pod)
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr


def _api_access(kubectl: Kubectl) -> tuple[str, str, str]:
    config = yaml.safe_load(kubectl.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    server = cluster["server"].removeprefix("https://")
    host, _, port = server.rpartition(":")
    return host, port, cluster["certificate-authority"]


def _wait_ready(
    kubectl: Kubectl, rendered: Rendered, tmp_path: Path, name: str, timeout: int
) -> subprocess.Popen[str]:
    account = f"{rendered.release}-emailsettings-operator-test"
    token = kubectl.run("create", "token", account, "-n", rendered.namespace).stdout.strip()
    token_file = tmp_path / "token"
    token_file.write_text(token)
    host, port, ca_file = _api_access(kubectl)
    env = {
        **os.environ,
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "EMAILSETTINGS_TOKEN_FILE": str(token_file),
        "EMAILSETTINGS_CA_FILE": ca_file,
        "EMAILSETTINGS_NAME": name,
        "EMAILSETTINGS_NAMESPACE": rendered.namespace,
        "EMAILSETTINGS_TIMEOUT_SECONDS": str(timeout),
    }
    return subprocess.Popen(
        [sys.executable, str(CHART / "files" / "wait-ready.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _set_ready(kubectl: Kubectl, namespace: str, name: str, status: str) -> None:
    current = kubectl.get_json("emailsettings", name, "-n", namespace)
    generation = current["metadata"]["generation"]
    condition = {
        "type": "Ready",
        "status": status,
        "reason": "Verified" if status == "True" else "ConnectionRefused",
        "message": "test",
        "observedGeneration": generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    patch = {"status": {"observedGeneration": generation, "conditions": [condition]}}
    kubectl.run(
        "patch",
        "emailsettings",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        yaml.safe_dump(patch),
    )


def test_helm_test_script_waits_for_ready(
    kubectl: Kubectl, applied: dict[str, Rendered], tmp_path: Path
) -> None:
    """The helm test hook's script, under the hook's own account, against the API server."""
    rendered = applied["settings"]
    # Not Ready: it watches and gives up at its deadline with status 1.
    _set_ready(kubectl, rendered.namespace, "default", "False")
    waiting = _wait_ready(kubectl, rendered, tmp_path, "default", timeout=2)
    out, _ = waiting.communicate(timeout=30)
    assert waiting.returncode == 1, out
    assert "not Ready in time" in out
    # Becomes Ready while it watches: it returns 0 on that event.
    waiting = _wait_ready(kubectl, rendered, tmp_path, "default", timeout=60)
    assert waiting.stdout is not None
    first = waiting.stdout.readline()  # the listing has been read; the watch follows
    assert "Ready=False" in first
    _set_ready(kubectl, rendered.namespace, "default", "True")
    out, _ = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, first + out
    # Its account reads only that one object.
    denied = _wait_ready(kubectl, rendered, tmp_path, "another", timeout=5)
    out, _ = denied.communicate(timeout=30)
    assert denied.returncode == 2, out
    assert "403" in out
