"""The operator's settings: environment variables, overridable by command-line flags."""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ENV_PREFIX = "EMAILSETTINGS_"


@dataclass(frozen=True)
class OperatorConfig:
    # Namespaces to watch; empty means all namespaces (cluster mode).
    namespaces: tuple[str, ...] = ()
    log_format: str = "text"  # text | json
    log_level: str = "INFO"
    health_port: int = 8081  # liveness at /healthz; 0 disables
    metrics_port: int = 8080  # Prometheus at /metrics; 0 disables
    bind_address: str = "0.0.0.0"  # noqa: S104 - probes and scrapes come from outside the pod
    max_concurrent_verifications: int = 16
    workers: int = 16
    peering: str = ""  # kopf peering object name; empty means standalone
    priority: int = 0
    kubeconfig: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def _priority(value: str) -> int:
    # Replicas with equal priority all freeze (kopf peering); "auto" makes them distinct.
    if value == "auto":
        return random.randint(1, 2**31 - 1)  # noqa: S311 - not cryptographic
    return int(value)


def load(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> OperatorConfig:
    env = os.environ if environ is None else environ

    def getenv(name: str, default: str) -> str:
        return env.get(ENV_PREFIX + name, default)

    parser = argparse.ArgumentParser(
        prog="emailsettings-operator",
        description="Reconciles EmailSettings: validation, credentials, SMTP verification, status. "
        "Every flag has an EMAILSETTINGS_<NAME> environment variable.",
    )
    parser.add_argument(
        "--namespaces",
        default=getenv("NAMESPACES", ""),
        help="comma-separated namespaces to watch; empty = all (EMAILSETTINGS_NAMESPACES)",
    )
    parser.add_argument(
        "--log-format", choices=["text", "json"], default=getenv("LOG_FORMAT", "text")
    )
    parser.add_argument("--log-level", default=getenv("LOG_LEVEL", "INFO"))
    parser.add_argument("--health-port", type=int, default=int(getenv("HEALTH_PORT", "8081")))
    parser.add_argument("--metrics-port", type=int, default=int(getenv("METRICS_PORT", "8080")))
    parser.add_argument("--bind-address", default=getenv("BIND_ADDRESS", "0.0.0.0"))  # noqa: S104
    parser.add_argument(
        "--max-concurrent-verifications",
        type=int,
        default=int(getenv("MAX_CONCURRENT_VERIFICATIONS", "16")),
    )
    parser.add_argument("--workers", type=int, default=int(getenv("WORKERS", "16")))
    parser.add_argument("--peering", default=getenv("PEERING", ""))
    parser.add_argument("--priority", default=getenv("PRIORITY", "0"))
    parser.add_argument("--kubeconfig", default=env.get("KUBECONFIG"))
    args = parser.parse_args(argv)
    return OperatorConfig(
        namespaces=tuple(n.strip() for n in args.namespaces.split(",") if n.strip()),
        log_format=args.log_format,
        log_level=args.log_level.upper(),
        health_port=args.health_port,
        metrics_port=args.metrics_port,
        bind_address=args.bind_address,
        max_concurrent_verifications=max(1, args.max_concurrent_verifications),
        workers=max(1, args.workers),
        peering=args.peering,
        priority=_priority(args.priority),
        kubeconfig=args.kubeconfig or None,
    )
