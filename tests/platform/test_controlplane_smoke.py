"""The control plane is a real API server: storage, CRD validation, RBAC."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from emailsettings.devstack.kubectl import Kubectl

pytestmark = pytest.mark.kube

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.example.com"},
    "spec": {
        "group": "smoke.example.com",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "min": {"type": "integer"},
                                    "max": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.min <= self.max",
                                        "message": "min must not exceed max",
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_version_is_the_built_release(kubectl: Kubectl) -> None:
    version = kubectl.run("version", "-o", "json").stdout
    assert '"gitVersion": "v1.36' in version


def test_namespace_and_secret_round_trip(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run(
        "create", "secret", "generic", "smtp", "-n", namespace, "--from-literal=password=s3"
    )
    secret = kubectl.get_json("secret", "smtp", "-n", namespace)
    assert base64.b64decode(secret["data"]["password"]) == b"s3"
    assert kubectl.get_json("namespace", namespace)["status"]["phase"] == "Active"


def test_crd_cel_rule_rejects_bad_object(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(WIDGET_CRD)
    kubectl.run(
        "wait", "--for=condition=Established", "crd/widgets.smoke.example.com", "--timeout=60s"
    )
    good = {
        "apiVersion": "smoke.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "good", "namespace": namespace},
        "spec": {"min": 1, "max": 2},
    }
    kubectl.apply(good)
    assert kubectl.get_json("widget", "good", "-n", namespace)["spec"] == {"min": 1, "max": 2}

    bad = {
        **good,
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"min": 3, "max": 2},
    }
    result = kubectl.run("apply", "-f", "-", stdin=_yaml(bad), check=False)
    assert result.returncode != 0
    assert "min must not exceed max" in result.stderr


def test_rbac_denies_a_verb_the_service_account_lacks(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("create", "serviceaccount", "reader", "-n", namespace)
    kubectl.run(
        "create", "role", "cm-reader", "-n", namespace, "--verb=get", "--resource=configmaps"
    )
    kubectl.run(
        "create",
        "rolebinding",
        "cm-reader",
        "-n",
        namespace,
        "--role=cm-reader",
        f"--serviceaccount={namespace}:reader",
    )
    who = f"--as=system:serviceaccount:{namespace}:reader"
    allowed = kubectl.run("auth", "can-i", "get", "configmaps", "-n", namespace, who, check=False)
    assert allowed.stdout.strip() == "yes"
    denied = kubectl.run("get", "secrets", "-n", namespace, who, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()


def _yaml(document: dict[str, Any]) -> str:
    import yaml  # noqa: PLC0415 - local to the one helper that needs it

    return yaml.safe_dump(document)
