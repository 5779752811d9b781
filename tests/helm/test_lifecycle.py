"""helm install, upgrade, uninstall and install again, with the real helm, on a fresh
API server of its own (a cluster that has never seen the CRDs, which the shared one
cannot promise). No kubelet runs, so pods never start and `helm test` is not run here;
tests/helm/test_cluster.py runs the test hook's script instead."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from emailsettings.devstack.controlplane import ControlPlane
from emailsettings.devstack.kubectl import Kubectl

from .conftest import CHART, helm

pytestmark = pytest.mark.kube

RELEASE = "mail"
NAMESPACE = "emailsettings-system"
VALUES: dict[str, Any] = {
    "operator": {"replicas": 2},
    "emailSettings": {
        "create": True,
        "smtp": {"host": "mail.example.com", "username": "u", "password": {"value": "pw"}},
        "sender": "Ops <ops@example.com>",
        "recipients": {"administrative": "admin@example.com; ops@example.com"},
    },
}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    plane = ControlPlane(tmp_path_factory.mktemp("fresh-controlplane"))
    plane.start()
    try:
        kubectl = Kubectl(plane.kubeconfig)
        kubectl.run("create", "namespace", NAMESPACE)
        yield kubectl
    finally:
        plane.stop()


def _helm(kubectl: Kubectl, *args: str) -> str:
    return helm(*args, "--namespace", NAMESPACE, kubeconfig=kubectl.kubeconfig)


def _annotations(kubectl: Kubectl, *what: str) -> dict[str, str]:
    obj = kubectl.get_json(*what, "-n", NAMESPACE)
    return dict(obj["metadata"].get("annotations") or {})


def _kinds(manifest: str) -> set[str]:
    return {d["kind"] for d in yaml.safe_load_all(manifest) if d}


def test_install_upgrade_uninstall_reinstall(fresh: Kubectl, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(VALUES))

    # First install into a cluster without the CRDs: the custom resources come after
    # them as post-install hooks, already carrying Helm's ownership metadata.
    notes = _helm(fresh, "install", RELEASE, str(CHART), "--values", str(values))
    assert "wait --for=condition=Ready emailsettings/default" in notes
    assert f"helm test {RELEASE} -n {NAMESPACE}" in notes
    assert "post-install hook" in notes
    assert "kopf peering" in notes
    fresh.run("get", "crd/emailsettings.emailsettings.io", "crd/kopfpeerings.kopf.dev")
    settings = fresh.get_json("emailsettings", "default", "-n", NAMESPACE)
    assert settings["spec"]["recipients"]["administrative"] == [
        "admin@example.com",
        "ops@example.com",
    ]
    assert settings["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    fresh.run("get", "kopfpeering", f"{RELEASE}-emailsettings-operator", "-n", NAMESPACE)
    manifest = _helm(fresh, "get", "manifest", RELEASE)
    assert "EmailSettings" not in _kinds(manifest)
    assert {"CustomResourceDefinition", "Deployment", "Secret", "Role"} <= _kinds(manifest)

    # First upgrade: Helm would adopt the hook-made EmailSettings without patching it,
    # so the chart replaces it once (pre-upgrade hook) from the new values.
    first_uid = settings["metadata"]["uid"]
    _helm(
        fresh,
        "upgrade",
        RELEASE,
        str(CHART),
        "--values",
        str(values),
        "--set",
        "emailSettings.sender=Mail <mail@example.com>",
    )
    settings = fresh.get_json("emailsettings", "default", "-n", NAMESPACE)
    assert settings["spec"]["sender"] == "Mail <mail@example.com>"
    assert "emailsettings.io/created-by" not in settings["metadata"]["annotations"]
    assert settings["metadata"]["uid"] != first_uid
    assert {"EmailSettings", "KopfPeering"} <= _kinds(_helm(fresh, "get", "manifest", RELEASE))

    # Later upgrades patch it in place, like any release object.
    second_uid = settings["metadata"]["uid"]
    _helm(
        fresh,
        "upgrade",
        RELEASE,
        str(CHART),
        "--values",
        str(values),
        "--set",
        "emailSettings.sender=Alerts <alerts@example.com>",
    )
    settings = fresh.get_json("emailsettings", "default", "-n", NAMESPACE)
    assert settings["spec"]["sender"] == "Alerts <alerts@example.com>"
    assert settings["metadata"]["uid"] == second_uid
    history = json.loads(_helm(fresh, "history", RELEASE, "-o", "json"))
    assert [h["status"] for h in history] == ["superseded", "superseded", "deployed"]

    # Uninstall: the release's objects go, the CRDs stay (crds.keep, kopf's are shared).
    _helm(fresh, "uninstall", RELEASE, "--wait", "--timeout", "60s")
    assert fresh.get_json("deployments", "-n", NAMESPACE)["items"] == []
    assert fresh.get_json("emailsettings", "-n", NAMESPACE)["items"] == []
    crds = fresh.get_json("crd/emailsettings.emailsettings.io")
    assert crds["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    fresh.run("get", "crd/kopfpeerings.kopf.dev")

    # Install again: the kept CRDs are adopted, the EmailSettings is a plain object now.
    notes = _helm(fresh, "install", RELEASE, str(CHART), "--values", str(values))
    assert "post-install hook" not in notes
    assert "helm.sh/hook" not in _annotations(fresh, "emailsettings", "default")
    assert {"EmailSettings", "KopfPeering"} <= _kinds(_helm(fresh, "get", "manifest", RELEASE))
