"""Well-behaved aiosmtpd servers: plaintext, STARTTLS and implicit TLS, optional AUTH."""

from __future__ import annotations

import asyncio
import enum
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from emailsettings.devstack.capture import Mailbox, ReceivedMessage
from emailsettings.devstack.netutil import free_port
from emailsettings.devstack.pki import KeyPair


class Security(enum.StrEnum):
    PLAIN = "plain"
    STARTTLS = "starttls"
    TLS = "tls"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class _Handler:
    def __init__(self, server: SMTPServer) -> None:
        self._server = server

    async def handle_MAIL(  # noqa: N802 - aiosmtpd hook name
        self, _server: SMTP, _session: Session, envelope: Envelope, address: str, _opts: Any
    ) -> str:
        if address.lower() in self._server.reject_senders:
            return "550 5.7.1 Sender rejected by policy"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, _server: SMTP, _session: Session, envelope: Envelope, address: str, _opts: Any
    ) -> str:
        if address.lower() in self._server.reject_recipients:
            return "550 5.1.1 Recipient address rejected: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, _server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        gate = self._server.data_gate
        if gate is not None:
            # Hold the end-of-DATA reply until the test opens the gate.
            await asyncio.get_running_loop().run_in_executor(None, gate.wait)
        content = envelope.original_content or envelope.content or b""
        assert isinstance(content, bytes)
        user = session.auth_data
        received = ReceivedMessage(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=content,
            tls=session.ssl is not None,
            auth_user=user.decode() if isinstance(user, bytes) else user,
        )
        self._server.mailbox.add(received)
        if self._server.maildir is not None:
            self._server.maildir.mkdir(parents=True, exist_ok=True)
            number = len(self._server.mailbox.messages)
            (self._server.maildir / f"{number:04d}.eml").write_bytes(content)
        return "250 2.0.0 Message accepted for delivery"


@dataclass
class SMTPServer:
    """One aiosmtpd server on loopback, in its own thread and event loop."""

    security: Security
    cert: KeyPair | None = None
    credentials: Credentials | None = None
    auth_require_tls: bool = True
    hostname: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    reject_recipients: set[str] = field(default_factory=set)
    reject_senders: set[str] = field(default_factory=set)
    mailbox: Mailbox = field(default_factory=Mailbox)
    # Cap the server's TLS version (e.g. TLSv1_2) to test clients' minimum versions.
    tls_max_version: ssl.TLSVersion | None = None
    # When set, every end-of-DATA waits for this event (tests of in-flight sends).
    data_gate: threading.Event | None = None
    # When set, every received message is also written there as NNNN.eml, for people to read.
    maildir: Path | None = None
    _controller: Controller | None = None

    def start(self) -> Self:
        tls = self._tls_context() if self.security is not Security.PLAIN else None
        kwargs: dict[str, Any] = {
            "hostname": self.hostname,
            "port": self.port,
            "ident": "emailsettings-devstack ESMTP",
            "server_hostname": "localhost",
            "enable_SMTPUTF8": True,
            "auth_require_tls": self.auth_require_tls,
            "auth_required": self.credentials is not None,
        }
        if self.credentials is not None:
            kwargs["authenticator"] = self._authenticate
        if self.security is Security.STARTTLS:
            kwargs["tls_context"] = tls
            kwargs["require_starttls"] = True
        elif self.security is Security.TLS:
            kwargs["ssl_context"] = tls
            # aiosmtpd only counts STARTTLS as TLS; the whole session is TLS here.
            kwargs["auth_require_tls"] = False
        self._controller = Controller(_Handler(self), **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _tls_context(self) -> ssl.SSLContext:
        if self.cert is None:
            raise ValueError("a TLS server needs a certificate")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert.cert), str(self.cert.key))
        if self.tls_max_version is not None:
            context.maximum_version = self.tls_max_version
        return context

    def _authenticate(
        self, _server: SMTP, _session: Session, _envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if mechanism not in {"PLAIN", "LOGIN"} or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        assert self.credentials is not None
        ok = (
            data.login.decode() == self.credentials.username
            and data.password.decode() == self.credentials.password
        )
        if not ok:
            # handled=False makes aiosmtpd answer "535 5.7.8"; with its default
            # (handled=True) it sends no reply at all and the client hangs.
            return AuthResult(success=False, handled=False)
        self.mailbox.count_login()
        return AuthResult(success=True, auth_data=data.login)
