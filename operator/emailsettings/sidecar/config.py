"""The sidecar's settings: one typed object, from flags, else environment, else defaults.

Every option has a flag (`--spool-dir`) and an environment variable
(`EMAILSETTINGS_SPOOL_DIR`); the flag wins. `docs/sidecar.md` lists them all;
`emailsettings-sidecar --help` prints the same table.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "EMAILSETTINGS_"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(k|ki|m|mi|g|gi)?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1,
    "k": 1000,
    "ki": 1024,
    "m": 1000**2,
    "mi": 1024**2,
    "g": 1000**3,
    "gi": 1024**3,
}


class ConfigError(ValueError):
    pass


def duration(text: str) -> float:
    """Seconds from '90', '90s', '5m', '1.5h', '7d' or '250ms'."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"{text!r} is not a duration (examples: 30s, 5m, 2h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def size(text: str) -> int:
    """Bytes from '1048576', '64Mi', '500k', '1G'."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"{text!r} is not a size (examples: 65536, 64Mi, 1Gi)")
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _SIZE_UNITS[unit]


def listen_address(text: str) -> tuple[str, int]:
    """'127.0.0.1:8090', ':8090' (all interfaces) or '[::1]:8090'."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{text!r} is not host:port")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - an explicit ':port' means all interfaces
    return host, int(port)


_DOMAIN = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{text!r} is not a boolean (true/false)")


def optional_path(text: str) -> Path | None:
    return Path(text) if text.strip() else None


@dataclass(frozen=True)
class Option:
    name: str  # attribute of SidecarConfig
    parse: Callable[[str], Any]
    default: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("name", str, "default", "name of the EmailSettings object to follow"),
    Option(
        "namespace",
        str,
        "",
        "its namespace (set from the downward API: metadata.namespace); empty: the "
        "service account's namespace",
    ),
    Option("kubeconfig", optional_path, "", "kubeconfig file; empty: in-cluster, else KUBECONFIG"),
    Option("listen", listen_address, "127.0.0.1:8090", "notification API address (host:port)"),
    Option(
        "probe_listen",
        str,
        ":8091",
        "health, readiness and metrics address for the kubelet and Prometheus; empty: off",
    ),
    Option("spool_dir", Path, "/var/spool/emailsettings", "directory of the durable spool"),
    Option("spool_max_pending", int, "10000", "notifications waiting for delivery, at most"),
    Option("spool_max_bytes", size, "64Mi", "bytes of notifications waiting, at most"),
    Option(
        "spool_max_rows",
        int,
        "100000",
        "rows kept in all (finished ones are kept for the API until retention)",
    ),
    Option("max_request_bytes", size, "256Ki", "largest accepted request body"),
    Option(
        "secret_source",
        str,
        "file",
        "where the SMTP password comes from: 'file' (a mounted Secret) or 'api' (get "
        "the Secret named by spec.smtp.passwordSecretRef)",
    ),
    Option(
        "secret_dir",
        Path,
        "/etc/emailsettings/smtp-secret",
        "mount of the password Secret; the file named by passwordSecretRef.key is read",
    ),
    Option(
        "password_file",
        optional_path,
        "",
        "explicit password file; overrides secret_dir",
    ),
    Option(
        "ca_dir",
        optional_path,
        "/etc/emailsettings/smtp-ca",
        "mount of the CA bundle Secret/ConfigMap; the file named by caBundleRef.key is read "
        "(with secret_source=api it is fetched instead)",
    ),
    Option(
        "templates_dir",
        optional_path,
        "/etc/emailsettings/templates",
        "template overrides (a mounted ConfigMap: <event>.subject.j2, .txt.j2, .html.j2)",
    ),
    Option("rate_per_second", float, "5", "messages per second to one SMTP server, at most"),
    Option("rate_burst", int, "10", "messages sent back to back before the rate applies"),
    Option("batch_size", int, "50", "messages sent over one SMTP connection, at most"),
    Option("retry_base", duration, "2s", "first retry delay; doubles per attempt"),
    Option("retry_max", duration, "5m", "longest retry delay"),
    Option(
        "max_age",
        duration,
        "24h",
        "a notification not delivered within this time is dead-lettered",
    ),
    Option(
        "retention",
        duration,
        "168h",
        "finished notifications stay visible through the API this long",
    ),
    Option(
        "storm_window",
        duration,
        "60s",
        "identical notifications within this window collapse into one message; 0: off",
    ),
    Option("message_id_domain", str, "", "domain of Message-IDs; empty: the sender's domain"),
    Option(
        "smtp_listen",
        str,
        "",
        "SMTP intake address, a loopback host:port such as 127.0.0.1:2525; empty: off",
    ),
    Option(
        "smtp_domain",
        str,
        "localhost",
        "local domain of the SMTP intake's aliases administrative@, error@ and support@",
    ),
    Option(
        "smtp_allow_relay",
        boolean,
        "false",
        "relay SMTP intake mail for other addresses as addressed; false: refuse them at RCPT",
    ),
    Option(
        "smtp_category_header",
        str,
        "X-Notification-Category",
        "header whose value (administrative, error, support; comma-separated) adds categories "
        "to a message taken by SMTP; empty: ignored",
    ),
    Option(
        "smtp_rewrite_from",
        str,
        "always",
        "'always': the From header of relayed mail becomes spec.sender; 'never': kept as sent "
        "(the envelope sender is always spec.sender)",
    ),
    Option("smtp_max_message_bytes", size, "4Mi", "largest message the SMTP intake accepts"),
    Option("smtp_max_connections", int, "8", "concurrent SMTP intake connections, at most"),
    Option(
        "smtp_bare_newline",
        str,
        "normalize",
        "a bare LF or lone CR in SMTP DATA: 'normalize' (to CRLF) or 'reject' (554)",
    ),
    Option("log_level", str, "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Option("shutdown_grace", duration, "10s", "time to finish a send in progress on SIGTERM"),
)


@dataclass(frozen=True)
class SidecarConfig:
    name: str = "default"
    namespace: str = ""
    kubeconfig: Path | None = None
    listen: tuple[str, int] = ("127.0.0.1", 8090)
    probe_listen: str = ":8091"
    spool_dir: Path = Path("/var/spool/emailsettings")
    spool_max_pending: int = 10_000
    spool_max_bytes: int = 64 * 1024 * 1024
    spool_max_rows: int = 100_000
    max_request_bytes: int = 256 * 1024
    secret_source: str = "file"  # noqa: S105 - a source name, not a secret
    secret_dir: Path = Path("/etc/emailsettings/smtp-secret")
    password_file: Path | None = None
    ca_dir: Path | None = Path("/etc/emailsettings/smtp-ca")
    templates_dir: Path | None = Path("/etc/emailsettings/templates")
    rate_per_second: float = 5.0
    rate_burst: int = 10
    batch_size: int = 50
    retry_base: float = 2.0
    retry_max: float = 300.0
    max_age: float = 86400.0
    retention: float = 7 * 86400.0
    storm_window: float = 60.0
    message_id_domain: str = ""
    smtp_listen: str = ""
    smtp_domain: str = "localhost"
    smtp_allow_relay: bool = False
    smtp_category_header: str = "X-Notification-Category"
    smtp_rewrite_from: str = "always"
    smtp_max_message_bytes: int = 4 * 1024 * 1024
    smtp_max_connections: int = 8
    smtp_bare_newline: str = "normalize"
    log_level: str = "INFO"
    shutdown_grace: float = 10.0

    @property
    def probe_address(self) -> tuple[str, int] | None:
        return listen_address(self.probe_listen) if self.probe_listen.strip() else None

    @property
    def smtp_address(self) -> tuple[str, int] | None:
        return listen_address(self.smtp_listen) if self.smtp_listen.strip() else None

    def validate(self) -> SidecarConfig:
        problems = self._smtp_problems()
        if self.secret_source not in {"file", "api"}:
            problems.append("secret_source must be 'file' or 'api'")
        if self.rate_per_second <= 0 or self.rate_burst < 1 or self.batch_size < 1:
            problems.append("rate_per_second, rate_burst and batch_size must be positive")
        if self.retry_base <= 0 or self.retry_max < self.retry_base:
            problems.append("retry_base must be positive and at most retry_max")
        if self.max_age <= 0 or self.retention < 0 or self.storm_window < 0:
            problems.append("max_age must be positive; retention and storm_window not negative")
        if min(self.spool_max_pending, self.spool_max_bytes, self.spool_max_rows) < 1:
            problems.append("spool limits must be positive")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            problems.append("log_level must be DEBUG, INFO, WARNING or ERROR")
        if self.probe_listen.strip():
            listen_address(self.probe_listen)
        if problems:
            raise ConfigError("; ".join(problems))
        return self

    def _smtp_problems(self) -> list[str]:
        problems: list[str] = []
        if self.smtp_listen.strip():
            host, _ = listen_address(self.smtp_listen)
            if not is_loopback_host(host):
                problems.append(
                    f"smtp_listen must be a loopback address (127.0.0.1, ::1 or localhost), "
                    f"not {host!r}: the SMTP intake takes mail without authentication"
                )
        if not _DOMAIN.fullmatch(self.smtp_domain):
            problems.append(f"smtp_domain {self.smtp_domain!r} is not a domain name")
        if self.smtp_category_header and not _HEADER_NAME.fullmatch(self.smtp_category_header):
            problems.append("smtp_category_header must be a header name (or empty)")
        if self.smtp_rewrite_from not in {"always", "never"}:
            problems.append("smtp_rewrite_from must be 'always' or 'never'")
        if self.smtp_bare_newline not in {"normalize", "reject"}:
            problems.append("smtp_bare_newline must be 'normalize' or 'reject'")
        if self.smtp_max_connections < 1:
            problems.append("smtp_max_connections must be positive")
        if self.smtp_max_message_bytes < 1024:
            problems.append("smtp_max_message_bytes must be at least 1024")
        elif self.smtp_listen.strip() and self.smtp_max_message_bytes > self.spool_max_bytes:
            problems.append(
                "smtp_max_message_bytes must be at most spool_max_bytes, or a large message "
                "could never be stored"
            )
        return problems

    def resolved_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        if SERVICE_ACCOUNT_NAMESPACE.exists():
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        return ""


def parser() -> argparse.ArgumentParser:
    epilog = "Every option can also be set by its environment variable:\n" + "\n".join(
        f"  {o.env:<36} {o.flag}" for o in OPTIONS
    )
    result = argparse.ArgumentParser(
        prog="emailsettings-sidecar",
        description="Notification sidecar: takes notifications over HTTP on localhost, "
        "spools them durably and delivers them by SMTP using the EmailSettings it follows.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option in OPTIONS:
        result.add_argument(
            option.flag,
            dest=option.name,
            default=None,
            help=f"{option.help} (env {option.env}; default {option.default!r})",
        )
    return result


def load(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> SidecarConfig:
    environ = os.environ if env is None else env
    args = parser().parse_args(argv)
    values: dict[str, Any] = {}
    known = {f.name for f in fields(SidecarConfig)}
    for option in OPTIONS:
        assert option.name in known
        raw = getattr(args, option.name)
        if raw is None:
            raw = environ.get(option.env, option.default)
        try:
            values[option.name] = option.parse(raw)
        except (ValueError, ConfigError) as error:
            raise ConfigError(f"{option.flag} / {option.env}: {error}") from None
    return SidecarConfig(**values).validate()
