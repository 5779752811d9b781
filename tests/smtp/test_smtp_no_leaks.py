"""A canary password never shows up in a result, a message, an exception or a log record."""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Iterator

import pytest

from emailsettings.api.conditions import Reason
from emailsettings.devstack.faulty_smtp import Fault, FaultySMTPServer
from emailsettings.devstack.netutil import free_port
from emailsettings.devstack.pki import KeyPair
from emailsettings.devstack.smtp_server import Credentials, Security, SMTPServer
from emailsettings.smtp import (
    DeliverySession,
    Encryption,
    Endpoint,
    Login,
    SMTPConnection,
    SMTPDeliveryError,
    TLSSettings,
    VerifyResult,
    open_session,
    verify,
)

pytestmark = pytest.mark.smtp

USER = "mailer"
CANARY = "Canary-Pa55w0rd-9f3e7c"
CANARY_FORMS = (
    CANARY,
    base64.b64encode(CANARY.encode()).decode(),
    base64.b64encode(f"\0{USER}\0{CANARY}".encode()).decode(),
)
CANARY_LOGIN = Login(USER, CANARY)
MESSAGE = b"Subject: canary\r\n\r\nbody\r\n"


def assert_clean(text: str) -> None:
    for form in CANARY_FORMS:
        assert form not in text


def result_text(result: VerifyResult) -> str:
    return f"{result!r} {result!s} {result.message} {result.server_reply}"


def exception_text(exc: BaseException) -> str:
    return f"{exc!s} {exc!r} {''.join(traceback.format_exception(exc))}"


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    # In teardown caplog.records is the teardown phase's; the test ran in "call".
    records = caplog.get_records("setup") + caplog.get_records("call")
    assert any(record.name == "emailsettings.smtp" for record in records)
    for record in records:
        assert_clean(record.getMessage())
        assert_clean(repr(record.args))
        if record.exc_info:
            assert_clean("".join(traceback.format_exception(*record.exc_info)))
        assert_clean(record.exc_text or "")


def starttls(
    port: int, tls: TLSSettings, auth_mechanisms: tuple[str, ...] = ("PLAIN",)
) -> Endpoint:
    return Endpoint(
        "localhost",
        port,
        Encryption.STARTTLS,
        tls,
        timeout_seconds=5,
        auth_mechanisms=auth_mechanisms,
    )


def test_login_and_key_never_show_the_password(trusted: TLSSettings) -> None:
    assert_clean(repr(CANARY_LOGIN))
    assert_clean(str(CANARY_LOGIN))
    assert_clean(f"{CANARY_LOGIN}")
    assert USER in repr(CANARY_LOGIN)
    assert_clean(starttls(25, trusted).key(CANARY_LOGIN))


@pytest.mark.usefixtures("all_logs")
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_success_paths(mechanism: str, server_cert: KeyPair, trusted: TLSSettings) -> None:
    with SMTPServer(
        Security.STARTTLS, cert=server_cert, credentials=Credentials(USER, CANARY)
    ) as server:
        ep = starttls(server.port, trusted, auth_mechanisms=(mechanism,))
        result = await verify(ep, CANARY_LOGIN, "a@example.com", ["b@example.com"])
        assert result.ok, result
        assert_clean(result_text(result))
        async with open_session(ep, CANARY_LOGIN) as session:
            sent = await session.send("a@example.com", ["b@example.com"], MESSAGE)
            assert_clean(repr(session))
            assert_clean(repr(sent))
        assert server.mailbox.logins == 2


@pytest.mark.usefixtures("all_logs")
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_authentication_failure(
    mechanism: str, server_cert: KeyPair, trusted: TLSSettings
) -> None:
    with SMTPServer(
        Security.STARTTLS, cert=server_cert, credentials=Credentials(USER, "the-real-one")
    ) as server:
        ep = starttls(server.port, trusted, auth_mechanisms=(mechanism,))
        result = await verify(ep, CANARY_LOGIN, "a@example.com", ["b@example.com"])
        assert result.reason is Reason.AUTHENTICATION_FAILED
        assert_clean(result_text(result))
        with pytest.raises(SMTPDeliveryError) as caught:
            await DeliverySession.open(ep, CANARY_LOGIN)
        assert_clean(exception_text(caught.value))


@pytest.mark.usefixtures("all_logs")
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_a_server_echoing_the_credentials_back(
    mechanism: str, server_cert: KeyPair, trusted: TLSSettings
) -> None:
    echo = f"535 5.7.8 Bad credentials {' '.join(CANARY_FORMS)}"
    with FaultySMTPServer(Fault.REPLY_AT, cert=server_cert, step="AUTH", reply=echo) as server:
        ep = starttls(server.port, trusted, auth_mechanisms=(mechanism,))
        result = await verify(ep, CANARY_LOGIN, "a@example.com", ["b@example.com"])
        assert result.reason is Reason.AUTHENTICATION_FAILED
        assert result.server_reply is not None
        assert "Bad credentials" in result.server_reply
        assert_clean(result_text(result))
        with pytest.raises(SMTPDeliveryError) as caught:
            await DeliverySession.open(ep, CANARY_LOGIN)
        assert_clean(exception_text(caught.value))


@pytest.mark.usefixtures("all_logs")
async def test_every_other_failure_path(
    server_cert: KeyPair, expired_cert: KeyPair, trusted: TLSSettings
) -> None:
    results: list[VerifyResult] = []

    async def attempt(ep: Endpoint) -> None:
        results.append(await verify(ep, CANARY_LOGIN, "a@example.com", ["b@example.com"]))
        with pytest.raises(SMTPDeliveryError) as caught:
            await DeliverySession.open(ep, CANARY_LOGIN)
        assert_clean(exception_text(caught.value))

    await attempt(starttls(free_port(), trusted))
    await attempt(Endpoint("smtp.example.invalid", 587, Encryption.STARTTLS))
    with SMTPServer(Security.PLAIN, credentials=Credentials(USER, CANARY)) as plain:
        await attempt(starttls(plain.port, trusted))
        await attempt(Endpoint("localhost", plain.port, Encryption.NONE))
    with SMTPServer(Security.STARTTLS, cert=expired_cert) as expired:
        await attempt(starttls(expired.port, trusted))
        await attempt(starttls(expired.port, TLSSettings()))
    with FaultySMTPServer(Fault.DROP_AFTER, cert=server_cert, step="AUTH") as dropping:
        await attempt(starttls(dropping.port, trusted))
    with FaultySMTPServer(Fault.NEVER_GREET) as silent:
        await attempt(Endpoint("localhost", silent.port, Encryption.STARTTLS, timeout_seconds=0.3))
    assert {result.reason for result in results} == {
        Reason.CONNECTION_REFUSED,
        Reason.DNS_LOOKUP_FAILED,
        Reason.STARTTLS_NOT_OFFERED,
        Reason.AUTH_REQUIRES_TLS,
        Reason.CERTIFICATE_EXPIRED,
        Reason.CERTIFICATE_UNTRUSTED,
        Reason.CONNECTION_LOST,
        Reason.CONNECTION_TIMEOUT,
    }
    for result in results:
        assert_clean(result_text(result))


@pytest.mark.usefixtures("all_logs")
async def test_delivery_failures_after_login(server_cert: KeyPair, trusted: TLSSettings) -> None:
    with FaultySMTPServer(
        Fault.REPLY_AT,
        cert=server_cert,
        step="DATA",
        reply="554 5.6.0 no",
        password=CANARY,
        username=USER,
    ) as server:
        ep = starttls(server.port, trusted)
        connection = await SMTPConnection.open(ep, CANARY_LOGIN)
        assert_clean(repr(connection))
        await connection.quit()
        async with open_session(ep, CANARY_LOGIN) as session:
            with pytest.raises(SMTPDeliveryError) as caught:
                await session.send("a@example.com", ["b@example.com"], MESSAGE)
            assert caught.value.reason is Reason.MESSAGE_REJECTED
            assert_clean(exception_text(caught.value))
