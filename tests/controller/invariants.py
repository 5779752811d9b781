"""kstatus invariants every status the operator writes must satisfy (fluxcd/pkg style)."""

from __future__ import annotations

from typing import Any


def violations(body: dict[str, Any]) -> list[str]:
    status = body.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    if not conditions:
        return []
    problems = []
    ready = conditions.get("Ready")
    reconciling = conditions.get("Reconciling", {}).get("status") == "True"
    stalled = conditions.get("Stalled", {}).get("status") == "True"
    if ready is None:
        problems.append("Ready is missing")
    elif ready["status"] == "True":
        if reconciling or stalled:
            problems.append("Ready=True while Reconciling or Stalled")
        if status.get("observedGeneration") != body["metadata"]["generation"]:
            problems.append("Ready=True while observedGeneration lags generation")
    if reconciling and stalled:
        problems.append("both Reconciling and Stalled")
    problems.extend(
        f"{condition['type']} has a stale observedGeneration"
        for condition in conditions.values()
        if condition.get("observedGeneration") != status.get("observedGeneration")
    )
    return problems
