"""Delivery sessions against real servers: reuse, per-recipient results, failures."""

from __future__ import annotations

import pytest

from emailsettings.api.conditions import Reason
from emailsettings.devstack.faulty_smtp import Fault, FaultySMTPServer
from emailsettings.devstack.pki import KeyPair
from emailsettings.devstack.smtp_server import Security, SMTPServer
from emailsettings.smtp import (
    DeliverySession,
    Encryption,
    Endpoint,
    Login,
    SMTPDeliveryError,
    TLSSettings,
    open_session,
)

pytestmark = pytest.mark.smtp

FROM = "Notifier <notify@example.com>"


def message(subject: str, body: str = "Something happened.\n") -> bytes:
    return (
        f"From: notify@example.com\r\nTo: admin@example.com\r\nSubject: {subject}\r\n\r\n{body}"
    ).encode()


def plain(port: int) -> Endpoint:
    return Endpoint("localhost", port, Encryption.NONE, timeout_seconds=5)


async def test_several_messages_on_one_authenticated_connection(
    starttls_server: SMTPServer, starttls_endpoint: Endpoint, login: Login
) -> None:
    async with open_session(starttls_endpoint, login) as session:
        assert session.tls_version is not None
        assert session.auth_mechanism == "PLAIN"
        for number in range(3):
            result = await session.send(FROM, ["admin@example.com"], message(f"n{number}"))
            assert result.accepted == ("admin@example.com",)
            assert result.rejected == {}
            assert result.server_reply.startswith("250")
        assert session.messages_sent == 3
        assert session.is_alive()
        assert await session.ping()
    assert not session.is_alive()
    received = starttls_server.mailbox.wait_for(3)
    assert starttls_server.mailbox.logins == 1
    assert [m.parsed()["Subject"] for m in received] == ["n0", "n1", "n2"]
    assert all(m.tls and m.auth_user == login.username for m in received)
    assert all(m.mail_from == "notify@example.com" for m in received)


async def test_some_recipients_refused_the_rest_delivered() -> None:
    with SMTPServer(Security.PLAIN, reject_recipients={"ghost@example.com"}) as server:
        async with open_session(plain(server.port)) as session:
            result = await session.send(
                FROM,
                ["admin@example.com", "ghost@example.com", "Ops <ops@example.com>"],
                message("x"),
            )
        [received] = server.mailbox.wait_for(1)
    assert result.accepted == ("admin@example.com", "ops@example.com")
    assert result.rejected == {
        "ghost@example.com": (550, "5.1.1 Recipient address rejected: user unknown")
    }
    assert received.rcpt_tos == ("admin@example.com", "ops@example.com")


async def test_all_recipients_refused_then_the_session_is_still_usable() -> None:
    with SMTPServer(Security.PLAIN, reject_recipients={"ghost@example.com"}) as server:
        async with open_session(plain(server.port)) as session:
            with pytest.raises(SMTPDeliveryError) as caught:
                await session.send(FROM, ["ghost@example.com"], message("lost"))
            assert caught.value.reason is Reason.RECIPIENT_REJECTED
            assert caught.value.permanent
            assert caught.value.recipient == "ghost@example.com"
            assert dict(caught.value.rejected) == {
                "ghost@example.com": (550, "5.1.1 Recipient address rejected: user unknown")
            }
            result = await session.send(FROM, ["admin@example.com"], message("kept"))
            assert result.accepted == ("admin@example.com",)
        [received] = server.mailbox.wait_for(1)
    assert received.parsed()["Subject"] == "kept"


async def test_sender_refused_then_the_session_is_still_usable() -> None:
    with SMTPServer(Security.PLAIN, reject_senders={"spoof@example.com"}) as server:
        async with open_session(plain(server.port)) as session:
            with pytest.raises(SMTPDeliveryError) as caught:
                await session.send("spoof@example.com", ["admin@example.com"], message("no"))
            assert caught.value.reason is Reason.SENDER_REJECTED
            assert caught.value.permanent
            assert caught.value.server_reply == "550 5.7.1 Sender rejected by policy"
            await session.send(FROM, ["admin@example.com"], message("yes"))
        assert len(server.mailbox.wait_for(1)) == 1


@pytest.mark.parametrize(
    ("reply", "reason", "permanent"),
    [
        ("554 5.6.0 Message content rejected", Reason.MESSAGE_REJECTED, True),
        ("451 4.3.0 Try again later", Reason.SERVER_UNAVAILABLE, False),
    ],
)
async def test_data_refused(reply: str, reason: Reason, permanent: bool) -> None:
    with FaultySMTPServer(Fault.REPLY_AT, step="DATA", reply=reply) as server:
        async with open_session(plain(server.port)) as session:
            with pytest.raises(SMTPDeliveryError) as caught:
                await session.send(FROM, ["admin@example.com"], message("x"))
            assert session.is_alive()
            assert await session.ping()  # replies still paired after the failure
    assert caught.value.reason is reason
    assert caught.value.permanent is permanent
    assert caught.value.server_reply == reply


async def test_connection_lost_during_data() -> None:
    with FaultySMTPServer(Fault.DROP_AFTER, step="DATA") as server:
        async with open_session(plain(server.port)) as session:
            with pytest.raises(SMTPDeliveryError) as caught:
                await session.send(FROM, ["admin@example.com"], message("x"))
            assert caught.value.reason is Reason.CONNECTION_LOST
            assert not caught.value.permanent
            assert not session.is_alive()
            assert not await session.ping()
            with pytest.raises(SMTPDeliveryError) as again:
                await session.send(FROM, ["admin@example.com"], message("y"))
            assert again.value.reason is Reason.CONNECTION_LOST


async def test_open_failure_is_a_delivery_error(starttls_endpoint: Endpoint) -> None:
    with pytest.raises(SMTPDeliveryError) as caught:
        async with open_session(starttls_endpoint, Login("mailer", "wrong")):
            pytest.fail("must not open")
    assert caught.value.reason is Reason.AUTHENTICATION_FAILED
    assert caught.value.permanent


async def test_session_for_a_pool_open_close(starttls_endpoint: Endpoint, login: Login) -> None:
    session = await DeliverySession.open(starttls_endpoint, login)
    assert session.is_alive()
    await session.close()
    assert not session.is_alive()
    await session.close()  # twice is fine


async def test_smtputf8_when_needed_and_offered() -> None:
    raw = "From: notify@example.com\r\nTo: jörg@example.com\r\nSubject: Grüße\r\n\r\nHallo\r\n"
    with SMTPServer(Security.PLAIN) as server:
        async with open_session(plain(server.port)) as session:
            result = await session.send(FROM, ["jörg@example.com"], raw.encode())
        [received] = server.mailbox.wait_for(1)
    assert result.accepted == ("jörg@example.com",)
    assert received.rcpt_tos == ("jörg@example.com",)
    assert received.parsed()["Subject"] == "Grüße"


async def test_smtputf8_when_needed_and_not_offered() -> None:
    raw = "Subject: Grüße\r\n\r\nHallo\r\n".encode()
    with FaultySMTPServer(Fault.NONE) as server:
        async with open_session(plain(server.port)) as session:
            with pytest.raises(SMTPDeliveryError) as caught:
                await session.send(FROM, ["admin@example.com"], raw)
    assert caught.value.reason is Reason.SMTPUTF8_NOT_OFFERED
    assert caught.value.permanent
    assert server.mailbox.messages == []


async def test_8bit_body_and_dot_stuffing_arrive_intact() -> None:
    body = "Ünïcödé body\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n"
    raw = (
        "Subject: eight\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
    ).encode()
    with SMTPServer(Security.PLAIN) as server:
        async with open_session(plain(server.port)) as session:
            await session.send(FROM, ["admin@example.com"], raw)
        [received] = server.mailbox.wait_for(1)
    assert received.data.replace(b"\r\n", b"\n").endswith(body.replace("\r\n", "\n").encode())


async def test_message_over_the_size_limit_is_refused_before_sending() -> None:
    with FaultySMTPServer(Fault.NONE) as server:  # advertises SIZE 10240000
        async with open_session(plain(server.port)) as session:
            with pytest.raises(SMTPDeliveryError) as caught:
                await session.send(FROM, ["admin@example.com"], b"x" * 10_240_001)
            assert session.is_alive()
    assert caught.value.reason is Reason.MESSAGE_REJECTED
    assert server.mailbox.messages == []


async def test_invalid_addresses_are_refused_without_a_transaction() -> None:
    with SMTPServer(Security.PLAIN) as server:
        async with open_session(plain(server.port)) as session:
            with pytest.raises(SMTPDeliveryError) as bad_rcpt:
                await session.send(FROM, ["x@example.com\r\nDATA"], message("x"))
            with pytest.raises(SMTPDeliveryError) as no_rcpt:
                await session.send(FROM, [], message("x"))
            with pytest.raises(SMTPDeliveryError) as bad_sender:
                await session.send("nobody", ["admin@example.com"], message("x"))
            # The null reverse-path is a valid sender.
            await session.send("<>", ["admin@example.com"], message("bounce"))
        [received] = server.mailbox.wait_for(1)
    assert bad_rcpt.value.reason is Reason.INVALID_RECIPIENT
    assert no_rcpt.value.reason is Reason.INVALID_RECIPIENT
    assert bad_sender.value.reason is Reason.INVALID_SENDER
    assert received.parsed()["Subject"] == "bounce"


async def test_implicit_tls_session(server_cert: KeyPair, trusted: TLSSettings) -> None:
    with SMTPServer(Security.TLS, cert=server_cert) as server:
        ep = Endpoint("localhost", server.port, Encryption.TLS, trusted, timeout_seconds=5)
        async with open_session(ep) as session:
            await session.send(FROM, ["admin@example.com"], message("tls"))
        [received] = server.mailbox.wait_for(1)
    assert received.parsed()["Subject"] == "tls"
