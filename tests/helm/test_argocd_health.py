"""The Argo CD health script, run in a real Lua runtime on the status shapes the
operator writes."""

from __future__ import annotations

from typing import Any

import lupa  # type: ignore[import-untyped]  # lupa ships no type hints
import pytest

from .conftest import REPO

SCRIPT = (REPO / "docs" / "argocd-health.lua").read_text()


def _condition(kind: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def _obj(
    conditions: list[dict[str, Any]] | None,
    generation: int = 3,
    observed: int = 3,
    enabled: bool = True,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "emailsettings.io/v1alpha1",
        "kind": "EmailSettings",
        "metadata": {"name": "default", "generation": generation},
        "spec": {"enabled": enabled},
    }
    if conditions is not None:
        obj["status"] = {"observedGeneration": observed, "conditions": conditions}
    return obj


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPT)
    return str(result["status"]), str(result["message"])


CASES = [
    pytest.param(_obj(None), "Progressing", "report status", id="no-status"),
    pytest.param(
        _obj([_condition("Ready", "True", "Verified", "verified")], generation=4),
        "Progressing",
        "generation 4",
        id="stale-generation",
    ),
    pytest.param(
        _obj([_condition("Ready", "True", "Verified", "SMTP verified at mail:587")]),
        "Healthy",
        "Verified: SMTP verified at mail:587",
        id="ready",
    ),
    pytest.param(
        _obj([_condition("Ready", "True", "VerificationSkipped", "saved without a test")]),
        "Healthy",
        "VerificationSkipped",
        id="save-mode",
    ),
    pytest.param(
        _obj(
            [
                _condition("Ready", "False", "Progressing"),
                _condition("Reconciling", "True", "Progressing", "verifying"),
            ]
        ),
        "Progressing",
        "verifying",
        id="reconciling",
    ),
    pytest.param(
        _obj(
            [
                _condition("Ready", "False", "InvalidSender"),
                _condition("Stalled", "True", "InvalidSender", "fix spec.sender"),
            ]
        ),
        "Degraded",
        "InvalidSender: fix spec.sender",
        id="stalled",
    ),
    pytest.param(
        _obj([_condition("Ready", "False", "ConnectionRefused", "nothing on 587")]),
        "Degraded",
        "ConnectionRefused: nothing on 587",
        id="failing",
    ),
    pytest.param(
        _obj([_condition("Ready", "Unknown", "Progressing")]),
        "Progressing",
        "Progressing",
        id="unknown",
    ),
    pytest.param(
        _obj([_condition("Ready", "True", "Disabled")], enabled=False),
        "Suspended",
        "disabled",
        id="disabled",
    ),
]


@pytest.mark.parametrize(("obj", "status", "message"), CASES)
def test_health(obj: dict[str, Any], status: str, message: str) -> None:
    got_status, got_message = health(obj)
    assert got_status == status
    assert message in got_message


def test_docs_embed_the_script() -> None:
    """docs/helm.md shows the argocd-cm snippet; it must carry this exact script."""
    docs = (REPO / "docs" / "helm.md").read_text()
    indented = "".join(
        f"    {line}" if line.strip() else line for line in SCRIPT.splitlines(keepends=True)
    )
    assert indented in docs
