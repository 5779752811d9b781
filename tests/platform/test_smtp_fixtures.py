"""The SMTP fixtures are real servers with real, verified TLS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import aiosmtplib
import pytest

from emailsettings.devstack.faulty_smtp import Fault, FaultySMTPServer
from emailsettings.devstack.pki import KeyPair, LocalCA
from emailsettings.devstack.smtp_server import Credentials, Security, SMTPServer

pytestmark = pytest.mark.smtp

USER = Credentials("mailer", "fixture-password")


@pytest.fixture
def starttls_server(server_cert: KeyPair) -> Iterator[SMTPServer]:
    with SMTPServer(Security.STARTTLS, cert=server_cert, credentials=USER) as server:
        yield server


def _client_tls(local_ca: LocalCA) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(local_ca.ca_cert))


async def test_starttls_auth_delivers_with_verification(
    starttls_server: SMTPServer, local_ca: LocalCA
) -> None:
    await aiosmtplib.send(
        b"Subject: hello\r\n\r\nbody\r\n",
        sender="from@example.com",
        recipients=["to@example.com"],
        hostname="localhost",
        port=starttls_server.port,
        start_tls=True,
        tls_context=_client_tls(local_ca),
        username=USER.username,
        password=USER.password,
    )
    [message] = starttls_server.mailbox.wait_for(1)
    assert message.tls
    assert message.auth_user == USER.username
    assert message.rcpt_tos == ("to@example.com",)
    assert message.parsed()["Subject"] == "hello"


async def test_client_refuses_wrong_host_certificate(
    wrong_host_cert: KeyPair, local_ca: LocalCA
) -> None:
    with SMTPServer(Security.STARTTLS, cert=wrong_host_cert, credentials=USER) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            await _starttls_login(server.port, local_ca)
        assert server.mailbox.logins == 0


async def test_client_refuses_expired_certificate(expired_cert: KeyPair, local_ca: LocalCA) -> None:
    with SMTPServer(Security.TLS, cert=expired_cert) as server:
        client = aiosmtplib.SMTP(
            hostname="localhost", port=server.port, use_tls=True, tls_context=_client_tls(local_ca)
        )
        with pytest.raises(aiosmtplib.SMTPConnectError, match="expired"):
            await client.connect()


async def test_implicit_tls_server(server_cert: KeyPair, local_ca: LocalCA) -> None:
    with SMTPServer(Security.TLS, cert=server_cert, credentials=USER) as server:
        client = aiosmtplib.SMTP(
            hostname="localhost", port=server.port, use_tls=True, tls_context=_client_tls(local_ca)
        )
        await client.connect()
        await client.login(USER.username, USER.password)
        await client.quit()
        assert server.mailbox.logins == 1


async def test_faulty_server_answers_scripted_codes(local_ca: LocalCA) -> None:
    with FaultySMTPServer(Fault.REPLY_AT, step="MAIL", reply="550 5.7.1 no") as server:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=False)
        await client.connect()
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as caught:
            await client.mail("a@example.com")
        assert caught.value.code == 550
        await client.quit()


async def test_faulty_server_never_greets() -> None:
    with FaultySMTPServer(Fault.NEVER_GREET) as server:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, timeout=0.5)
        with pytest.raises((aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPConnectTimeoutError)):
            await client.connect()


async def _starttls_login(port: int, local_ca: LocalCA) -> None:
    client = aiosmtplib.SMTP(
        hostname="localhost", port=port, start_tls=True, tls_context=_client_tls(local_ca)
    )
    await client.connect()
    await client.login(USER.username, USER.password)
