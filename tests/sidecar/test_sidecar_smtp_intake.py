"""The SMTP intake end to end: application (smtplib, swaks) -> sidecar -> real SMTP server.

The EmailSettings is set by hand in an `sc-*` namespace; the upstream is the
STARTTLS + AUTH fixture server, so every delivery uses the verified settings and
the password the application never sees.
"""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from emailsettings.devstack.capture import ReceivedMessage
from emailsettings.devstack.netutil import free_port
from emailsettings.devstack.smtp_server import SMTPServer
from emailsettings.sidecar.main import Sidecar

from .helpers import (
    CANARY_PASSWORD,
    RECIPIENTS,
    SMTP_USER,
    Mounts,
    SettingsObject,
    SidecarProcess,
    StartSidecar,
    eventually,
    get_json,
    process_env,
    spec_for,
    wait_state,
)
from .smtp_clients import SMUGGLE, message, send, smuggle, swaks

pytestmark = [pytest.mark.kube, pytest.mark.smtp]

SENDER_HEADER = "Notifier Bot <notifier@example.com>"


def parsed(received: ReceivedMessage) -> EmailMessage:
    result = message_from_bytes(received.data, policy=policy.default)
    assert isinstance(result, EmailMessage)
    return result


def smtp_port(sidecar: Sidecar) -> int:
    address = sidecar.smtp_address
    assert address is not None
    return address[1]


async def ready_sidecar(
    settings: SettingsObject, smtp: SMTPServer, start_sidecar: StartSidecar, **overrides: Any
) -> Sidecar:
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=True)
    return await start_sidecar(smtp_listen="127.0.0.1:0", **overrides)


async def spool_empty(http: aiohttp.ClientSession, base: str) -> None:
    async def empty() -> bool:
        _, status = await get_json(http, f"{base}/v1/status")
        return bool(status["spool"]["pending"] == 0)

    await eventually(empty, what="an empty spool")


async def test_aliases_expand_to_each_category_with_smtplib_and_swaks(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    sidecar = await ready_sidecar(settings, smtp, start_sidecar)
    port = smtp_port(sidecar)
    admin = await asyncio.to_thread(
        send, port, ["administrative@localhost"], message("for the admins")
    )
    assert admin.code == 250, admin
    by_swaks = {}
    for category in ("error", "support"):
        result = await asyncio.to_thread(
            swaks,
            port,
            "--pipeline",
            "--from",
            "app@app.test",
            "--to",
            f"{category}@localhost",
            "--header",
            f"Subject: for {category}",
            "--body",
            f"sent by swaks to {category}@",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        by_swaks[category] = result.stdout
    # The header adds a category to the one the address selects.
    both = await asyncio.to_thread(
        send,
        port,
        ["error@localhost"],
        message("error and support", extra="X-Notification-Category: support\r\n"),
    )
    assert both.code == 250, both
    await wait_state(http, sidecar.url, both.queue_id, "delivered")
    received = await asyncio.to_thread(smtp.mailbox.wait_for, 4)
    by_subject = {str(parsed(m)["Subject"]): m for m in received}
    assert set(by_subject) == {
        "for the admins",
        "for error",
        "for support",
        "error and support",
    }
    expected = {
        "for the admins": RECIPIENTS["administrative"],
        "for error": RECIPIENTS["error"],
        "for support": RECIPIENTS["support"],
        "error and support": RECIPIENTS["error"] + RECIPIENTS["support"],
    }
    for subject, recipients in expected.items():
        got = by_subject[subject]
        assert list(got.rcpt_tos) == recipients, subject
        # The verified settings were used: envelope sender, From, TLS, the real login.
        assert got.mail_from == "notifier@example.com"
        assert got.tls
        assert got.auth_user == SMTP_USER
        headers = parsed(got)
        assert str(headers["From"]) == SENDER_HEADER
        assert "emailsettings-sidecar" in str(headers["Received"])
    # The application's own Message-ID goes through unchanged.
    original = message_from_bytes(message("for the admins"), policy=policy.default)
    assert parsed(by_subject["for the admins"])["Message-ID"] == original["Message-ID"]
    view = await wait_state(http, sidecar.url, admin.queue_id, "delivered")
    assert view["category"] == "administrative"
    assert view["event"] == "smtp"
    assert [d["recipient"] for d in view["deliveries"]] == RECIPIENTS["administrative"]
    assert "Ok: queued as" in by_swaks["error"]
    async with http.get(f"{sidecar.url}/metrics") as response:
        metrics = await response.text()
    assert 'emailsettings_sidecar_smtp_intake_messages_total{result="accepted"} 4.0' in metrics
    assert 'emailsettings_sidecar_notifications_delivered_total{category="mixed"} 1.0' in metrics


async def test_relay_as_addressed_and_from_kept_when_configured(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    sidecar = await ready_sidecar(
        settings, smtp, start_sidecar, smtp_allow_relay=True, smtp_rewrite_from="never"
    )
    sent = await asyncio.to_thread(
        send,
        smtp_port(sidecar),
        ["ops@example.org", "support@localhost"],
        message("relayed", to="ops@example.org"),
    )
    assert sent.code == 250, sent
    await wait_state(http, sidecar.url, sent.queue_id, "delivered")
    (got,) = await asyncio.to_thread(smtp.mailbox.wait_for, 1)
    assert list(got.rcpt_tos) == [*RECIPIENTS["support"], "ops@example.org"]
    assert got.mail_from == "notifier@example.com"  # the envelope sender always
    assert str(parsed(got)["From"]) == "App <app@localhost>"  # kept, as configured

    # The same per-recipient dead letters as notifications: the server refuses one address.
    smtp.reject_recipients.add("gone@example.org")
    bounced = await asyncio.to_thread(
        send,
        smtp_port(sidecar),
        ["gone@example.org", "error@localhost"],
        message("partly refused", to="gone@example.org"),
    )
    view = await wait_state(http, sidecar.url, bounced.queue_id, "partially_delivered")
    states = {d["recipient"]: (d["state"], d["lastCode"]) for d in view["deliveries"]}
    assert states == {
        **dict.fromkeys(RECIPIENTS["error"], ("sent", 250)),
        "gone@example.org": ("dead_letter", 550),
    }


async def test_upstream_down_then_up(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    smtp.stop()
    sidecar = await ready_sidecar(settings, smtp, start_sidecar)
    sent = await asyncio.to_thread(
        send, smtp_port(sidecar), ["error@localhost"], message("while down")
    )
    assert sent.code == 250  # taken and on disk, though the server is down
    waiting = await wait_state(http, sidecar.url, sent.queue_id, "retrying")
    assert "ConnectionRefused" in waiting["lastError"]
    smtp.start()
    await wait_state(http, sidecar.url, sent.queue_id, "delivered")
    await spool_empty(http, sidecar.url)
    (got,) = smtp.mailbox.messages  # once
    assert list(got.rcpt_tos) == RECIPIENTS["error"]
    assert str(parsed(got)["Subject"]) == "while down"


async def test_smuggling_attempts_never_make_a_second_message_upstream(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    sidecar = await ready_sidecar(settings, smtp, start_sidecar)
    port = smtp_port(sidecar)
    for name, variant in SMUGGLE.items():
        answers = await asyncio.to_thread(smuggle, port, variant)
        assert answers[-2].startswith("250 "), (name, answers)
    await spool_empty(http, sidecar.url)
    received = smtp.mailbox.messages
    assert len(received) == len(SMUGGLE)  # one per DATA
    for got in received:
        headers = parsed(got)
        assert str(headers["Subject"]) == "innocent"
        assert list(got.rcpt_tos) == RECIPIENTS["administrative"]  # not error@'s list
        assert got.mail_from == "notifier@example.com"
        # The would-be commands arrived as the text of the one message.
        assert b"MAIL FROM:<evil@example.org>" in got.data
    assert not any(b"evil@example.org" in m.mail_from.encode() for m in received)


async def test_sigkill_after_250_then_restart_delivers(
    settings: SettingsObject,
    smtp: SMTPServer,
    mounts: Mounts,
    control_plane: Path,
    sc_namespace: str,
    tmp_path: Path,
) -> None:
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=True)
    smtp.stop()  # nothing can be delivered before the kill
    smtp_listen = f"127.0.0.1:{free_port()}"
    spool_dir = tmp_path / "spool"

    def new_process(n: int) -> SidecarProcess:
        env = process_env(
            kubeconfig=control_plane,
            namespace=sc_namespace,
            spool_dir=spool_dir,
            mounts=mounts,
            EMAILSETTINGS_SMTP_LISTEN=smtp_listen,
        )
        return SidecarProcess(env, tmp_path / f"sidecar-{n}.log")

    port = int(smtp_listen.rpartition(":")[2])
    first = new_process(1)
    await asyncio.to_thread(first.start)
    try:
        result = await asyncio.to_thread(
            swaks,
            port,
            "--from",
            "app@app.test",
            "--to",
            "administrative@localhost",
            "--header",
            "Subject: survives SIGKILL",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        queued = [line for line in result.stdout.splitlines() if "queued as" in line]
        assert queued, result.stdout
        await asyncio.to_thread(first.kill)  # right after the 250: no handler runs
    finally:
        first.stop()
    assert smtp.mailbox.messages == []
    smtp.start()
    second = new_process(2)
    await asyncio.to_thread(second.start)
    try:
        (got,) = await asyncio.to_thread(smtp.mailbox.wait_for, 1, 30)
        assert str(parsed(got)["Subject"]) == "survives SIGKILL"
        assert list(got.rcpt_tos) == RECIPIENTS["administrative"]
        async with aiohttp.ClientSession() as http:
            await spool_empty(http, second.url)
    finally:
        assert second.stop() == 0
    assert len(smtp.mailbox.messages) == 1
    for log in (first.logs(), second.logs()):
        assert CANARY_PASSWORD not in log
        assert "SMTP intake listening on 127.0.0.1:" in log
