"""Delivery under trouble: SMTP outages, lost replies, refusals, rotation, storms, limits."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from emailsettings.devstack.capture import Mailbox, ReceivedMessage
from emailsettings.devstack.netutil import free_port
from emailsettings.devstack.smtp_server import Credentials, SMTPServer
from emailsettings.sidecar.delivery import TokenBucket

from .helpers import (
    CANARY_PASSWORD,
    SMTP_USER,
    Mounts,
    SettingsObject,
    StartSidecar,
    eventually,
    get_json,
    post,
    spec_for,
    wait_state,
)

pytestmark = [pytest.mark.kube, pytest.mark.smtp]


def agent(name: str) -> dict[str, Any]:
    return {
        "category": "administrative",
        "event": "agent-out-of-date",
        "fields": {"agentName": name},
    }


async def test_smtp_down_then_up_delivers_everything_once(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=True)
    smtp.stop()
    sidecar = await start_sidecar()
    ids = []
    for n in range(20):
        status, body = await post(http, sidecar.url, agent(f"agent-{n}"))
        assert status == 202, body
        ids.append(body["id"])
    first = await wait_state(http, sidecar.url, ids[0], "retrying")
    assert "ConnectionRefused" in first["lastError"]

    async def backing_off() -> bool:
        _, status = await get_json(http, f"{sidecar.url}/v1/status")
        return status["delivery"]["state"] == "backing-off" and bool(
            status["delivery"]["lastError"]
        )

    await eventually(backing_off, what="delivery backing off")
    smtp.start()
    for nid in ids:
        await wait_state(http, sidecar.url, nid, "delivered")
    messages = await asyncio.to_thread(smtp.mailbox.wait_for, 20)
    ids_seen = [str(m.parsed()["Message-ID"]) for m in messages]
    assert len(messages) == 20
    assert len(set(ids_seen)) == 20  # nothing twice: refused connections force no duplicate


class _LosesFirstReply:
    """Stores every message, but drops the connection instead of the first 250."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.dropped = 0

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, _session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or envelope.content or b""
        assert isinstance(content, bytes)
        self.mailbox.add(
            ReceivedMessage(
                str(envelope.mail_from),
                tuple(envelope.rcpt_tos),
                content,
                tls=False,
                auth_user=None,
            )
        )
        if self.dropped == 0:
            self.dropped += 1
            transport = server.transport
            assert isinstance(transport, asyncio.Transport)
            transport.abort()  # the message is stored; the client never hears so
        return "250 2.0.0 queued"


@pytest.fixture
def lossy_smtp() -> Iterator[tuple[int, Mailbox]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(_LosesFirstReply(mailbox), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, mailbox
    controller.stop()


async def test_duplicate_forced_by_lost_reply_keeps_message_id(
    settings: SettingsObject,
    lossy_smtp: tuple[int, Mailbox],
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    port, mailbox = lossy_smtp
    smtp_spec: dict[str, Any] = {"host": "127.0.0.1", "port": port, "encryption": "None"}
    await settings.apply(spec_for(port, smtp=smtp_spec))
    await settings.set_status(ready=True)
    sidecar = await start_sidecar()
    status, body = await post(
        http,
        sidecar.url,
        {**agent("agent-dup"), "idempotencyKey": "order-42"},
    )
    assert status == 202
    state = await wait_state(http, sidecar.url, body["id"], "delivered")
    assert state["attempts"] == 2
    messages = await asyncio.to_thread(mailbox.wait_for, 2)
    assert len(messages) == 2
    first, second = (m.parsed() for m in messages)
    assert first["Message-ID"] == second["Message-ID"] == state["messageId"]
    assert messages[0].data == messages[1].data  # the very same message, twice
    assert messages[0].rcpt_tos == messages[1].rcpt_tos
    # The same key again is the same notification, not a third message.
    status, again = await post(
        http, sidecar.url, agent("agent-dup"), headers={"Idempotency-Key": "order-42"}
    )
    assert (status, again["id"], again["duplicate"]) == (202, body["id"], True)


async def test_permanent_refusal_dead_letters_that_recipient(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    smtp.reject_recipients = {"admin2@example.com", "support@example.com"}
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=True)
    sidecar = await start_sidecar()
    _, partial = await post(http, sidecar.url, agent("agent-1"))
    _, dead = await post(
        http,
        sidecar.url,
        {"category": "support", "event": "access-granted", "fields": {"user": "ann"}},
    )
    state = await wait_state(http, sidecar.url, partial["id"], "partially_delivered")
    by_rcpt = {d["recipient"]: d for d in state["deliveries"]}
    assert by_rcpt["admin@example.com"]["state"] == "sent"
    assert by_rcpt["admin2@example.com"]["state"] == "dead_letter"
    assert by_rcpt["admin2@example.com"]["lastCode"] == 550
    assert "admin2@example.com" in state["deadLetterReason"]
    state = await wait_state(http, sidecar.url, dead["id"], "dead_letter")
    assert state["deliveries"][0]["lastCode"] == 550
    _, listing = await get_json(http, f"{sidecar.url}/v1/notifications?state=dead_letter")
    assert [n["id"] for n in listing["items"]] == [dead["id"]]
    (received,) = await asyncio.to_thread(smtp.mailbox.wait_for, 1)
    assert received.rcpt_tos == ("admin@example.com",)
    metrics = await (await http.get(f"{sidecar.probe_url}/metrics")).text()
    assert 'emailsettings_sidecar_notifications_dead_lettered_total{category="support"' in metrics


async def test_rotated_password_is_used_without_restart(
    settings: SettingsObject,
    smtp: SMTPServer,
    mounts: Mounts,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=True)
    sidecar = await start_sidecar()
    _, one = await post(http, sidecar.url, agent("before"))
    await wait_state(http, sidecar.url, one["id"], "delivered")

    rotated = CANARY_PASSWORD + "-rotated"
    smtp.credentials = Credentials(SMTP_USER, rotated)  # the server changed first
    _, two = await post(http, sidecar.url, agent("during"))
    state = await wait_state(http, sidecar.url, two["id"], "retrying")
    assert "AuthenticationFailed" in state["lastError"]
    mounts.write_password(rotated)  # then the kubelet updated the mounted Secret
    await wait_state(http, sidecar.url, two["id"], "delivered")
    assert [m.auth_user for m in smtp.mailbox.messages] == [SMTP_USER, SMTP_USER]

    # The password never shows: not in logs, metrics or any API answer.
    exposed = [caplog.text]
    paths = ("/v1/status", "/readyz", "/metrics", f"/v1/notifications/{two['id']}")
    exposed += [await (await http.get(sidecar.url + path)).text() for path in paths]
    exposed.append(await (await http.get(f"{sidecar.url}/v1/notifications?limit=10")).text())
    for text in exposed:
        assert CANARY_PASSWORD not in text


async def test_storm_collapses_into_one_message_with_count(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=False, reason="Progressing")
    sidecar = await start_sidecar(storm_window=60.0)
    receipts = [(await post(http, sidecar.url, agent("flappy")))[1] for _ in range(5)]
    other = (await post(http, sidecar.url, agent("steady")))[1]
    leader = receipts[0]["id"]
    assert receipts[0]["state"] == "queued"
    assert all(r["state"] == "collapsed" and r["collapsedInto"] == leader for r in receipts[1:])
    await settings.set_status(ready=True)
    state = await wait_state(http, sidecar.url, leader, "delivered")
    await wait_state(http, sidecar.url, other["id"], "delivered")
    assert state["occurrences"] == 5
    messages = await asyncio.to_thread(smtp.mailbox.wait_for, 2)
    by_agent = {"flappy" in str(m.parsed()["Subject"]): m.parsed() for m in messages}
    storm = by_agent[True]
    assert str(storm["Subject"]).startswith("[5x] Agent out of date: flappy")
    assert storm["X-EmailSettings-Occurrences"] == "5"
    text = storm.get_body(("plain",))
    assert text is not None
    assert "occurred 5 times" in text.get_content()
    assert "X-EmailSettings-Occurrences" not in by_agent[False]
    assert len(messages) == 2
    assert smtp.mailbox.logins == 1  # both over one connection


async def test_rate_limit_paces_messages() -> None:
    bucket = TokenBucket(rate=50, burst=1)
    started = time.monotonic()
    for _ in range(11):
        await bucket.acquire()
    assert time.monotonic() - started >= 10 / 50  # the first is free, then 50 a second


async def test_full_spool_answers_503_never_202(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=False, reason="Progressing")
    sidecar = await start_sidecar(spool_max_pending=3)
    for n in range(3):
        assert (await post(http, sidecar.url, agent(f"a{n}")))[0] == 202
    async with http.post(f"{sidecar.url}/v1/notifications", json=agent("a4")) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "30"
        body = await response.json(content_type="application/problem+json")
    assert "spool is full" in body["detail"]
    assert "limit 3" in body["detail"]
    status, ready = await get_json(http, f"{sidecar.probe_url}/readyz")
    assert (status, ready["reason"]) == (503, "SpoolFull")


async def test_disk_full_answers_503_and_recovers(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=False, reason="Progressing")
    sidecar = await start_sidecar()
    assert (await post(http, sidecar.url, agent("fits")))[0] == 202

    def disk_full(conn: sqlite3.Connection) -> None:  # SQLITE_FULL, as on a full volume
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages}")

    await sidecar.spool.execute(disk_full)
    big = {**agent("big"), "body": "x" * 60_000}
    status, body = await post(http, sidecar.url, big)
    assert status == 503, body
    assert "disk is full" in body["detail"]
    _, state = await get_json(http, f"{sidecar.url}/v1/status")
    assert state["spool"]["healthy"] is False
    assert "disk is full" in state["spool"]["error"]

    def disk_freed(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA max_page_count=1073741823")

    await sidecar.spool.execute(disk_freed)
    status, ready = await get_json(http, f"{sidecar.probe_url}/readyz")
    assert (status, ready["ready"]) == (200, True)
    assert (await post(http, sidecar.url, big))[0] == 202
