"""The settings gate: the status contract as a pure function, and the config parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emailsettings.sidecar.config import ConfigError, duration, listen_address, load, size
from emailsettings.sidecar.settings_gate import GateReason, evaluate

SPEC: dict[str, Any] = {
    "enabled": True,
    "smtp": {"host": "mail.example.com", "port": 587},
    "sender": "Ops <ops@example.com>",
    "recipients": {"administrative": ["admin@example.com"]},
}


def obj(
    *,
    spec: dict[str, Any] | None = None,
    generation: int = 3,
    observed: int | None = 3,
    ready: str | None = "True",
    ready_generation: int | None = 3,
    reason: str = "Verified",
) -> dict[str, Any]:
    conditions = []
    if ready is not None:
        condition: dict[str, Any] = {
            "type": "Ready",
            "status": ready,
            "reason": reason,
            "message": "the server said no" if ready != "True" else "ok",
        }
        if ready_generation is not None:
            condition["observedGeneration"] = ready_generation
        conditions.append(condition)
    status: dict[str, Any] = {"conditions": conditions}
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "metadata": {"name": "default", "generation": generation, "resourceVersion": "7"},
        "spec": SPEC if spec is None else spec,
        "status": status,
    }


def test_ready_current_and_enabled_may_send() -> None:
    gate = evaluate(obj())
    assert gate.may_send
    assert gate.reason is GateReason.READY
    assert gate.spec is not None
    assert gate.spec.sender_address == "ops@example.com"


@pytest.mark.parametrize(
    ("body", "reason", "words"),
    [
        (None, GateReason.NOT_FOUND, "does not exist"),
        (obj(spec={**SPEC, "enabled": False}), GateReason.DISABLED, "disabled"),
        (obj(observed=2), GateReason.STATUS_STALE, "generation 3"),
        (obj(observed=None), GateReason.STATUS_STALE, "observedGeneration is None"),
        (obj(ready_generation=2), GateReason.STATUS_STALE, "describes generation 2"),
        (obj(ready=None), GateReason.NOT_READY, "not set yet"),
        (obj(ready="False", reason="AuthenticationFailed"), GateReason.NOT_READY, "Authentication"),
        (obj(ready="Unknown", reason="Progressing"), GateReason.NOT_READY, "Unknown"),
        (obj(spec={**SPEC, "smtp": {"port": 587}}), GateReason.INVALID_SPEC, "spec.smtp.host"),
    ],
)
def test_held_for_a_reason(body: dict[str, Any] | None, reason: GateReason, words: str) -> None:
    gate = evaluate(body, what="EmailSettings ns/default")
    assert not gate.may_send
    assert gate.reason is reason
    assert words in gate.message


def test_ready_without_condition_generation_is_judged_by_status() -> None:
    assert evaluate(obj(ready_generation=None)).may_send


def test_config_from_env_and_flags(tmp_path: Path) -> None:
    env = {
        "EMAILSETTINGS_NAME": "mail",
        "EMAILSETTINGS_NAMESPACE": "app",
        "EMAILSETTINGS_SPOOL_DIR": str(tmp_path),
        "EMAILSETTINGS_STORM_WINDOW": "2m",
        "EMAILSETTINGS_SPOOL_MAX_BYTES": "1Mi",
    }
    config = load(["--listen", "127.0.0.1:9000", "--retry-max", "90s"], env)
    assert (config.name, config.namespace, config.spool_dir) == ("mail", "app", tmp_path)
    assert config.listen == ("127.0.0.1", 9000)
    assert config.storm_window == 120
    assert config.retry_max == 90
    assert config.spool_max_bytes == 1024 * 1024
    assert config.probe_address == ("0.0.0.0", 8091)
    with pytest.raises(ConfigError, match="EMAILSETTINGS_RETRY_BASE"):
        load([], {"EMAILSETTINGS_RETRY_BASE": "soon"})
    with pytest.raises(ConfigError, match="secret_source"):
        load(["--secret-source", "vault"], {})


def test_units() -> None:
    assert duration("250ms") == 0.25
    assert duration("1.5h") == 5400
    assert size("64Mi") == 64 * 1024 * 1024
    assert listen_address(":8090") == ("0.0.0.0", 8090)
    assert listen_address("[::1]:8090") == ("::1", 8090)
    with pytest.raises(ConfigError):
        listen_address("8090")
