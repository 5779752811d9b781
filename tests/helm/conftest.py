"""The chart rendered once per value set, and offline schemas for kubeconform."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from emailsettings.devstack import binaries
from emailsettings.devstack.kubectl import Kubectl

from . import schemas

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "emailsettings-operator"
RELEASE_PREFIX = "es"


@dataclass(frozen=True)
class Names:
    """Per-session names, so a run never meets objects of an earlier one."""

    run: str

    @property
    def release_namespace(self) -> str:
        return f"es-system-{self.run}"

    @property
    def watched(self) -> tuple[str, str]:
        return (f"es-apps-a-{self.run}", f"es-apps-b-{self.run}")

    @property
    def outside(self) -> str:
        return f"es-outside-{self.run}"

    @property
    def restricted(self) -> str:
        return f"es-restricted-{self.run}"

    def release(self, value_set: str) -> str:
        return f"{RELEASE_PREFIX}-{value_set}-{self.run}"


def value_sets(names: Names) -> dict[str, dict[str, Any]]:
    """The value sets every render-level test runs against."""
    app_a, app_b = names.watched
    return {
        # Chart defaults: namespaced mode on the release namespace, one replica.
        "defaults": {},
        # Settings from values (seed-style strings), the sidecar account and example
        # workload, metrics with a ServiceMonitor; namespaced mode.
        "settings": {
            "emailSettings": {
                "create": True,
                "smtp": {
                    "host": "mail.example.com",
                    "port": 465,
                    "encryption": "TLS",
                    "username": "notifier@example.com",
                    "password": {"value": "s3cret"},
                    "tls": {"caBundleRef": {"kind": "ConfigMap", "name": "smtp-ca"}},
                },
                "sender": "Ops Team <notifier@example.com>",
                "recipients": {
                    "administrative": "admin@example.com; ops@example.com",
                    "error": ["dev@example.com", "oncall@example.com, lead@example.com"],
                    "support": "",
                },
                "verification": {"mode": "VerifyAndSave", "interval": "30m"},
            },
            "sidecar": {"rbac": {"create": True}, "exampleWorkload": {"enabled": True}},
            "metrics": {"service": {"enabled": True}, "serviceMonitor": {"enabled": True}},
        },
        # Cluster mode, three replicas with peering, a stricter PDB.
        "cluster-ha": {
            "watch": {"allNamespaces": True},
            "operator": {"replicas": 3, "logFormat": "text"},
            "podDisruptionBudget": {"minAvailable": 2},
            "metrics": {"service": {"enabled": True}},
        },
        # Two watched namespaces (not the release's), two replicas with peering, settings
        # in one of them with an existing Secret read by the sidecar through the API.
        "namespaced-ha": {
            "watch": {"namespaces": [app_a, app_b]},
            "operator": {"replicas": 2},
            "emailSettings": {
                "create": True,
                "name": "app-mail",
                "namespace": app_a,
                "smtp": {
                    "host": "smtp.example.org",
                    "password": {"existingSecret": "smtp-credentials", "key": "token"},
                    "username": "app",
                },
                "sender": "app@example.org",
                "recipients": {"support": ["help@example.org"]},
                "verification": {"mode": "Save"},
            },
            "sidecar": {"rbac": {"create": True}, "passwordFrom": "api"},
        },
        # Everything optional off: CRDs, account and RBAC managed elsewhere.
        "minimal": {
            "crds": {"enabled": False},
            "serviceAccount": {"create": False, "name": "preexisting"},
            "rbac": {"create": False},
            "podDisruptionBudget": {"enabled": False},
            "tests": {"enabled": False},
        },
    }


@dataclass
class Rendered:
    value_set: str
    release: str
    namespace: str
    values: dict[str, Any]
    text: str
    docs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.docs = [d for d in yaml.safe_load_all(self.text) if d]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} named {name} in {self.value_set}"
        return found[0]

    def hooks(self, hook: str) -> list[dict[str, Any]]:
        return [
            d
            for d in self.docs
            if hook in (d["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
        ]


def tool(name: str) -> str:
    return str(binaries.find(name))


def helm(*args: str, check: bool = True, kubeconfig: Path | None = None) -> str:
    argv = [tool("helm"), *args]
    if kubeconfig is not None:
        argv.append(f"--kubeconfig={kubeconfig}")
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout if check else result.stdout + result.stderr


def render(
    names: Names, value_set: str, values: dict[str, Any], tmp: Path, *extra: str
) -> Rendered:
    values_file = tmp / f"{value_set}.values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    release = names.release(value_set)
    text = helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        names.release_namespace,
        "--values",
        str(values_file),
        *extra,
    )
    return Rendered(value_set, release, names.release_namespace, values, text)


@pytest.fixture(scope="session")
def names() -> Names:
    return Names(uuid.uuid4().hex[:6])


@pytest.fixture(scope="session")
def all_values(names: Names) -> dict[str, dict[str, Any]]:
    return value_sets(names)


@pytest.fixture(scope="session")
def renders(
    names: Names, all_values: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Rendered]:
    tmp = tmp_path_factory.mktemp("helm-values")
    return {name: render(names, name, values, tmp) for name, values in all_values.items()}


@pytest.fixture(scope="session")
def offline_schemas(
    kubectl: Kubectl, renders: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Kubernetes schemas of the running API server, plus every CRD the chart installs."""
    out = tmp_path_factory.mktemp("kubeconform-schemas")
    openapi = json.loads(kubectl.run("get", "--raw", "/openapi/v2").stdout)
    assert schemas.write_kubernetes_schemas(openapi, out) > 100
    # EmailSettings: the schema exported from the API models next to the CRD, if present.
    exported = REPO / "crds" / "jsonschema"
    for path in exported.rglob("*.json") if exported.is_dir() else ():
        target = out / path.relative_to(exported)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    # The CRDs in crds/ (for any kind without an exported schema) and kopf's peering CRDs.
    crds = [d for d in yaml.safe_load_all(_crd_sources()) if d]
    crds += [d for r in renders.values() for d in r.all("CustomResourceDefinition")]
    for crd in crds:
        for version in crd["spec"]["versions"]:
            spec = crd["spec"]
            path = schemas.schema_path(out, spec["group"], version["name"], spec["names"]["kind"])
            if not path.exists():
                schemas.write_crd_schema(crd, out)
    return out


def _crd_sources() -> str:
    return "\n---\n".join(p.read_text() for p in sorted((REPO / "crds").glob("*.yaml")))


@pytest.fixture(scope="session")
def helm_namespaces(kubectl: Kubectl, names: Names) -> Iterator[Names]:
    """The release, watched, outside and restricted namespaces, created once."""
    created = [names.release_namespace, *names.watched, names.outside, names.restricted]
    for namespace in created:
        kubectl.run("create", "namespace", namespace)
    kubectl.run(
        "label",
        "namespace",
        names.restricted,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    yield names
    for namespace in created:
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)
