"""The SMTP intake on its own (spool, no delivery): real clients, every refusal, the 250 promise."""

from __future__ import annotations

import asyncio
import smtplib
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from emailsettings.sidecar import relay
from emailsettings.sidecar.compose import ComposeError
from emailsettings.sidecar.config import OPTIONS, ConfigError, SidecarConfig, load
from emailsettings.sidecar.metrics import Metrics
from emailsettings.sidecar.smtp_intake import (
    SMTPIntake,
    SMTPIntakeSettings,
    is_loopback,
)
from emailsettings.sidecar.spool import _SCHEMA, Due, Limits, Spool, State

from .helpers import eventually
from .smtp_clients import (
    SMUGGLE,
    RawSession,
    Sent,
    message,
    non_loopback_ipv4,
    send,
    smtp_source_path,
    smuggle,
    swaks,
)


@dataclass
class Harness:
    intake: SMTPIntake
    spool: Spool
    metrics: Metrics
    port: int

    async def due(self) -> list[Due]:
        return await self.spool.due(now=1e12, limit=100)

    async def raw(self, item: Due) -> bytes:
        data = await self.spool.raw_message(item.id)
        assert data is not None
        return data

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(
            f"emailsettings_sidecar_{name}", labels or None
        )
        return 0.0 if value is None else float(value)

    async def send(self, recipients: list[str], data: bytes, **kwargs: Any) -> Sent:
        return await asyncio.to_thread(send, self.port, recipients, data, **kwargs)


StartIntake = Callable[..., Awaitable[Harness]]


def in_thread(fn: Callable[..., Sent], *args: Any) -> asyncio.Future[Sent]:
    """Run a blocking client in a thread of its own (not the small default executor)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Sent] = loop.create_future()

    def run() -> None:
        try:
            result = fn(*args)
        except Exception as error:  # noqa: BLE001 - handed to the awaiting test
            loop.call_soon_threadsafe(future.set_exception, error)
        else:
            loop.call_soon_threadsafe(future.set_result, result)

    threading.Thread(target=run, daemon=True).start()
    return future


@pytest.fixture
async def start_intake(tmp_path: Path) -> AsyncIterator[StartIntake]:
    started: list[Harness] = []

    async def start(
        *, host: str = "127.0.0.1", limits: Limits | None = None, **settings: Any
    ) -> Harness:
        spool = Spool(tmp_path / f"spool-{len(started)}", limits)
        spool.open()
        metrics = Metrics()
        intake = SMTPIntake(
            spool=spool,
            metrics=metrics,
            settings=SMTPIntakeSettings(hostname="sidecar.test", **settings),
        )
        addresses = await intake.start(host, 0)
        harness = Harness(intake, spool, metrics, addresses[0][1])
        started.append(harness)
        return harness

    yield start
    for harness in started:
        await harness.intake.close(grace=5)
        harness.spool.close()


async def test_ehlo_offers_the_extensions_and_no_auth(start_intake: StartIntake) -> None:
    harness = await start_intake(max_message_bytes=65536)

    def ehlo() -> dict[str, str]:
        with smtplib.SMTP("127.0.0.1", harness.port, timeout=10) as client:
            client.ehlo("app.test")
            return dict(client.esmtp_features)

    features = await asyncio.to_thread(ehlo)
    assert features["size"] == "65536"
    for extension in ("8bitmime", "smtputf8", "pipelining"):
        assert extension in features
    assert "auth" not in features  # no authentication from loopback
    assert "starttls" not in features


async def test_aliases_header_and_postmaster_select_categories(start_intake: StartIntake) -> None:
    harness = await start_intake()
    first = await harness.send(["administrative@localhost"], message("one"))
    # Case does not matter; the header adds a category; RFC 5321's bare <postmaster> works.
    second = await harness.send(
        ["ERROR@LocalHost", "error@localhost"],
        message("two", extra="X-Notification-Category: Support, error\r\n"),
    )
    third = await harness.send(["postmaster"], message("three"))
    assert first.reply.startswith("2.0.0 Ok: queued as ")
    due = {d.id: d for d in await harness.due()}
    assert due[first.queue_id].categories == ("administrative",)
    assert due[first.queue_id].category == "administrative"
    assert due[second.queue_id].categories == ("error", "support")
    assert due[second.queue_id].category == "mixed"
    assert due[third.queue_id].categories == ("administrative",)
    item = due[first.queue_id]
    assert item.relayed
    assert item.event == "smtp"
    assert item.message_id is not None
    assert item.message_id.endswith("@app.test>")
    stored = await harness.raw(item)
    assert stored.startswith(b"Received: from app.test ([127.0.0.1])\r\n\tby sidecar.test")
    assert b"\r\nDate: " in stored  # added: the application sent none
    assert stored.endswith(b"\r\n\r\n97% used on /data\r\n")
    assert harness.metric("smtp_intake_messages_total", result="accepted") == 3
    accepted = harness.metric("notifications_accepted_total", category="administrative")
    assert accepted == 2


async def test_category_header_with_an_unknown_value_is_refused(start_intake: StartIntake) -> None:
    harness = await start_intake()
    sent = await harness.send(
        ["error@localhost"], message(extra="X-Notification-Category: urgent\r\n")
    )
    assert sent.code == 554
    assert "'urgent' is not a category" in sent.reply
    assert await harness.due() == []


async def test_other_addresses_are_refused_at_rcpt_unless_relaying(
    start_intake: StartIntake,
) -> None:
    closed = await start_intake()
    refused = await closed.send(["someone@example.org"], message())
    assert refused.code == 550
    assert refused.reply.startswith("5.7.1 <someone@example.org>: relaying denied")
    assert "administrative@localhost, error@localhost, support@localhost" in refused.reply
    unknown = await closed.send(["sales@localhost"], message())
    assert (unknown.code, unknown.reply[:5]) == (550, "5.1.1")
    assert "no such alias" in unknown.reply
    assert closed.metric("smtp_intake_refused_addresses_total", reason="relay_denied") == 1

    # A refused recipient does not spoil the others in the same transaction.
    def mixed() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", closed.port, timeout=10) as client:
            return client.sendmail("app@localhost", ["a@example.org", "error@localhost"], message())

    assert (await asyncio.to_thread(mixed))["a@example.org"][0] == 550
    assert [d.categories for d in await closed.due()] == [("error",)]

    open_relay = await start_intake(allow_relay=True)
    relayed = await open_relay.send(
        ["Someone@Example.org", "support@localhost"], message(to="someone@example.org")
    )
    assert relayed.code == 250
    (item,) = await open_relay.due()
    assert (item.categories, item.relay_to) == (("support",), ("Someone@example.org",))
    # Relayed addresses are judged as the EmailSettings' own: email-validator, ASCII only.
    for bad, why in [
        ("ops@example.invalid", "special-use"),
        ("jörg@example.com", "SMTPUTF8"),
    ]:
        sent = await open_relay.send([bad], message(), mail_options=("SMTPUTF8",))
        assert (sent.code, sent.reply[:5]) == (553, "5.1.3"), sent
        assert why in sent.reply


async def test_malformed_addresses_get_501_or_553(start_intake: StartIntake) -> None:
    harness = await start_intake()

    def session() -> list[str]:
        raw = RawSession(harness.port)
        try:
            answers = [raw.command(b"EHLO app.test")]
            answers.append(raw.command(b"MAIL FROM:<no-at-sign>"))
            answers.append(raw.command(b"MAIL FROM:<a@b> BODY=9BIT"))
            answers.append(raw.command(b"MAIL FROM:app@localhost"))
            answers.append(raw.command(b"RCPT TO:<a@b@c>"))
            answers.append(raw.command(b"RCPT TO:<error>"))
            answers.append(raw.command(b"RCPT TO:"))
            answers.append(raw.command(b"RCPT TO:<error@localhost>"))
            answers.append(raw.command(b"QUIT"))
            return answers
        finally:
            raw.close()

    answers = await asyncio.to_thread(session)
    assert answers[1].startswith("553 5.1.7 <no-at-sign>")
    assert answers[2].startswith("501 ")
    assert answers[3].startswith("250 ")  # no angle brackets: aiosmtpd is lenient, so are we
    assert answers[4].startswith("553 ")
    assert answers[5].startswith("553 5.1.3 <error>: a full address")
    assert answers[6].startswith("501 ")
    assert answers[7].startswith("250 ")


async def test_oversize_messages_are_refused_at_mail_and_at_data(
    start_intake: StartIntake,
) -> None:
    harness = await start_intake(max_message_bytes=2048)
    at_mail = await harness.send(["error@localhost"], message(), mail_options=("SIZE=4096",))
    assert (at_mail.code, at_mail.reply) == (552, "5.3.4 Message too big: the limit is 2048 bytes")
    big = message(body="y" * 70 + "\r\n") * 40  # no SIZE= given: refused at the end of DATA
    at_data = await harness.send(["error@localhost"], big)
    assert (at_data.code, at_data.reply) == (552, "5.3.4 Message too big: the limit is 2048 bytes")
    long_line = await harness.send(["error@localhost"], message(body="z" * 1200 + "\r\n"))
    assert (long_line.code, long_line.reply[:5]) == (500, "5.5.2")
    # A message within the limits is taken.
    assert (await harness.send(["error@localhost"], message())).code == 250
    assert len(await harness.due()) == 1
    assert harness.metric("smtp_intake_messages_total", result="too_big") == 2


async def test_bare_lf_and_lone_cr_cannot_smuggle_a_second_message(
    start_intake: StartIntake,
) -> None:
    harness = await start_intake()
    for name, variant in SMUGGLE.items():
        answers = await asyncio.to_thread(smuggle, harness.port, variant)
        assert answers[-2].startswith("250 2.0.0 Ok: queued as "), (name, answers)
        assert answers[-1].startswith("221"), (name, answers)  # QUIT, not part of the data
    due = await harness.due()
    assert len(due) == len(SMUGGLE)  # one message per DATA, never a second one
    for item in due:
        stored = await harness.raw(item)
        assert not relay.has_bare_line_ending(stored)
        assert b"\r\nMAIL FROM:<evil@example.org>\r\n" in stored  # mere text now
        assert item.categories == ("administrative",)
        # What goes out is dot-stuffed by the client: the lone dot line cannot end DATA.
        wire = _dot_stuffed(
            relay.for_delivery(stored, sender=("Bot", "bot@example.com"), message_id="<m@x>")
        )
        assert wire.count(b"\r\n.\r\n") == 1  # only the real end of the one message
        assert wire.endswith(b"\r\n.\r\n")
    assert harness.metric("smtp_intake_bare_newlines_total") == len(SMUGGLE)

    strict = await start_intake(bare_newline="reject")
    answers = await asyncio.to_thread(smuggle, strict.port, SMUGGLE["LF"])
    assert answers[-2].startswith("554 5.6.0 Message refused: a bare LF or CR")
    assert await strict.due() == []


def _dot_stuffed(data: bytes) -> bytes:
    from emailsettings.smtp.envelope import data_payload  # noqa: PLC0415

    return data_payload(data)


async def test_nul_in_data_is_refused(start_intake: StartIntake) -> None:
    harness = await start_intake()
    sent = await harness.send(["error@localhost"], message(body="a\x00b\r\n"))
    assert (sent.code, sent.reply[:5]) == (554, "5.6.0")
    assert await harness.due() == []


async def test_full_spool_answers_452_never_250(start_intake: StartIntake) -> None:
    harness = await start_intake(limits=Limits(max_pending=2))
    answers = [await harness.send(["error@localhost"], message(f"m{n}")) for n in range(4)]
    assert [a.code for a in answers] == [250, 250, 452, 452]
    assert answers[2].reply.startswith("4.3.1 Insufficient system storage: the spool is full")
    assert len(await harness.due()) == 2
    assert harness.metric("smtp_intake_messages_total", result="spool_full") == 2

    by_bytes = await start_intake(limits=Limits(max_pending_bytes=1500))
    first = await by_bytes.send(["error@localhost"], message(body="x" * 600 + "\r\n"))
    second = await by_bytes.send(["error@localhost"], message(body="y" * 600 + "\r\n"))
    assert (first.code, second.code) == (250, 452)

    broken = await start_intake()
    broken.spool.close()  # the spool is gone: nothing can be stored
    sent = await broken.send(["error@localhost"], message())
    assert (sent.code, sent.reply[:5]) == (451, "4.3.0")


async def test_250_waits_for_the_commit_and_concurrent_messages_share_it(
    start_intake: StartIntake,
) -> None:
    harness = await start_intake()
    spool = harness.spool
    entered, release = threading.Event(), threading.Event()

    def hold_the_writer(_conn: sqlite3.Connection) -> None:
        entered.set()
        release.wait(30)

    blocker = asyncio.create_task(spool.execute(hold_the_writer))
    await asyncio.to_thread(entered.wait, 10)
    clients = 8
    replies = [
        in_thread(send, harness.port, ["error@localhost"], message(f"c{n}")) for n in range(clients)
    ]

    async def all_waiting_for_the_commit() -> bool:
        return spool._queue.qsize() >= clients

    await eventually(all_waiting_for_the_commit, what="every DATA waiting for the spool")
    assert not any(reply.done() for reply in replies)  # no 250 before the commit
    commits = spool.commits
    release.set()
    await blocker
    sent = await asyncio.gather(*replies)
    assert [s.code for s in sent] == [250] * clients
    # The writer took all eight in one transaction: one commit (one fsync) for all.
    assert spool.commits - commits <= 2
    assert len(await harness.due()) == clients


async def test_non_loopback_peers_are_refused(start_intake: StartIntake) -> None:
    assert is_loopback(("127.0.0.1", 25))
    assert is_loopback(("127.8.9.10", 25))
    assert is_loopback(("::1", 25, 0, 0))
    assert is_loopback(("::ffff:127.0.0.1", 25, 0, 0))
    for peer in [("192.0.2.2", 25), ("::ffff:10.0.0.1", 25, 0, 0), ("fe80::1%eth0", 25, 0, 2)]:
        assert not is_loopback(peer)
    assert not is_loopback(None)
    assert not is_loopback("127.0.0.1")
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback address; the peer check is tested above")
    # Bound to every interface (the configuration refuses that; the check must still hold).
    harness = await start_intake(host="0.0.0.0")

    def connect_from(source: str) -> smtplib.SMTP:
        return smtplib.SMTP(address, harness.port, timeout=10, source_address=(source, 0))

    with pytest.raises(smtplib.SMTPConnectError) as refused:
        await asyncio.to_thread(connect_from, address)
    assert refused.value.smtp_code == 554
    assert b"loopback only" in refused.value.smtp_error
    assert harness.metric("smtp_intake_connections_total", result="refused_not_loopback") == 1
    # The same listener still serves loopback.
    assert (await harness.send(["error@localhost"], message())).code == 250


async def test_connection_limit(start_intake: StartIntake) -> None:
    harness = await start_intake(max_connections=1)
    first = await asyncio.to_thread(RawSession, harness.port)
    try:
        assert first.greeting.startswith("220 sidecar.test ESMTP emailsettings-sidecar")

        async def counted() -> bool:
            return len(harness.intake.sessions) == 1

        await eventually(counted, what="the first session")
        second = await asyncio.to_thread(RawSession, harness.port)
        assert second.greeting.startswith("421 4.7.0 Too many connections")
        second.close()
    finally:
        first.close()


async def test_swaks_pipelining_session(start_intake: StartIntake) -> None:
    harness = await start_intake()
    result = await asyncio.to_thread(
        swaks,
        harness.port,
        "--pipeline",
        "--from",
        "app@localhost",
        "--to",
        "support@localhost,error@localhost",
        "--header",
        "Subject: pipelined",
        "--body",
        "sent by swaks",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PIPELINING" in result.stdout
    (item,) = await harness.due()
    assert item.categories == ("support", "error")
    assert b"Subject: pipelined" in await harness.raw(item)


async def test_postfix_smtp_source_concurrent_sessions(start_intake: StartIntake) -> None:
    harness = await start_intake()
    commits = harness.spool.commits
    process = await asyncio.create_subprocess_exec(
        smtp_source_path(),
        *("-c", "-m", "40", "-s", "8", "-S", "load", "-f", "app@localhost"),
        *("-t", "error@localhost", f"127.0.0.1:{harness.port}"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    due = await harness.due()
    assert len(due) == 40
    assert {d.categories for d in due} == {("error",)}
    # Eight sessions at once: their DATA completions shared commits.
    print(f"40 messages from 8 concurrent sessions: {harness.spool.commits - commits} commits")


async def test_storm_of_identical_messages_collapses(start_intake: StartIntake) -> None:
    harness = await start_intake(storm_window=60)
    sent = [await harness.send(["error@localhost"], message("same")) for _ in range(3)]
    other = await harness.send(["error@localhost"], message("different"))
    assert "counted into" in sent[1].reply
    assert "counted into" not in other.reply
    due = {d.id: d for d in await harness.due()}
    assert set(due) == {sent[0].queue_id, other.queue_id}
    assert due[sent[0].queue_id].occurrences == 3
    view = await harness.spool.get(sent[2].queue_id)
    assert view is not None
    assert view.state is State.COLLAPSED


async def test_shutting_down_answers_451(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.open()
    accepting = True
    intake = SMTPIntake(
        spool=spool,
        metrics=Metrics(),
        settings=SMTPIntakeSettings(hostname="sidecar.test"),
        accepting=lambda: accepting,
    )
    ((_, port), *_) = await intake.start("127.0.0.1", 0)
    try:
        accepting = False
        sent = await asyncio.to_thread(send, port, ["error@localhost"], message())
        assert (sent.code, sent.reply[:5]) == (451, "4.3.2")
    finally:
        await intake.close()
        spool.close()


# --- the pure parts -------------------------------------------------------------------


STORED = (
    b"Received: from app ([127.0.0.1])\r\n\tby sidecar.test (emailsettings-sidecar) with ESMTP;"
    b"\r\n\tMon, 01 Jan 2024 00:00:00 +0000\r\n"
    b"From: App <app@localhost>\r\n"
    b"Sender: daemon@localhost\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\n  is open\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\n"
    b"\r\n"
    b"From the body: not a header\r\n"
)


def test_for_delivery_rewrites_from_and_keeps_the_rest_byte_for_byte() -> None:
    out = relay.for_delivery(
        STORED, sender=("Notifier Bot", "notifier@example.com"), message_id="<id1@example.com>"
    )
    head, body = out.split(b"\r\n\r\n", 1)
    assert body == b"From the body: not a header\r\n"
    assert b"From: Notifier Bot <notifier@example.com>\r\n" in head
    assert b"app@localhost" not in head
    assert b"Sender:" not in head
    assert b"Subject: =?utf-8?q?caf=C3=A9?=\r\n  is open\r\n" in head  # untouched, folded
    assert b"DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\n" in head
    assert head.endswith(b"Message-ID: <id1@example.com>")
    assert out.index(b"From: Notifier") < out.index(b"Subject:")  # in the old From's place
    kept = relay.for_delivery(STORED, sender=None, message_id="<id1@example.com>")
    assert b"From: App <app@localhost>\r\nSender: daemon@localhost\r\n" in kept
    # Same input, same bytes: a retry is the same message.
    assert out == relay.for_delivery(
        STORED, sender=("Notifier Bot", "notifier@example.com"), message_id="<id1@example.com>"
    )


def test_for_delivery_storm_count_and_hostile_sender_names() -> None:
    out = relay.for_delivery(
        STORED, sender=(None, "n@example.com"), message_id="<a@b>", occurrences=4
    )
    assert b"Subject: [4x] =?utf-8?q?caf=C3=A9?=\r\n  is open\r\n" in out
    assert b"X-EmailSettings-Occurrences: 4\r\n" in out
    hostile = "Bot\r\nBcc: victim@example.org =?utf-8?b?DQpCY2M6IHhAeS56?="
    out = relay.for_delivery(STORED, sender=(hostile, "n@example.com"), message_id="<a@b>")
    fields = relay.RawMessage.parse(out)
    assert [f for f in fields.fields if fields.name_of(f) == "bcc"] == []
    assert len(fields.values("From")) == 1
    with pytest.raises(ComposeError):
        relay.for_delivery(STORED, sender=("x", "not an address"), message_id="<a@b>")


def test_parse_keeps_messages_without_headers_or_separator_intact() -> None:
    for data in [b"", b"just text\r\n", b"Subject: x\r\n", b"A: 1\r\nnot a header\r\nB: 2\r\n"]:
        parsed = relay.RawMessage.parse(data)
        assert parsed.to_bytes() == data
    assert relay.RawMessage.parse(b"A: 1\r\nnot a header\r\n").fields == [b"A: 1\r\n"]
    assert relay.normalize_line_endings(b"a\nb\rc\r\nd") == b"a\r\nb\r\nc\r\nd\r\n"
    assert relay.has_bare_line_ending(b"a\r\nb\n")
    assert relay.has_bare_line_ending(b"a\rb\r\n")
    assert not relay.has_bare_line_ending(b"a\r\nb\r\n")


# --- configuration and the spool's schema upgrade ---------------------------------------


def test_smtp_options_default_off_and_checked(tmp_path: Path) -> None:
    config = load([], {"EMAILSETTINGS_SPOOL_DIR": str(tmp_path)})
    assert config.smtp_address is None
    assert (config.smtp_domain, config.smtp_rewrite_from) == ("localhost", "always")
    assert not config.smtp_allow_relay
    on = load(
        ["--smtp-listen", "127.0.0.1:2525"],
        {"EMAILSETTINGS_SMTP_ALLOW_RELAY": "true", "EMAILSETTINGS_SMTP_DOMAIN": "notify.local"},
    )
    assert on.smtp_address == ("127.0.0.1", 2525)
    assert on.smtp_allow_relay
    assert load(["--smtp-listen", "[::1]:2525"], {}).smtp_address == ("::1", 2525)
    for argv, problem in [
        (["--smtp-listen", ":2525"], "loopback"),
        (["--smtp-listen", "0.0.0.0:2525"], "loopback"),
        (["--smtp-listen", "10.1.2.3:2525"], "loopback"),
        (["--smtp-rewrite-from", "sometimes"], "smtp_rewrite_from"),
        (["--smtp-bare-newline", "ignore"], "smtp_bare_newline"),
        (["--smtp-domain", "bad domain"], "smtp_domain"),
        (["--smtp-category-header", "X Bad:"], "smtp_category_header"),
        (
            ["--smtp-listen", "127.0.0.1:2525", "--smtp-max-message-bytes", "2Mi"],
            "spool_max_bytes",
        ),
    ]:
        env = {"EMAILSETTINGS_SPOOL_MAX_BYTES": "1Mi"}
        with pytest.raises(ConfigError, match=problem):
            load(argv, env)
    assert replace(SidecarConfig(), smtp_listen="127.0.0.1:0").validate().smtp_address


async def test_a_version_1_spool_is_upgraded_in_place(tmp_path: Path) -> None:
    old_schema = _SCHEMA.replace(",\n  raw BLOB,\n  targets TEXT\n", "\n")
    assert "raw BLOB" not in old_schema
    conn = sqlite3.connect(tmp_path / "spool.sqlite3")
    conn.executescript(old_schema)
    conn.execute(
        "INSERT INTO notifications (id, fingerprint, category, event, fields, size, state, "
        "created_at, updated_at, next_attempt_at, first_at, last_at) "
        "VALUES ('old', 'fp', 'error', 'error-report', '{\"message\": \"m\"}', 1, 'queued', "
        "1, 1, 1, 1, 1)"
    )
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    spool = Spool(tmp_path)
    spool.open()
    try:
        (old,) = await spool.due(now=10, limit=10)
        assert (old.id, old.relayed, old.fields) == ("old", False, {"message": "m"})
        harness_settings = SMTPIntakeSettings(hostname="sidecar.test")
        intake = SMTPIntake(spool=spool, metrics=Metrics(), settings=harness_settings)
        ((_, port), *_) = await intake.start("127.0.0.1", 0)
        try:
            sent = await asyncio.to_thread(send, port, ["error@localhost"], message())
        finally:
            await intake.close()
        assert sent.code == 250
        assert len(await spool.due(now=1e12, limit=10)) == 2
    finally:
        spool.close()


def test_every_smtp_option_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "sidecar.md").read_text()
    smtp_options = [o for o in OPTIONS if o.name.startswith("smtp_")]
    assert len(smtp_options) == 8
    for option in smtp_options:
        assert f"| `{option.flag}` | `{option.env}` |" in docs, option.env
