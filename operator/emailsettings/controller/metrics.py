"""Prometheus metrics of the operator. Labels never carry secrets or free text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "emailsettings_reconciles_total",
            "Reconciles run, by outcome (written, unchanged, error).",
            ["outcome"],
            registry=self.registry,
        )
        self.verifications = Counter(
            "emailsettings_verifications_total",
            "SMTP verifications performed (not shared), by result reason.",
            ["reason"],
            registry=self.registry,
        )
        self.shared_hits = Counter(
            "emailsettings_shared_verification_hits_total",
            "Verifications answered from another resource's verification of the same server.",
            registry=self.registry,
        )
        self.verification_seconds = Histogram(
            "emailsettings_verification_duration_seconds",
            "Duration of SMTP verification dialogues.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.status_writes = Counter(
            "emailsettings_status_writes_total",
            "Status patches sent to the API server.",
            registry=self.registry,
        )
        self.resources = Gauge(
            "emailsettings_resources", "EmailSettings resources tracked.", registry=self.registry
        )
        self.queue_depth = Gauge(
            "emailsettings_reconcile_queue_depth",
            "Resources waiting for a reconcile.",
            registry=self.registry,
        )
