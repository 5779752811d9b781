"""Shared benchmark plumbing: the local stack, a report with JSON and a table."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


@dataclass
class Report:
    name: str
    command: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, label: str, value: Any, unit: str = "") -> None:
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        self.rows.append((label, f"{text} {unit}".strip()))
        self.data[label] = value

    def emit(self) -> None:
        RESULTS.mkdir(exist_ok=True)
        record = {
            "benchmark": self.name,
            "command": self.command,
            "machine": machine(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "results": self.data,
        }
        (RESULTS / f"{self.name}.json").write_text(json.dumps(record, indent=2) + "\n")
        width = max(len(label) for label, _ in self.rows)
        print(f"\n## {self.name}\n\n`{self.command}`\n")
        print(f"| {'measure':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
        for label, value in self.rows:
            print(f"| {label:<{width}} | {value} |")


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
