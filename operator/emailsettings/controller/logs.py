"""Logging setup: text or JSON lines, with a last-line redaction of known secrets.

Passwords never reach log calls by construction; the redaction filter is a second
line of defence in case a library logs something it was handed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, ClassVar


class SecretRedactor(logging.Filter):
    """Replaces every registered secret value in a record's final message."""

    _lock = threading.Lock()
    _secrets: ClassVar[set[str]] = set()

    @classmethod
    def register(cls, value: str) -> None:
        if len(value) >= 4:  # redacting tiny strings would mangle ordinary text
            with cls._lock:
                cls._secrets.add(value)

    @classmethod
    def forget(cls, value: str) -> None:
        with cls._lock:
            cls._secrets.discard(value)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        with self._lock:
            secrets = list(self._secrets)
        redacted = message
        for secret in secrets:
            redacted = redacted.replace(secret, "<redacted>")
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:
            # Tracebacks may quote locals' reprs; drop them rather than risk it.
            record.exc_text = f"{record.exc_info[0].__name__ if record.exc_info[0] else ''}"
            record.exc_info = None
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for attribute in ("k8s_skip", "k8s_ref"):
            value = getattr(record, attribute, None)
            if isinstance(value, dict):
                entry["object"] = {k: value.get(k) for k in ("namespace", "name") if k in value}
        if record.exc_text:
            entry["error"] = record.exc_text
        return json.dumps(entry, default=str)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(SecretRedactor())
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access logs and kopf's per-event chatter are noise at INFO.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").setLevel(max(logging.getLevelName(level), logging.WARNING))
