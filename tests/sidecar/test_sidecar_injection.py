"""Header injection end to end: every field, through intake, spool and SMTP.

What the intake refuses is covered in test_sidecar_intake; here are the values it
accepts (fields may span lines, bodies may hold anything but NUL, the sender comes
from the EmailSettings) and what reaches the mail server: exactly the headers we
set, each once, to exactly the configured recipients, and one message per
notification.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import pytest

from emailsettings.devstack.smtp_server import SMTPServer
from emailsettings.sidecar.compose import BASE_HEADERS

from .helpers import RECIPIENTS, SettingsObject, StartSidecar, post, spec_for, wait_state

pytestmark = [pytest.mark.kube, pytest.mark.smtp]

EVIL = "evil@example.net"
ENCODED_CRLF = "=?utf-8?b?" + base64.b64encode(f"x\r\nBcc: {EVIL}".encode()).decode() + "?="

ACCEPTED: list[dict[str, Any]] = [
    # A field that lands in the subject, with every kind of line break.
    {
        "category": "administrative",
        "event": "agent-out-of-date",
        "fields": {"agentName": f"a1\r\nBcc: {EVIL}\nX-A: 1\rX-B: 2\u2028X-C\x85X-D"},
    },
    # Encoded-word tricks in the subject and in a field.
    {
        "category": "support",
        "event": "custom-alert",
        "subject": f"Alert {ENCODED_CRLF}",
        "body": "see subject",
    },
    {
        "category": "error",
        "event": "error-report",
        "fields": {"message": f"{ENCODED_CRLF} =?utf-8?q?=0D=0ABcc:_{EVIL}?="},
    },
    # SMTP smuggling attempts in the body: a lone dot, bare CR/LF, a second envelope.
    {
        "category": "support",
        "event": "request-for-assistance",
        "fields": {"requester": "ann", "message": "hi"},
        "body": f"line\r\n.\r\nMAIL FROM:<{EVIL}>\r\nRCPT TO:<{EVIL}>\r\nDATA\r\nx\n.\nbare\rcr",
    },
    # Header-looking text in a multi-line field value.
    {
        "category": "administrative",
        "event": "exception-detected",
        "fields": {"message": "boom", "stackTrace": f"\r\n\r\nBcc: {EVIL}\r\nSubject: owned"},
    },
]


async def test_no_field_can_add_a_header_or_a_recipient(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    # The sender display name, from the EmailSettings, carries an encoded-word trick too.
    await settings.apply(spec_for(smtp.port, sender=f'"{ENCODED_CRLF}" <notifier@example.com>'))
    await settings.set_status(ready=True)
    sidecar = await start_sidecar()
    ids = []
    for payload in ACCEPTED:
        status, body = await post(http, sidecar.url, payload)
        assert status == 202, body
        ids.append(body["id"])
    for nid in ids:
        await wait_state(http, sidecar.url, nid, "delivered")
    messages = await asyncio.to_thread(smtp.mailbox.wait_for, len(ACCEPTED))
    assert len(smtp.mailbox.messages) == len(ACCEPTED)  # nothing smuggled in as extra mail
    expected_headers = sorted(h.lower() for h in BASE_HEADERS)
    for received in messages:
        message = received.parsed()
        assert sorted(k.lower() for k in message) == expected_headers
        assert EVIL not in received.rcpt_tos
        category = str(message["X-EmailSettings-Category"])
        assert sorted(received.rcpt_tos) == sorted(RECIPIENTS[category])
        assert received.mail_from == "notifier@example.com"
        for name in ("Subject", "From", "To"):
            value = str(message[name])
            assert "\r" not in value
            assert "\n" not in value
        assert [a.addr_spec for a in message["From"].addresses] == ["notifier@example.com"]
        assert EVIL not in str(message["To"])
        # The raw header block, without any parser: one line per header we set, and
        # every other line a folded continuation (starts with white space).
        header_block = received.data.split(b"\r\n\r\n", 1)[0]
        names = [
            line.split(b":", 1)[0].decode().lower()
            for line in header_block.split(b"\r\n")
            if not line.startswith((b" ", b"\t"))
        ]
        assert sorted(names) == expected_headers
    smuggled = next(
        m.parsed()
        for m in messages
        if m.parsed()["X-EmailSettings-Event"] == "request-for-assistance"
    )
    text = smuggled.get_body(("plain",))
    assert text is not None
    assert f"MAIL FROM:<{EVIL}>" in text.get_content()  # delivered as text, inside the body
