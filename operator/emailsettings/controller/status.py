"""The whole status of an EmailSettings, computed from scratch as a pure function.

Inputs are what reconcile observed: the spec's validity, the credential lookup and
the SMTP verification. The output is a complete `status` mapping; callers compare
it with the stored one and write only when they differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emailsettings.api.conditions import ADVICE, TRANSIENT, ConditionType, Reason

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


@dataclass(frozen=True)
class Problem:
    reason: Reason
    message: str

    def with_advice(self) -> str:
        advice = ADVICE.get(self.reason)
        if not advice or advice in self.message:
            return self.message
        separator = " " if self.message.rstrip().endswith((".", "!", "?", ":")) else ". "
        return f"{self.message.rstrip()}{separator}{advice}"


@dataclass(frozen=True)
class SMTPObservation:
    """What one verification saw; `problem` is None when it succeeded."""

    endpoint: str
    verified_at: str  # RFC 3339; kept from the verification, not from this reconcile
    latency_ms: int
    secret_resource_version: str | None
    generation: int
    ca_resource_version: str | None = None
    tls_version: str | None = None
    auth_mechanism: str | None = None
    problem: Problem | None = None


@dataclass(frozen=True)
class Observation:
    generation: int
    enabled: bool
    verify: bool  # VerifyAndSave (True) or plain Save (False)
    spec_problem: Problem | None = None
    credentials_problem: Problem | None = None
    has_credentials: bool = True
    smtp: SMTPObservation | None = None
    in_progress: bool = False  # a verification is running and has taken a while


def compute_status(
    observed: Observation, previous: Mapping[str, Any] | None, now: str
) -> dict[str, Any]:
    """The complete status; lastTransitionTime kept from `previous` unless status flipped."""
    conditions = _conditions(observed)
    status: dict[str, Any] = {
        "observedGeneration": observed.generation,
        "conditions": merge_transition_times(
            conditions, (previous or {}).get("conditions") or [], now
        ),
        # The last *successful* verification: carried forward through failures.
        "smtp": _smtp_block(observed.smtp) or (previous or {}).get("smtp"),
    }
    return status


def _conditions(observed: Observation) -> list[dict[str, Any]]:  # noqa: PLR0911 - one return per state
    gen = observed.generation

    def cond(kind: ConditionType, status: str, reason: Reason, message: str) -> dict[str, Any]:
        return {
            "type": str(kind),
            "status": status,
            "reason": str(reason),
            "message": message,
            "observedGeneration": gen,
        }

    if observed.spec_problem is not None:
        problem = observed.spec_problem
        message = problem.with_advice()
        return [
            cond(ConditionType.READY, FALSE, problem.reason, message),
            cond(ConditionType.VALIDATED, FALSE, problem.reason, message),
            cond(
                ConditionType.CREDENTIALS_RESOLVED,
                UNKNOWN,
                Reason.INVALID_SPEC,
                "Not checked: the spec is invalid.",
            ),
            cond(
                ConditionType.SMTP_VERIFIED,
                UNKNOWN,
                Reason.INVALID_SPEC,
                "Not checked: the spec is invalid.",
            ),
            cond(ConditionType.STALLED, TRUE, problem.reason, message),
        ]

    valid = cond(ConditionType.VALIDATED, TRUE, Reason.VALID, "The spec is valid.")
    if not observed.enabled:
        text = "Email notifications are disabled (spec.enabled is false); settings are saved."
        return [
            cond(ConditionType.READY, TRUE, Reason.DISABLED, text),
            valid,
            cond(
                ConditionType.CREDENTIALS_RESOLVED,
                UNKNOWN,
                Reason.DISABLED,
                "Not checked: notifications are disabled.",
            ),
            cond(
                ConditionType.SMTP_VERIFIED,
                UNKNOWN,
                Reason.DISABLED,
                "Not checked: notifications are disabled.",
            ),
        ]

    if observed.credentials_problem is not None:
        problem = observed.credentials_problem
        message = problem.with_advice()
        result = [
            cond(ConditionType.READY, FALSE, problem.reason, message),
            valid,
            cond(ConditionType.CREDENTIALS_RESOLVED, FALSE, problem.reason, message),
            cond(
                ConditionType.SMTP_VERIFIED,
                UNKNOWN,
                problem.reason,
                "Not checked: credentials are not resolved.",
            ),
        ]
        return result + _stalled_if_permanent(problem, gen)

    credentials = (
        cond(
            ConditionType.CREDENTIALS_RESOLVED,
            TRUE,
            Reason.RESOLVED,
            "The password was read from the referenced Secret.",
        )
        if observed.has_credentials
        else cond(
            ConditionType.CREDENTIALS_RESOLVED,
            TRUE,
            Reason.NO_CREDENTIALS,
            "No credentials are configured; the server is used without AUTH.",
        )
    )
    if not observed.verify:
        text = "Saved without verification (spec.verification.mode is Save)."
        return [
            cond(ConditionType.READY, TRUE, Reason.VERIFICATION_SKIPPED, text),
            valid,
            credentials,
            cond(ConditionType.SMTP_VERIFIED, UNKNOWN, Reason.VERIFICATION_SKIPPED, text),
        ]

    smtp = observed.smtp
    if observed.in_progress or smtp is None or smtp.generation != observed.generation:
        text = "Verifying SMTP connectivity, TLS, authentication, sender and recipients."
        return [
            cond(ConditionType.READY, UNKNOWN, Reason.PROGRESSING, text),
            valid,
            credentials,
            cond(ConditionType.SMTP_VERIFIED, UNKNOWN, Reason.PROGRESSING, text),
            cond(ConditionType.RECONCILING, TRUE, Reason.PROGRESSING, text),
        ]
    if smtp.problem is not None:
        message = smtp.problem.with_advice()
        return [
            cond(ConditionType.READY, FALSE, smtp.problem.reason, message),
            valid,
            credentials,
            cond(ConditionType.SMTP_VERIFIED, FALSE, smtp.problem.reason, message),
            *_stalled_if_permanent(smtp.problem, gen),
        ]
    text = (
        f"SMTP verified at {smtp.endpoint}"
        + (f" over {smtp.tls_version}" if smtp.tls_version else " without TLS")
        + (f", authenticated with {smtp.auth_mechanism}." if smtp.auth_mechanism else ".")
    )
    return [
        cond(ConditionType.READY, TRUE, Reason.VERIFIED, text),
        valid,
        credentials,
        cond(ConditionType.SMTP_VERIFIED, TRUE, Reason.VERIFIED, text),
    ]


def _stalled_if_permanent(problem: Problem, generation: int) -> list[dict[str, Any]]:
    # Transient failures retry with backoff: Ready=False is enough. Anything else
    # needs a change from the user, which kstatus calls Stalled.
    if problem.reason in TRANSIENT:
        return []
    return [
        {
            "type": str(ConditionType.STALLED),
            "status": TRUE,
            "reason": str(problem.reason),
            "message": problem.with_advice(),
            "observedGeneration": generation,
        }
    ]


def _smtp_block(smtp: SMTPObservation | None) -> dict[str, Any] | None:
    if smtp is None or smtp.problem is not None:
        return None
    return {
        "endpoint": smtp.endpoint,
        "tlsVersion": smtp.tls_version,
        "authMechanism": smtp.auth_mechanism,
        "verifiedAt": smtp.verified_at,
        "latencyMilliseconds": smtp.latency_ms,
        "secretResourceVersion": smtp.secret_resource_version,
        "verifiedGeneration": smtp.generation,
        "caBundleResourceVersion": smtp.ca_resource_version,
    }


def merge_transition_times(
    conditions: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]], now: str
) -> list[dict[str, Any]]:
    """lastTransitionTime changes only when a condition's status flips."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for condition in conditions:
        old = before.get(condition["type"])
        same = old is not None and old.get("status") == condition["status"]
        stamp = old.get("lastTransitionTime") if same and old else None
        merged.append({**condition, "lastTransitionTime": stamp or now})
    return merged


def status_equal(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Compare statuses as the API server stores them (nulls dropped, keys unordered)."""
    return bool(_prune(a or {}) == _prune(b or {}))


def _prune(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value
