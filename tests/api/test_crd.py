"""The CRD: generated from the models, documented, and usable with kubectl."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from emailsettings.api import schema_export
from emailsettings.api.conditions import ConditionType, Reason
from emailsettings.api.models import (
    Condition,
    ConditionStatus,
    EmailSettingsStatus,
    SMTPStatus,
    VerificationMessageResult,
    VerificationMessageStatus,
)
from emailsettings.devstack.kubectl import Kubectl, KubectlError

from .corpus_cases import CORPUS, CRD_PATH, JSON_SCHEMA_DIR

OPEN_API = schema_export.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_committed_crd_is_generated_from_the_models() -> None:
    """crds/ is the output of hack/generate-crds.sh; regenerate it after changing the models."""
    for relative, content in schema_export.outputs().items():
        committed = (CRD_PATH.parent / relative).read_text(encoding="utf-8")
        assert committed == content, f"crds/{relative} is stale: run hack/generate-crds.sh"
    assert (JSON_SCHEMA_DIR / "emailsettings.io" / "emailsettings_v1alpha1.json").is_file()


def _fields(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, sub in node.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from _fields(sub, f"{path}.{name}")
    if "items" in node:
        yield from _fields(node["items"], f"{path}[]")


def test_every_field_has_a_description() -> None:
    fields = dict(_fields(OPEN_API, ""))
    missing = [
        path for path, node in fields.items() if path != ".metadata" and not node.get("description")
    ]
    assert not missing
    assert len(fields) > 40


def test_docs_describe_every_field() -> None:
    docs = (CRD_PATH.parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    # The items of status.conditions are the standard metav1.Condition, described as one.
    missing = [
        path.lstrip(".")
        for path, _ in _fields(OPEN_API, "")
        if path.startswith((".spec.", ".status."))
        and "[]" not in path
        and f"`{path.lstrip('.')}`" not in docs
    ]
    assert not missing, f"docs/api.md does not describe: {missing}"


def test_schema_is_structural() -> None:
    """Every node has a type; nothing pydantic-specific leaks into the CRD."""
    text = json.dumps(OPEN_API)
    for leaked in ('"$ref"', '"anyOf"', '"allOf"', '"title"', '"additionalProperties": false'):
        assert leaked not in text
    for path, node in _fields(OPEN_API, ""):
        assert "type" in node, path


def test_names_columns_and_status_shape() -> None:
    crd = schema_export.crd()
    names = crd["spec"]["names"]
    assert names["kind"] == "EmailSettings"
    assert names["plural"] == "emailsettings"
    assert names["shortNames"] == ["ems"]
    assert names["categories"] == ["notifications"]
    assert crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Host"]["jsonPath"] == ".spec.smtp.host"
    assert columns["Encryption"]["jsonPath"] == ".spec.smtp.encryption"
    assert columns["Verified"] == {**columns["Verified"], "type": "date"}
    assert columns["Verified"]["jsonPath"] == ".status.smtp.verifiedAt"
    conditions = OPEN_API["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
    }
    smtp = OPEN_API["properties"]["status"]["properties"]["smtp"]["properties"]
    assert {
        "endpoint",
        "tlsVersion",
        "authMechanism",
        "verifiedAt",
        "latencyMilliseconds",
        "secretResourceVersion",
        "verifiedGeneration",
    } <= set(smtp)


def test_spec_defaults() -> None:
    spec = OPEN_API["properties"]["spec"]["properties"]
    smtp = spec["smtp"]["properties"]
    assert smtp["port"]["default"] == 587
    assert (smtp["port"]["minimum"], smtp["port"]["maximum"]) == (1, 65535)
    assert smtp["encryption"]["default"] == "STARTTLS"
    assert smtp["encryption"]["enum"] == ["None", "STARTTLS", "TLS"]
    assert spec["enabled"]["default"] is True
    assert spec["verification"]["properties"]["mode"]["default"] == "VerifyAndSave"
    assert spec["verification"]["properties"]["interval"]["default"] == "1h"


# ---------------------------------------------------------------- against the API server


def _until(check: Any, timeout: float = 30.0) -> Any:
    """Poll an eventually-consistent read (the published OpenAPI) until it passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, KubectlError):
            if time.monotonic() > deadline:
                raise


@pytest.mark.kube
def test_kubectl_explain_is_a_manual(crd_installed: Kubectl) -> None:
    def explain_smtp() -> str:
        out = crd_installed.run("explain", "emailsettings.spec.smtp").stdout
        assert "Host name or IP address of the SMTP server" in out
        return out

    out = _until(explain_smtp)
    assert "host\t<string> -required-" in out
    assert "passwordSecretRef\t<Object>" in out
    assert "enum: None, STARTTLS, TLS" in out
    for text in (
        "The password is never written in the EmailSettings itself",
        "TLS: implicit TLS from the first byte (usually port 465)",
        "allowPlaintextAuth <boolean> Allow authentication with encryption None",
    ):
        assert text in _words(out), text

    def explain(field: str) -> str:
        return _words(crd_installed.run("explain", field).stdout)

    assert "Secret or ConfigMap" in explain("emailsettings.spec.smtp.tls.caBundleRef")
    assert "Administrative Notification Recipients" in explain("ems.spec.recipients")
    assert "Ready (always present)" in explain("emailsettings.status.conditions")


def _words(text: str) -> str:
    return " ".join(text.split())


def _status() -> EmailSettingsStatus:
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    return EmailSettingsStatus(
        observed_generation=1,
        conditions=[
            Condition(
                type=ConditionType.READY,
                status=ConditionStatus.TRUE,
                reason=Reason.VERIFIED,
                message="Verified STARTTLS and AUTH PLAIN on smtp.example.com:587.",
                observed_generation=1,
                last_transition_time=now,
            )
        ],
        smtp=SMTPStatus(
            endpoint="smtp.example.com:587",
            tls_version="TLSv1.3",
            auth_mechanism="PLAIN",
            verified_at=now,
            latency_milliseconds=42,
            secret_resource_version="12345",
            verified_generation=1,
        ),
        test_message=VerificationMessageStatus(
            generation=1, sent_at=now, result=VerificationMessageResult.SENT, message="250 OK"
        ),
    )


@pytest.fixture
def stored(crd_installed: Kubectl, namespace: str) -> str:
    """A valid corpus document, really created, with a status from the models."""
    manifest = next(case.manifest for case in CORPUS if case.name == "v-starttls-auth")
    manifest = {**manifest, "metadata": {"name": "default", "namespace": namespace}}
    crd_installed.run("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    status = _status().model_dump(mode="json", exclude_none=True)
    crd_installed.run(
        "patch",
        "emailsettings",
        "default",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    return namespace


@pytest.mark.kube
def test_status_written_by_the_models_round_trips(crd_installed: Kubectl, stored: str) -> None:
    obj = crd_installed.get_json("emailsettings", "default", "-n", stored)
    assert obj["status"]["smtp"]["verifiedAt"] == "2026-01-02T03:04:05Z"
    read_back = EmailSettingsStatus.model_validate(obj["status"])
    assert read_back.model_dump(mode="json") == _status().model_dump(mode="json")
    ready = read_back.condition(ConditionType.READY)
    assert ready is not None
    assert ready.status == "True"


@pytest.mark.kube
def test_printer_columns(crd_installed: Kubectl, stored: str) -> None:
    table = crd_installed.run("get", "emailsettings", "-n", stored).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "HOST", "ENCRYPTION", "VERIFIED", "AGE"]
    row = table[1].split()
    assert row[:4] == ["default", "True", "smtp.example.com", "STARTTLS"]
    assert row[4].endswith(("d", "y"))  # verifiedAt shown as an age, e.g. "120d" or "1y"
    wide = crd_installed.run("get", "ems", "-n", stored, "-o", "wide").stdout.splitlines()
    assert "PORT" in wide[0].split()
    assert "REASON" in wide[0].split()
    assert "Verified" in wide[1].split()
    by_category = crd_installed.run("get", "notifications", "-n", stored, "-o", "name").stdout
    assert by_category.strip() == "emailsettings.emailsettings.io/default"


@pytest.mark.kube
def test_invalid_status_is_rejected(crd_installed: Kubectl, stored: str) -> None:
    bad = {"status": {"conditions": [{"type": "Ready", "status": "Maybe"}]}}
    result = crd_installed.run(
        "patch",
        "emailsettings",
        "default",
        "-n",
        stored,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(bad),
        check=False,
    )
    assert result.returncode != 0
    assert "status.conditions[0].status" in result.stderr


@pytest.mark.kube
def test_examples_apply(crd_installed: Kubectl, namespace: str) -> None:
    examples = sorted((CRD_PATH.parents[1] / "examples").glob("*.yaml"))
    assert {p.name for p in examples} >= {
        "starttls-587.yaml",
        "implicit-tls-465.yaml",
        "internal-relay-25.yaml",
    }
    for example in examples:
        crd_installed.run(
            "apply",
            "--server-side",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            str(example),
        )
