"""Prometheus metrics of the sidecar, in a registry of its own.

Labels carry categories, event-free outcome names and reasons only: never
addresses, subjects, fields or credentials.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "emailsettings_sidecar"


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.accepted = Counter(
            f"{PREFIX}_notifications_accepted",
            "Notifications stored in the spool (202 answers), by category.",
            ["category"],
            registry=r,
        )
        self.collapsed = Counter(
            f"{PREFIX}_notifications_collapsed",
            "Notifications counted into an identical one by storm control, by category.",
            ["category"],
            registry=r,
        )
        self.refused = Counter(
            f"{PREFIX}_intake_refused",
            "Notification requests not accepted, by HTTP status.",
            ["status"],
            registry=r,
        )
        self.delivered = Counter(
            f"{PREFIX}_notifications_delivered",
            "Notifications delivered to all their recipients, by category.",
            ["category"],
            registry=r,
        )
        self.dead_lettered = Counter(
            f"{PREFIX}_notifications_dead_lettered",
            "Notifications moved to the dead-letter state, by category and cause.",
            ["category", "cause"],
            registry=r,
        )
        self.messages = Counter(
            f"{PREFIX}_smtp_messages",
            "Messages handed to the SMTP server, by result (sent, partial, retry, rejected).",
            ["result"],
            registry=r,
        )
        self.sessions = Counter(
            f"{PREFIX}_smtp_sessions",
            "SMTP connections opened, by result (ok or the failure reason).",
            ["result"],
            registry=r,
        )
        self.send_seconds = Histogram(
            f"{PREFIX}_smtp_send_seconds",
            "Time to hand one message to the SMTP server.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.pending = Gauge(
            f"{PREFIX}_spool_pending",
            "Notifications waiting for delivery.",
            registry=r,
        )
        self.pending_bytes = Gauge(
            f"{PREFIX}_spool_pending_bytes",
            "Bytes of notifications waiting for delivery.",
            registry=r,
        )
        self.oldest_age = Gauge(
            f"{PREFIX}_spool_oldest_pending_age_seconds",
            "Age of the oldest notification waiting for delivery (0 when none).",
            registry=r,
        )
        self.dead_letter = Gauge(
            f"{PREFIX}_spool_dead_letter",
            "Dead-lettered notifications still kept in the spool.",
            registry=r,
        )
        self.spool_healthy = Gauge(
            f"{PREFIX}_spool_healthy",
            "1 when the spool accepts writes.",
            registry=r,
        )
        self.smtp_connections = Counter(
            f"{PREFIX}_smtp_intake_connections",
            "SMTP intake connections, by result (accepted, refused_not_loopback, refused_busy).",
            ["result"],
            registry=r,
        )
        self.smtp_messages = Counter(
            f"{PREFIX}_smtp_intake_messages",
            "Messages offered to the SMTP intake, by result (accepted, collapsed, too_big, "
            "line_too_long, bad_content, bad_category_header, spool_full, spool_unavailable, "
            "shutting_down, error).",
            ["result"],
            registry=r,
        )
        self.smtp_recipients_refused = Counter(
            f"{PREFIX}_smtp_intake_refused_addresses",
            "Addresses the SMTP intake refused at MAIL or RCPT, by reason (relay_denied, "
            "unknown_alias, invalid, invalid_sender, too_many).",
            ["reason"],
            registry=r,
        )
        self.smtp_bare_newlines = Counter(
            f"{PREFIX}_smtp_intake_bare_newlines",
            "Messages whose bare LF or lone CR line endings were normalized to CRLF.",
            registry=r,
        )
        self.smtp_commit_seconds = Histogram(
            f"{PREFIX}_smtp_intake_commit_seconds",
            "Time from the end of DATA to the durable commit (the 250 answer waits for it).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.settings_usable = Gauge(
            f"{PREFIX}_settings_usable",
            "1 while the followed EmailSettings allow sending.",
            registry=r,
        )
        self.settings_reason = Gauge(
            f"{PREFIX}_settings_state",
            "1 for the current reason delivery is (or is not) allowed.",
            ["reason"],
            registry=r,
        )

    def set_settings(self, usable: bool, reason: str) -> None:
        self.settings_usable.set(1 if usable else 0)
        self.settings_reason.clear()
        self.settings_reason.labels(reason=reason).set(1)

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data
