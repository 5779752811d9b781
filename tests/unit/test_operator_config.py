"""Operator settings from the environment and flags; JSON logs; secret redaction."""

from __future__ import annotations

import json
import logging

from emailsettings.controller import config
from emailsettings.controller.logs import JSONFormatter, SecretRedactor


def test_environment_then_flags() -> None:
    settings = config.load(
        ["--workers", "4"],
        {
            "EMAILSETTINGS_NAMESPACES": "a, b",
            "EMAILSETTINGS_LOG_FORMAT": "json",
            "EMAILSETTINGS_WORKERS": "9",
        },
    )
    assert settings.namespaces == ("a", "b")
    assert not settings.clusterwide
    assert settings.log_format == "json"
    assert settings.workers == 4
    assert config.load([], {}).clusterwide


def test_auto_priority_is_positive() -> None:
    assert config.load(["--priority", "auto"], {}).priority > 0


def test_json_lines_and_redaction() -> None:
    SecretRedactor.register("hunter2-canary")
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "login with %s", ("hunter2-canary",), None
    )
    assert SecretRedactor().filter(record)
    line = json.loads(JSONFormatter().format(record))
    assert line["message"] == "login with <redacted>"
    assert line["level"] == "INFO"
    SecretRedactor.forget("hunter2-canary")
