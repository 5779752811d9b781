"""verify() against real servers: every success mode, and one test per failure reason."""

from __future__ import annotations

import logging
import ssl

import pytest

from emailsettings.api.conditions import Reason
from emailsettings.devstack.faulty_smtp import Fault, FaultySMTPServer
from emailsettings.devstack.netutil import free_port
from emailsettings.devstack.pki import KeyPair
from emailsettings.devstack.smtp_server import Credentials, Security, SMTPServer
from emailsettings.smtp import (
    Encryption,
    Endpoint,
    Login,
    SMTPConnection,
    TLSSettings,
    VerifyResult,
    verify,
)

pytestmark = pytest.mark.smtp

USER = Credentials("mailer", "fixture-password")
SENDER = "Notifier <notify@example.com>"
RCPT = "admin@example.com"


def endpoint(
    port: int,
    encryption: Encryption,
    tls: TLSSettings | None = None,
    *,
    host: str = "localhost",
    timeout_seconds: float = 5.0,
    allow_plaintext_auth: bool = False,
    auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"),
    helo_name: str | None = None,
) -> Endpoint:
    return Endpoint(
        host,
        port,
        encryption,
        tls or TLSSettings(),
        allow_plaintext_auth=allow_plaintext_auth,
        helo_name=helo_name,
        timeout_seconds=timeout_seconds,
        auth_mechanisms=auth_mechanisms,
    )


async def check(
    ep: Endpoint,
    login: Login | None = None,
    sender: str = SENDER,
    recipients: tuple[str, ...] = (RCPT,),
) -> VerifyResult:
    result = await verify(ep, login, sender, recipients)
    assert result.endpoint == ep.address
    assert result.latency_seconds >= 0
    if not result.ok:
        assert ep.address in result.message or result.reason in {
            Reason.DNS_LOOKUP_FAILED,
            Reason.INVALID_SENDER,
            Reason.INVALID_RECIPIENT,
        }
    return result


def assert_failed(result: VerifyResult, reason: Reason, *, permanent: bool) -> None:
    assert not result.ok, result
    assert result.reason is reason, result
    assert result.permanent is permanent, result


# --- success -----------------------------------------------------------------------


async def test_starttls_auth_plain(
    starttls_server: SMTPServer, starttls_endpoint: Endpoint, login: Login
) -> None:
    result = await check(starttls_endpoint, login)
    assert result.ok, result
    assert result.reason is Reason.VERIFIED
    assert result.tls_version in {"TLSv1.2", "TLSv1.3"}
    assert result.auth_mechanism == "PLAIN"
    assert "notify@example.com" in result.message
    assert starttls_server.mailbox.logins == 1
    assert starttls_server.mailbox.messages == []  # verification sends no message


async def test_starttls_auth_login(
    starttls_server: SMTPServer, trusted: TLSSettings, login: Login
) -> None:
    ep = endpoint(starttls_server.port, Encryption.STARTTLS, trusted, auth_mechanisms=("LOGIN",))
    result = await check(ep, login)
    assert result.ok, result
    assert result.auth_mechanism == "LOGIN"
    assert starttls_server.mailbox.logins == 1


async def test_implicit_tls(server_cert: KeyPair, trusted: TLSSettings, login: Login) -> None:
    with SMTPServer(Security.TLS, cert=server_cert, credentials=USER) as server:
        result = await check(endpoint(server.port, Encryption.TLS, trusted), login)
    assert result.ok, result
    assert result.tls_version in {"TLSv1.2", "TLSv1.3"}
    assert result.auth_mechanism == "PLAIN"


async def test_plaintext_relay_without_auth() -> None:
    with SMTPServer(Security.PLAIN) as server:
        result = await check(endpoint(server.port, Encryption.NONE))
    assert result.ok, result
    assert result.tls_version is None
    assert result.auth_mechanism is None
    assert "plaintext" in result.message


async def test_plaintext_auth_when_explicitly_allowed(login: Login) -> None:
    with SMTPServer(Security.PLAIN, credentials=USER, auth_require_tls=False) as server:
        ep = endpoint(server.port, Encryption.NONE, allow_plaintext_auth=True)
        result = await check(ep, login)
        assert server.mailbox.logins == 1
    assert result.ok, result
    assert result.auth_mechanism == "PLAIN"


@pytest.mark.parametrize("security", [Security.TLS, Security.STARTTLS])
async def test_tls12_server_meets_the_default_minimum(
    security: Security, server_cert: KeyPair, trusted: TLSSettings
) -> None:
    with SMTPServer(security, cert=server_cert, tls_max_version=ssl.TLSVersion.TLSv1_2) as server:
        encryption = Encryption.TLS if security is Security.TLS else Encryption.STARTTLS
        result = await check(endpoint(server.port, encryption, trusted))
    assert result.ok, result
    assert result.tls_version == "TLSv1.2"


async def test_server_name_overrides_sni_and_hostname_check(
    wrong_host_cert: KeyPair, ca_pem: str
) -> None:
    tls = TLSSettings(ca_bundle_pem=ca_pem, server_name="wrong.example.net")
    with SMTPServer(Security.TLS, cert=wrong_host_cert) as server:
        result = await check(endpoint(server.port, Encryption.TLS, tls, host="127.0.0.1"))
    assert result.ok, result


async def test_helo_name_is_configurable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="emailsettings.smtp")
    with SMTPServer(Security.PLAIN) as server:
        result = await check(endpoint(server.port, Encryption.NONE, helo_name="relay.example.org"))
    assert result.ok, result
    assert "-> EHLO relay.example.org" in caplog.text


async def test_default_helo_name_is_accepted_by_a_strict_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="emailsettings.smtp")
    with SMTPServer(Security.PLAIN) as server:
        result = await check(endpoint(server.port, Encryption.NONE))
    assert result.ok, result
    [line] = [r.getMessage() for r in caplog.records if "-> EHLO " in r.getMessage()]
    name = line.split("-> EHLO ", 1)[1]
    assert name.startswith("[") or "." in name


# --- STARTTLS response injection -----------------------------------------------------


async def test_starttls_injection_is_discarded_and_capabilities_come_from_tls(
    server_cert: KeyPair, trusted: TLSSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="emailsettings.smtp")
    with FaultySMTPServer(Fault.STARTTLS_INJECTION, cert=server_cert) as server:
        ep = endpoint(server.port, Encryption.STARTTLS, trusted)
        connection = await SMTPConnection.open(ep, Login(server.username, server.password))
        try:
            assert connection.tls_version is not None
            # The injected "250-injected.example / 250 AUTH PLAIN LOGIN" would have
            # been read as the post-TLS EHLO reply; the real one names faulty.local
            # and carries SIZE and 8BITMIME, and (being over TLS) no STARTTLS.
            assert connection.ehlo_domain == "faulty.local"
            assert dict(connection.extensions) == {
                "AUTH": "PLAIN LOGIN",
                "8BITMIME": "",
                "SIZE": "10240000",
            }
            assert connection.auth_mechanism == "PLAIN"
            # Replies stay paired with their commands after the injection.
            await connection.noop()
        finally:
            await connection.quit()
        assert server.mailbox.logins == 1
        result = await check(ep, Login(server.username, server.password))
    assert result.ok, result
    assert "injected.example" not in caplog.text
    assert "possible STARTTLS response injection" in caplog.text


# --- failures, one per reason ------------------------------------------------------


async def test_connection_refused() -> None:
    result = await check(endpoint(free_port(), Encryption.NONE, host="127.0.0.1"))
    assert_failed(result, Reason.CONNECTION_REFUSED, permanent=False)


async def test_dns_lookup_failed() -> None:
    result = await check(endpoint(25, Encryption.STARTTLS, host="smtp.example.invalid"))
    assert_failed(result, Reason.DNS_LOOKUP_FAILED, permanent=False)
    assert "smtp.example.invalid" in result.message


async def test_timeout_when_the_server_never_greets() -> None:
    with FaultySMTPServer(Fault.NEVER_GREET) as server:
        ep = endpoint(server.port, Encryption.STARTTLS, timeout_seconds=0.5)
        result = await check(ep)
    assert_failed(result, Reason.CONNECTION_TIMEOUT, permanent=False)
    assert "greeting" in result.message
    assert result.latency_seconds < 5


async def test_connection_lost_mid_dialogue() -> None:
    with FaultySMTPServer(Fault.DROP_AFTER, step="MAIL") as server:
        result = await check(endpoint(server.port, Encryption.NONE))
    assert_failed(result, Reason.CONNECTION_LOST, permanent=False)
    assert "MAIL FROM" in result.message


async def test_421_greeting_is_server_unavailable() -> None:
    reply = "421 4.3.2 Service shutting down"
    with FaultySMTPServer(Fault.REPLY_AT, step="GREETING", reply=reply) as server:
        result = await check(endpoint(server.port, Encryption.NONE))
    assert_failed(result, Reason.SERVER_UNAVAILABLE, permanent=False)
    assert result.server_reply == reply


async def test_4xx_recipient_is_server_unavailable_and_names_the_recipient() -> None:
    reply = "450 4.2.0 Mailbox busy, try later"
    with FaultySMTPServer(Fault.REPLY_AT, step="RCPT", reply=reply) as server:
        result = await check(endpoint(server.port, Encryption.NONE))
    assert_failed(result, Reason.SERVER_UNAVAILABLE, permanent=False)
    assert result.rejected_recipient == RCPT
    assert result.server_reply == reply


async def test_garbage_greeting_is_a_protocol_error() -> None:
    reply = "HTTP/1.1 400 Bad Request"
    with FaultySMTPServer(Fault.REPLY_AT, step="GREETING", reply=reply) as server:
        result = await check(endpoint(server.port, Encryption.NONE))
    assert_failed(result, Reason.PROTOCOL_ERROR, permanent=True)
    assert "HTTP/1.1" in result.message


async def test_tls_client_against_a_plaintext_port(trusted: TLSSettings) -> None:
    with SMTPServer(Security.PLAIN) as server:
        result = await check(endpoint(server.port, Encryption.TLS, trusted))
    assert_failed(result, Reason.TLS_HANDSHAKE_FAILED, permanent=True)


@pytest.mark.parametrize("security", [Security.TLS, Security.STARTTLS])
async def test_tls13_minimum_against_a_tls12_server(
    security: Security, server_cert: KeyPair, ca_pem: str
) -> None:
    tls = TLSSettings(ca_bundle_pem=ca_pem, min_version="TLSv1.3")
    with SMTPServer(security, cert=server_cert, tls_max_version=ssl.TLSVersion.TLSv1_2) as server:
        encryption = Encryption.TLS if security is Security.TLS else Encryption.STARTTLS
        result = await check(endpoint(server.port, encryption, tls))
    assert_failed(result, Reason.TLS_HANDSHAKE_FAILED, permanent=True)
    assert "TLSv1.3" in result.message


async def test_certificate_untrusted_by_system_cas(starttls_server: SMTPServer) -> None:
    result = await check(endpoint(starttls_server.port, Encryption.STARTTLS))
    assert_failed(result, Reason.CERTIFICATE_UNTRUSTED, permanent=True)
    assert "system CAs" in result.message


async def test_invalid_ca_bundle_is_untrusted(starttls_server: SMTPServer) -> None:
    tls = TLSSettings(ca_bundle_pem="-----BEGIN CERTIFICATE-----\nnot base64\n")
    result = await check(endpoint(starttls_server.port, Encryption.STARTTLS, tls))
    assert_failed(result, Reason.CERTIFICATE_UNTRUSTED, permanent=True)
    assert "CA bundle" in result.message


async def test_certificate_expired(expired_cert: KeyPair, trusted: TLSSettings) -> None:
    with SMTPServer(Security.STARTTLS, cert=expired_cert) as server:
        result = await check(endpoint(server.port, Encryption.STARTTLS, trusted))
    assert_failed(result, Reason.CERTIFICATE_EXPIRED, permanent=True)


async def test_certificate_hostname_mismatch(
    wrong_host_cert: KeyPair, trusted: TLSSettings
) -> None:
    with SMTPServer(Security.TLS, cert=wrong_host_cert) as server:
        result = await check(endpoint(server.port, Encryption.TLS, trusted))
    assert_failed(result, Reason.CERTIFICATE_HOSTNAME_MISMATCH, permanent=True)
    assert "'localhost'" in result.message


async def test_starttls_not_offered_never_continues_in_plaintext(
    trusted: TLSSettings, login: Login, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="emailsettings.smtp")
    with SMTPServer(Security.PLAIN, credentials=USER, auth_require_tls=False) as server:
        result = await check(endpoint(server.port, Encryption.STARTTLS, trusted), login)
        assert server.mailbox.logins == 0
    assert_failed(result, Reason.STARTTLS_NOT_OFFERED, permanent=True)
    sent = [r.getMessage() for r in caplog.records if " -> " in r.getMessage()]
    assert [line.split(" -> ", 1)[1].split()[0] for line in sent] == ["EHLO", "QUIT"]


async def test_starttls_hidden_by_the_server(
    server_cert: KeyPair, trusted: TLSSettings, login: Login
) -> None:
    with FaultySMTPServer(Fault.NO_STARTTLS, cert=server_cert) as server:
        result = await check(endpoint(server.port, Encryption.STARTTLS, trusted), login)
        assert server.mailbox.logins == 0
    assert_failed(result, Reason.STARTTLS_NOT_OFFERED, permanent=True)


@pytest.mark.parametrize(
    ("reply", "reason", "permanent"),
    [
        ("502 5.5.1 STARTTLS not available", Reason.STARTTLS_NOT_OFFERED, True),
        ("454 4.7.0 TLS not available due to temporary reason", Reason.SERVER_UNAVAILABLE, False),
    ],
)
async def test_starttls_refused_after_being_offered(
    reply: str, reason: Reason, permanent: bool, server_cert: KeyPair, trusted: TLSSettings
) -> None:
    with FaultySMTPServer(Fault.REPLY_AT, cert=server_cert, step="STARTTLS", reply=reply) as server:
        result = await check(endpoint(server.port, Encryption.STARTTLS, trusted))
    assert_failed(result, reason, permanent=permanent)
    assert result.server_reply == reply


async def test_authentication_failed(starttls_endpoint: Endpoint) -> None:
    result = await check(starttls_endpoint, Login(USER.username, "wrong-password"))
    assert_failed(result, Reason.AUTHENTICATION_FAILED, permanent=True)
    assert result.server_reply is not None
    assert result.server_reply.startswith("535")
    assert result.tls_version is not None  # it got as far as TLS


async def test_auth_requires_tls_sends_no_credentials(
    login: Login, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="emailsettings.smtp")
    with SMTPServer(Security.PLAIN, credentials=USER, auth_require_tls=False) as server:
        result = await check(endpoint(server.port, Encryption.NONE), login)
        assert server.mailbox.logins == 0
    assert_failed(result, Reason.AUTH_REQUIRES_TLS, permanent=True)
    assert "AUTH" not in [r.getMessage().split(" -> ")[-1][:4] for r in caplog.records]


async def test_plaintext_against_a_server_requiring_starttls(
    starttls_server: SMTPServer,
) -> None:
    result = await check(endpoint(starttls_server.port, Encryption.NONE))
    assert_failed(result, Reason.AUTH_REQUIRES_TLS, permanent=True)
    assert result.server_reply is not None
    assert result.server_reply.startswith("530")


async def test_no_usable_auth_mechanism(login: Login) -> None:
    # A plain server that offers AUTH only over TLS, and offers no STARTTLS.
    with SMTPServer(Security.PLAIN, auth_require_tls=True) as server:
        ep = endpoint(server.port, Encryption.NONE, allow_plaintext_auth=True)
        result = await check(ep, login)
    assert_failed(result, Reason.AUTH_NOT_SUPPORTED, permanent=True)


async def test_sender_rejected() -> None:
    with SMTPServer(Security.PLAIN, reject_senders={"notify@example.com"}) as server:
        result = await check(endpoint(server.port, Encryption.NONE))
    assert_failed(result, Reason.SENDER_REJECTED, permanent=True)
    assert "notify@example.com" in result.message
    assert result.server_reply == "550 5.7.1 Sender rejected by policy"


async def test_recipient_rejected_names_the_recipients() -> None:
    bad = {"nobody@example.com", "ghost@example.com"}
    recipients = ("admin@example.com", "nobody@example.com", "ops@example.com", "ghost@example.com")
    with SMTPServer(Security.PLAIN, reject_recipients=bad) as server:
        result = await check(endpoint(server.port, Encryption.NONE), recipients=recipients)
    assert_failed(result, Reason.RECIPIENT_REJECTED, permanent=True)
    assert result.rejected_recipient == "nobody@example.com"
    assert result.rejected_recipients == ("nobody@example.com", "ghost@example.com")
    assert "nobody@example.com" in result.message
    assert "ghost@example.com" in result.message
    assert result.server_reply is not None
    assert result.server_reply.startswith("550 5.1.1")


async def test_smtputf8_needed_but_not_offered() -> None:
    with FaultySMTPServer(Fault.NONE) as server:
        ep = endpoint(server.port, Encryption.NONE)
        result = await check(ep, recipients=("jörg@example.com",))
    assert_failed(result, Reason.SMTPUTF8_NOT_OFFERED, permanent=True)


async def test_smtputf8_addresses_verify_when_offered() -> None:
    with SMTPServer(Security.PLAIN) as server:
        result = await check(endpoint(server.port, Encryption.NONE), recipients=("jörg@例え.jp",))
    assert result.ok, result


@pytest.mark.parametrize(
    ("sender", "recipients", "reason"),
    [
        ("not an address", (RCPT,), Reason.INVALID_SENDER),
        (SENDER, ("bad\r\nRCPT TO:<x@example.com>",), Reason.INVALID_RECIPIENT),
    ],
)
async def test_invalid_addresses_are_refused_before_connecting(
    sender: str, recipients: tuple[str, ...], reason: Reason
) -> None:
    # The port is closed: reaching the network would fail with ConnectionRefused.
    ep = endpoint(free_port(), Encryption.NONE, host="127.0.0.1")
    result = await check(ep, sender=sender, recipients=recipients)
    assert_failed(result, reason, permanent=True)
