"""May the sidecar send with these settings, and if not, why not: one pure function.

The contract (docs/architecture.md): send only while `spec.enabled` is true, the
`Ready` condition is True and `status.observedGeneration` equals
`metadata.generation`. Anything else holds delivery (notifications are still
accepted and spooled) and the reason is shown on /readyz and /v1/status.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from emailsettings.api.conditions import ConditionType
from emailsettings.api.models import EmailSettingsSpec


class GateReason(enum.StrEnum):
    READY = "Ready"
    WAITING = "WaitingForSettings"  # not read from the API yet
    UNREADABLE = "SettingsUnreadable"  # the API refused or failed
    NOT_FOUND = "EmailSettingsNotFound"
    INVALID_SPEC = "InvalidSpec"
    DISABLED = "Disabled"
    STATUS_STALE = "StatusNotCurrent"
    NOT_READY = "NotReady"
    PASSWORD_UNAVAILABLE = "PasswordUnavailable"  # noqa: S105 - a reason, not a secret
    CA_BUNDLE_UNAVAILABLE = "CABundleUnavailable"


@dataclass(frozen=True, kw_only=True)
class Gate:
    may_send: bool
    reason: GateReason
    message: str
    spec: EmailSettingsSpec | None = None
    generation: int | None = None
    observed_generation: int | None = None
    resource_version: str | None = None
    ready_reason: str | None = None  # the operator's reason on the Ready condition

    def held(self, reason: GateReason, message: str) -> Gate:
        """The same settings, held for a reason found outside the object (password, CA)."""
        return dataclasses.replace(self, may_send=False, reason=reason, message=message)


def waiting(message: str = "the EmailSettings has not been read yet") -> Gate:
    return Gate(may_send=False, reason=GateReason.WAITING, message=message)


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return None


def _first_error(error: pydantic.ValidationError) -> str:
    problems = []
    for item in error.errors()[:3]:
        where = ".".join(str(part) for part in item.get("loc", ())) or "spec"
        problems.append(f"spec.{where}: {item.get('msg', 'invalid')}")
    return "; ".join(problems)


def evaluate(  # noqa: PLR0911 - one return per rule of the contract
    obj: Mapping[str, Any] | None, *, what: str = "the EmailSettings"
) -> Gate:
    """The gate for one EmailSettings object as read from the API (None: it does not exist)."""
    if obj is None:
        return Gate(may_send=False, reason=GateReason.NOT_FOUND, message=f"{what} does not exist")
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    generation = metadata.get("generation")
    observed = status.get("observedGeneration")
    version = metadata.get("resourceVersion")
    try:
        spec = EmailSettingsSpec.model_validate(obj.get("spec") or {})
    except pydantic.ValidationError as error:
        return Gate(
            may_send=False,
            reason=GateReason.INVALID_SPEC,
            message=f"{what} has a spec this sidecar cannot use: {_first_error(error)}",
            generation=generation,
            observed_generation=observed,
            resource_version=version,
        )

    def held(reason: GateReason, message: str, ready: str | None = None) -> Gate:
        return Gate(
            may_send=False,
            reason=reason,
            message=message,
            spec=spec,
            generation=generation,
            observed_generation=observed,
            resource_version=version,
            ready_reason=ready,
        )

    if not spec.enabled:
        return held(GateReason.DISABLED, "email notifications are disabled (spec.enabled)")
    if observed is None or generation is None or observed != generation:
        return held(
            GateReason.STATUS_STALE,
            f"the operator has not processed generation {generation} yet "
            f"(status.observedGeneration is {observed})",
        )
    ready = _condition(status, ConditionType.READY)
    if ready is None:
        return held(GateReason.NOT_READY, "the Ready condition is not set yet")
    ready_reason = str(ready.get("reason") or "")
    condition_generation = ready.get("observedGeneration")
    if condition_generation is not None and condition_generation != generation:
        return held(
            GateReason.STATUS_STALE,
            f"the Ready condition describes generation {condition_generation}, "
            f"not the current {generation}",
            ready_reason,
        )
    if ready.get("status") != "True":
        detail = str(ready.get("message") or "").strip()
        return held(
            GateReason.NOT_READY,
            f"Ready is {ready.get('status', 'Unknown')} ({ready_reason or 'no reason'})"
            + (f": {detail}" if detail else ""),
            ready_reason,
        )
    return dataclasses.replace(
        held(GateReason.READY, "settings are Ready; delivering", ready_reason), may_send=True
    )
