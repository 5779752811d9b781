"""The status computation is a pure function: called directly, no cluster needed."""

from __future__ import annotations

from emailsettings.api.conditions import Reason
from emailsettings.controller.status import (
    Observation,
    Problem,
    SMTPObservation,
    compute_status,
    merge_transition_times,
    status_equal,
)

NOW = "2026-12-04T10:00:00Z"
LATER = "2026-12-04T11:00:00Z"


def _types(status: dict[str, object]) -> dict[str, tuple[str, str]]:
    conditions = status["conditions"]
    assert isinstance(conditions, list)
    return {c["type"]: (c["status"], c["reason"]) for c in conditions}


def _smtp(problem: Problem | None = None) -> SMTPObservation:
    return SMTPObservation(
        endpoint="mail:587",
        verified_at=NOW,
        latency_ms=12,
        secret_resource_version="7",
        generation=3,
        tls_version="TLSv1.3",
        auth_mechanism="PLAIN",
        problem=problem,
    )


def test_verified() -> None:
    status = compute_status(Observation(3, enabled=True, verify=True, smtp=_smtp()), None, NOW)
    assert _types(status)["Ready"] == ("True", "Verified")
    assert status["observedGeneration"] == 3
    assert status["smtp"]["secretResourceVersion"] == "7"


def test_permanent_failure_stalls_transient_does_not() -> None:
    auth = Problem(Reason.AUTHENTICATION_FAILED, "rejected")
    stalled = compute_status(Observation(3, enabled=True, verify=True, smtp=_smtp(auth)), None, NOW)
    assert _types(stalled)["Stalled"] == ("True", "AuthenticationFailed")
    refused = Problem(Reason.CONNECTION_REFUSED, "refused")
    retrying = compute_status(
        Observation(3, enabled=True, verify=True, smtp=_smtp(refused)), None, NOW
    )
    assert "Stalled" not in _types(retrying)
    assert _types(retrying)["Ready"] == ("False", "ConnectionRefused")


def test_failure_keeps_last_successful_smtp_block() -> None:
    good = compute_status(Observation(3, enabled=True, verify=True, smtp=_smtp()), None, NOW)
    bad = compute_status(
        Observation(
            3, enabled=True, verify=True, smtp=_smtp(Problem(Reason.CONNECTION_REFUSED, "x"))
        ),
        good,
        LATER,
    )
    assert bad["smtp"] == good["smtp"]


def test_save_and_disabled_are_ready_without_verification() -> None:
    saved = compute_status(Observation(1, enabled=True, verify=False), None, NOW)
    assert _types(saved)["Ready"] == ("True", "VerificationSkipped")
    assert _types(saved)["SMTPVerified"] == ("Unknown", "VerificationSkipped")
    off = compute_status(Observation(1, enabled=False, verify=True), None, NOW)
    assert _types(off)["Ready"] == ("True", "Disabled")


def test_invalid_spec_names_the_field_and_stalls() -> None:
    problem = Problem(Reason.INVALID_RECIPIENT, "spec.recipients.error[0]: not an address")
    status = compute_status(
        Observation(2, enabled=True, verify=True, spec_problem=problem), None, NOW
    )
    assert _types(status)["Stalled"] == ("True", "InvalidRecipient")
    assert "spec.recipients.error[0]" in status["conditions"][0]["message"]


def test_in_progress_is_reconciling_and_not_ready() -> None:
    status = compute_status(Observation(2, enabled=True, verify=True, in_progress=True), None, NOW)
    assert _types(status)["Reconciling"] == ("True", "Progressing")
    assert _types(status)["Ready"] == ("Unknown", "Progressing")


def test_transition_time_changes_only_when_status_flips() -> None:
    first = merge_transition_times([{"type": "Ready", "status": "True", "reason": "A"}], [], NOW)
    same = merge_transition_times(
        [{"type": "Ready", "status": "True", "reason": "B"}], first, LATER
    )
    assert same[0]["lastTransitionTime"] == NOW
    flipped = merge_transition_times(
        [{"type": "Ready", "status": "False", "reason": "B"}], same, LATER
    )
    assert flipped[0]["lastTransitionTime"] == LATER


def test_recomputing_is_stable() -> None:
    observed = Observation(3, enabled=True, verify=True, smtp=_smtp())
    first = compute_status(observed, None, NOW)
    assert status_equal(compute_status(observed, first, LATER), first)
