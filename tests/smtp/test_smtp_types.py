"""The value types, envelope helpers and the reply parser's edges."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys

import pytest

from emailsettings.api.conditions import Reason
from emailsettings.devstack.faulty_smtp import Fault, FaultySMTPServer
from emailsettings.smtp import (
    Encryption,
    Endpoint,
    Login,
    SMTPDeliveryError,
    TLSSettings,
    open_session,
    verify,
)
from emailsettings.smtp.client import default_helo_name
from emailsettings.smtp.envelope import (
    InvalidAddressError,
    addr_spec,
    data_payload,
    has_8bit,
    needs_smtputf8,
)


def test_encryption_values_match_the_spec() -> None:
    assert [str(e) for e in Encryption] == ["None", "STARTTLS", "TLS"]
    assert Endpoint("h", 25, "STARTTLS").encryption is Encryption.STARTTLS  # type: ignore[arg-type]


def test_types_are_frozen() -> None:
    endpoint = Endpoint("smtp.example.com", 587, Encryption.STARTTLS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        endpoint.port = 25  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Login("u", "p").password = "x"  # type: ignore[misc]


def test_login_repr_hides_the_password() -> None:
    login = Login("mailer", "hunter2-secret")
    assert repr(login) == "Login(username='mailer', password=<redacted>)"
    assert str(login) == repr(login)
    assert "hunter2" not in f"{login} {[login]} { {'a': login} }"


def test_tls_settings_repr_omits_the_bundle() -> None:
    assert "BEGIN" not in repr(TLSSettings(ca_bundle_pem="-----BEGIN CERTIFICATE-----"))


@pytest.mark.parametrize(
    "build",
    [
        lambda: Endpoint("", 25, Encryption.NONE),
        lambda: Endpoint("smtp.example.com\r\nQUIT", 25, Encryption.NONE),
        lambda: Endpoint("smtp.example.com", 0, Encryption.NONE),
        lambda: Endpoint("smtp.example.com", 70000, Encryption.NONE),
        lambda: Endpoint("smtp.example.com", 25, "SSL"),  # type: ignore[arg-type]
        lambda: Endpoint("smtp.example.com", 25, Encryption.NONE, helo_name="a b"),
        lambda: Endpoint("smtp.example.com", 25, Encryption.NONE, timeout_seconds=0),
        lambda: Endpoint("smtp.example.com", 25, Encryption.NONE, auth_mechanisms=("CRAM-MD5",)),
        lambda: TLSSettings(min_version="TLSv1.1"),
        lambda: TLSSettings(server_name="bad name"),
        lambda: Login("", "password"),
    ],
)
def test_invalid_values_are_refused(build: object) -> None:
    assert callable(build)
    with pytest.raises(ValueError, match=r"."):
        build()


def test_endpoint_address_and_sni() -> None:
    assert Endpoint("::1", 25, Encryption.NONE).address == "[::1]:25"
    assert Endpoint("smtp.example.com", 465, Encryption.TLS).address == "smtp.example.com:465"
    named = Endpoint("10.0.0.5", 465, Encryption.TLS, TLSSettings(server_name="mx.example.com"))
    assert named.sni_name == "mx.example.com"


def test_key_shares_equal_endpoints_and_credentials_only() -> None:
    base = Endpoint("SMTP.example.com", 587, Encryption.STARTTLS)
    login = Login("mailer", "pw1")
    same = Endpoint("smtp.example.com", 587, Encryption.STARTTLS, timeout_seconds=3)
    assert base.key(login) == same.key(Login("mailer", "pw1"))
    assert base.key(login) != base.key(Login("mailer", "pw2"))
    assert base.key(login) != base.key(Login("other", "pw1"))
    assert base.key(login) != base.key(None)
    assert base.key(login) != Endpoint("smtp.example.com", 465, Encryption.TLS).key(login)
    assert base.key(login) != dataclasses.replace(base, tls=TLSSettings(min_version="TLSv1.3")).key(
        login
    )
    assert base.key(login) != dataclasses.replace(base, allow_plaintext_auth=True).key(login)
    assert "pw1" not in base.key(login)


def test_default_helo_name_is_a_name_or_an_address_literal() -> None:
    name = default_helo_name(("192.0.2.7", 40000))
    assert name == "[192.0.2.7]" or "." in name
    name6 = default_helo_name(("2001:db8::1", 40000, 0, 0))
    assert name6 == "[IPv6:2001:db8::1]" or "." in name6


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a@example.com", "a@example.com"),
        ("  Name <a@example.com> ", "a@example.com"),
        ('"Last, First" <a@example.com>', "a@example.com"),
        ("jörg@例え.jp", "jörg@例え.jp"),
    ],
)
def test_addr_spec(value: str, expected: str) -> None:
    assert addr_spec(value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "plain", "@example.com", "a@", "a b@example.com", "Name <a@example.com>\r\nX", "<a@b>>"],
)
def test_addr_spec_refuses(value: str) -> None:
    with pytest.raises(InvalidAddressError):
        addr_spec(value)


def test_smtputf8_and_8bit_detection() -> None:
    assert not needs_smtputf8(["a@example.com"], b"Subject: hi\r\n\r\n\xc3\xbc body")
    assert needs_smtputf8(["a@example.com"], "Subject: ü\r\n\r\nbody".encode())
    assert needs_smtputf8(["jörg@example.com"])
    assert has_8bit("ü".encode())
    assert not has_8bit(b"ascii")


def test_data_payload_normalizes_and_dot_stuffs() -> None:
    assert data_payload(b"a\nb\r.c\r\n.d") == b"a\r\nb\r\n..c\r\n..d\r\n.\r\n"
    assert data_payload(b".\r\n") == b"..\r\n.\r\n"
    assert data_payload(b"") == b"\r\n.\r\n"


# --- reply parser edges, against the scripted server --------------------------------


@pytest.mark.smtp
@pytest.mark.parametrize(
    ("step", "reply"),
    [
        ("EHLO", "250-faulty.local\r\n550 mixed codes"),
        ("GREETING", "220 " + "x" * 9000),
        ("GREETING", "220-no final line"),
        ("MAIL", "2500 not a code"),
    ],
)
async def test_malformed_replies_are_protocol_errors(step: str, reply: str) -> None:
    with FaultySMTPServer(Fault.REPLY_AT, step=step, reply=reply) as server:
        ep = Endpoint("127.0.0.1", server.port, Encryption.NONE, timeout_seconds=0.5)
        result = await verify(ep, None, "a@example.com", ["b@example.com"])
    if reply == "220-no final line":
        # A reply that never ends is a silent server.
        assert result.reason is Reason.CONNECTION_TIMEOUT, result
    else:
        assert result.reason is Reason.PROTOCOL_ERROR, result


@pytest.mark.smtp
async def test_421_mid_session_closes_it() -> None:
    with FaultySMTPServer(Fault.REPLY_AT, step="MAIL", reply="421 4.7.0 Too busy") as server:
        ep = Endpoint("127.0.0.1", server.port, Encryption.NONE, timeout_seconds=5)
        async with open_session(ep) as session:
            with pytest.raises(SMTPDeliveryError) as caught:
                await session.send("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\n")
            assert caught.value.reason is Reason.SERVER_UNAVAILABLE
            assert not caught.value.permanent
            assert not session.is_alive()


@pytest.mark.smtp
async def test_cancelling_verify_propagates_and_cleans_up() -> None:
    with FaultySMTPServer(Fault.NEVER_GREET) as server:
        ep = Endpoint("127.0.0.1", server.port, Encryption.NONE, timeout_seconds=30)
        task = asyncio.ensure_future(verify(ep, None, "a@example.com", ["b@example.com"]))
        done, _ = await asyncio.wait({task}, timeout=0.2)
        assert not done
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_the_smtp_layer_imports_no_kopf_controller_sidecar_or_devstack() -> None:
    code = (
        "import sys, emailsettings.smtp; "
        "bad = [m for m in sys.modules if m.split('.')[0] == 'kopf' or m.startswith("
        "('emailsettings.controller', 'emailsettings.sidecar', 'emailsettings.devstack'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert completed.returncode == 0, completed.stdout
