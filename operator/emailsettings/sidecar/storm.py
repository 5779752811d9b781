"""Storm control: which notifications count as "the same".

Two notifications are identical when category, event and the event's key fields
match (for custom events: all fields, subject and body). Within the storm
window the spool counts them into one message instead of sending each; the
message then says how many occurred (see spool.Spool.add for the timing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from emailsettings.sidecar.templates import EventType


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def storm_key(
    category: str,
    event: EventType,
    fields: Mapping[str, str],
    subject: str | None,
    body: str | None,
) -> str:
    if event.key_fields:
        identity: object = {name: fields.get(name, "") for name in event.key_fields}
    else:
        identity = {"fields": dict(fields), "subject": subject, "body": body}
    return _digest([category, event.id, identity])


def fingerprint(
    category: str,
    event: str,
    fields: Mapping[str, str],
    subject: str | None,
    body: str | None,
) -> str:
    """The whole content, to tell a retried request from a different one with the same key."""
    return _digest([category, event, dict(fields), subject, body])
