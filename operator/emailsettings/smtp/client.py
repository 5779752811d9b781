"""One SMTP connection: connect, greet, EHLO, STARTTLS or implicit TLS, AUTH, commands.

The dialogue is written on an asyncio Protocol of our own so every guarantee is
visible here rather than inherited:

- STARTTLS is explicit: when chosen and not offered, or refused, the connection
  fails; nothing is ever sent in plaintext after that decision.
- Anything the server sent before the TLS handshake is discarded (the STARTTLS
  response-injection defence), the capabilities seen before TLS are forgotten, and
  EHLO is sent again over TLS; only post-TLS capabilities are used.
- Unsolicited bytes are never paired with a later command: the buffer is emptied
  before each command is written.
- Credentials are only sent over TLS, unless the endpoint explicitly allows
  plaintext AUTH; AUTH payloads are never logged.
- Every wait is bounded by the endpoint's timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import cast

from emailsettings.api.conditions import Reason
from emailsettings.smtp.endpoint import Encryption, Endpoint, Login
from emailsettings.smtp.envelope import data_payload
from emailsettings.smtp.errors import (
    ConnectionLostError,
    ProtocolViolationError,
    Redactor,
    Reply,
    SMTPFailure,
    Stage,
    failure_from_exception,
    failure_from_reply,
)
from emailsettings.smtp.tls import CABundleError, client_context

logger = logging.getLogger("emailsettings.smtp")

MAX_LINE_BYTES = 8192
MAX_REPLY_LINES = 512
# Waiting for the reply to the end of DATA may take longer than other commands
# (content scanning); RFC 5321 4.5.3.2.6 suggests up to 10 minutes.
DATA_REPLY_TIMEOUT_FLOOR = 60.0
QUIT_TIMEOUT = 2.0
CLOSE_TIMEOUT = 1.0

_FQDN = re.compile(
    r"(?=.{4,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_NETWORK_ERRORS = (OSError, EOFError, ProtocolViolationError)


def default_helo_name(sockname: object) -> str:
    """This host's FQDN if it has one, else an address literal of our end of the socket."""
    hostname = socket.gethostname()
    if _FQDN.fullmatch(hostname):
        return hostname
    host = sockname[0] if isinstance(sockname, tuple) and sockname else "127.0.0.1"
    try:
        address = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return "[127.0.0.1]"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"[{address.ipv4_mapped}]"
        return f"[IPv6:{address}]"
    return f"[{address}]"


class _ReplyStream(asyncio.Protocol):
    """Bytes out, SMTP replies in; survives the switch to TLS."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._code: int | None = None
        self._lines: list[str] = []
        self._waiter: asyncio.Future[Reply] | None = None
        self._lost = False
        self._closed: asyncio.Future[None] = loop.create_future()
        self._paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self._buffer.extend(data)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            try:
                reply = self._parse()
            except ProtocolViolationError as exc:
                waiter.set_exception(exc)
            else:
                if reply is not None:
                    waiter.set_result(reply)
        elif len(self._buffer) > MAX_LINE_BYTES * 4:
            # Unsolicited flood: it would be discarded before the next command anyway.
            self._buffer.clear()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._mark_lost()
        del exc  # the caller learns "lost" from us; the OS detail adds nothing safe

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # our side

    @property
    def alive(self) -> bool:
        return not self._lost and self.transport is not None and not self.transport.is_closing()

    def _mark_lost(self) -> None:
        self._lost = True
        for waiter in (self._waiter, self._drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionLostError("connection lost"))
        if not self._closed.done():
            self._closed.set_result(None)

    def discard(self) -> int:
        """Forget every byte received but not yet consumed; returns how many."""
        count = len(self._buffer) + sum(len(line) for line in self._lines)
        self._buffer.clear()
        self._lines.clear()
        self._code = None
        return count

    def send(self, data: bytes) -> None:
        if not self.alive or self.transport is None:
            raise ConnectionLostError("connection lost")
        stale = self.discard()
        if stale:
            logger.warning("discarded %d unsolicited byte(s) from the SMTP server", stale)
        self.transport.write(data)

    async def drain(self) -> None:
        if self._lost:
            raise ConnectionLostError("connection lost")
        if self._paused:
            self._drain_waiter = self._loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    async def read_reply(self) -> Reply:
        """The next complete reply (the caller bounds the wait)."""
        reply = self._parse()
        if reply is not None:
            return reply
        if self._lost:
            raise ConnectionLostError("connection lost")
        self._waiter = self._loop.create_future()
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def _parse(self) -> Reply | None:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE_BYTES:
                    raise ProtocolViolationError("reply line too long")
                return None
            raw = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            line = raw.rstrip(b"\r\n")
            if len(line) > MAX_LINE_BYTES:
                raise ProtocolViolationError("reply line too long")
            if (
                len(line) < 3
                or not line[:3].isdigit()
                or line[:1] not in b"2345"
                or line[3:4] not in {b"", b" ", b"-"}
            ):
                snippet = line[:80].decode("utf-8", errors="replace")
                raise ProtocolViolationError("not an SMTP reply line", snippet)
            code = int(line[:3])
            if self._code is not None and code != self._code:
                raise ProtocolViolationError("reply lines carry different codes")
            self._code = code
            self._lines.append(line[4:].decode("utf-8", errors="replace"))
            if len(self._lines) > MAX_REPLY_LINES:
                raise ProtocolViolationError("reply too long")
            if line[3:4] != b"-":
                reply = Reply(code, tuple(self._lines))
                self._code = None
                self._lines = []
                return reply

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> int:
        """Wrap the connection in TLS; returns how many plaintext bytes were discarded.

        Called right after the server's go-ahead (or at once for implicit TLS).
        Bytes already received are dropped here; later ones reach the TLS layer,
        where plaintext cannot pass as records, so it fails the handshake instead.
        """
        if self.transport is None or not self.alive:
            raise ConnectionLostError("connection lost")
        discarded = self.discard()
        raw = self.transport
        try:
            self.transport = await self._loop.start_tls(
                raw, self, context, server_side=False, server_hostname=server_hostname
            )
        except BaseException:
            raw.abort()
            self._mark_lost()
            raise
        if self.transport is None:  # pragma: no cover - only if the loop lost the transport
            raise ConnectionLostError("connection lost")
        return discarded

    async def close(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if not self._lost:
            transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._closed), CLOSE_TIMEOUT)
            except TimeoutError:
                transport.abort()
        self._mark_lost()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._mark_lost()


class SMTPConnection:
    """A connected, greeted, encrypted-as-configured and authenticated SMTP session."""

    def __init__(self, endpoint: Endpoint, login: Login | None) -> None:
        self.endpoint = endpoint
        self._login = login
        self.redact = Redactor.for_login(login)
        self._stream = _ReplyStream(asyncio.get_running_loop())
        self._helo = endpoint.helo_name or "localhost"
        self._extensions: dict[str, str] = {}
        self.ehlo_domain: str | None = None
        self.tls_version: str | None = None
        self.auth_mechanism: str | None = None
        self.in_transaction = False

    def __repr__(self) -> str:
        return (
            f"SMTPConnection({self.endpoint.address}, tls={self.tls_version}, "
            f"auth={self.auth_mechanism}, alive={self.is_alive()})"
        )

    # --- opening -------------------------------------------------------------------

    @classmethod
    async def open(cls, endpoint: Endpoint, login: Login | None = None) -> SMTPConnection:
        """A connection ready for MAIL FROM; raises SMTPFailure."""
        connection = cls(endpoint, login)
        await connection.connect()
        return connection

    async def connect(self) -> None:
        """Connect, greet, secure, authenticate; raises SMTPFailure, never leaks the socket.

        On failure the object still tells how far it got (tls_version, ehlo_domain).
        """
        try:
            await self._establish()
        except SMTPFailure:
            await self.quit()
            raise
        except BaseException:
            self._stream.abort()
            raise

    async def _establish(self) -> None:
        endpoint = self.endpoint
        context = self._tls_context() if endpoint.encryption is not Encryption.NONE else None
        logger.debug("connecting to %s (%s)", endpoint.address, endpoint.encryption)
        with self._guard(Stage.CONNECT):
            async with asyncio.timeout(endpoint.timeout_seconds):
                await asyncio.get_running_loop().create_connection(
                    lambda: self._stream, endpoint.host, endpoint.port
                )
        if endpoint.helo_name is None and self._stream.transport is not None:
            self._helo = default_helo_name(self._stream.transport.get_extra_info("sockname"))
        if context is not None and endpoint.encryption is Encryption.TLS:
            await self._start_tls(context)
        with self._guard(Stage.GREETING):
            async with asyncio.timeout(endpoint.timeout_seconds):
                greeting = await self._stream.read_reply()
        logger.debug("%s <- %s", endpoint.address, self.redact.reply(greeting))
        if greeting.code != 220:
            raise self._reply_failure(greeting, Stage.GREETING)
        await self._ehlo()
        if context is not None and endpoint.encryption is Encryption.STARTTLS:
            if "STARTTLS" not in self._extensions:
                raise SMTPFailure(
                    Reason.STARTTLS_NOT_OFFERED,
                    f"The server at {endpoint.address} does not offer STARTTLS; "
                    "refusing to continue in plaintext",
                    stage=Stage.STARTTLS,
                )
            reply = await self.command(Stage.STARTTLS, "STARTTLS")
            if reply.code != 220:
                raise self._reply_failure(reply, Stage.STARTTLS)
            await self._start_tls(context)
            # RFC 3207 4.2: forget everything learnt before TLS, ask again.
            self._extensions = {}
            self.ehlo_domain = None
            await self._ehlo()
        if self._login is not None:
            await self._authenticate(self._login)

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return client_context(self.endpoint.tls)
        except CABundleError as exc:
            raise SMTPFailure(
                Reason.CERTIFICATE_UNTRUSTED,
                f"Cannot verify {self.endpoint.address}: {exc}",
                stage=Stage.TLS_HANDSHAKE,
            ) from None

    async def _start_tls(self, context: ssl.SSLContext) -> None:
        with self._guard(Stage.TLS_HANDSHAKE):
            async with asyncio.timeout(self.endpoint.timeout_seconds):
                discarded = await self._stream.start_tls(context, self.endpoint.sni_name)
        if discarded:
            logger.warning(
                "%s sent %d byte(s) before the TLS handshake; discarded them "
                "(possible STARTTLS response injection)",
                self.endpoint.address,
                discarded,
            )
        transport = self._stream.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        self.tls_version = ssl_object.version() if isinstance(ssl_object, ssl.SSLObject) else None
        logger.debug("%s: TLS established (%s)", self.endpoint.address, self.tls_version)

    async def _ehlo(self) -> None:
        reply = await self.command(Stage.EHLO, f"EHLO {self._helo}")
        if reply.code == 250:
            self.ehlo_domain, self._extensions = _parse_ehlo(reply)
            return
        if not reply.permanent:
            raise self._reply_failure(reply, Stage.EHLO)
        # An old server without ESMTP: HELO, no extensions.
        reply = await self.command(Stage.EHLO, f"HELO {self._helo}")
        if reply.code != 250:
            raise self._reply_failure(reply, Stage.EHLO)
        self.ehlo_domain, self._extensions = (reply.text.split() or [""])[0], {}

    async def _authenticate(self, login: Login) -> None:
        endpoint = self.endpoint
        encrypted = self.tls_version is not None
        if not encrypted and not endpoint.allow_plaintext_auth:
            hint = (
                "; the server offers STARTTLS, use encryption STARTTLS"
                if "STARTTLS" in self._extensions
                else ""
            )
            raise SMTPFailure(
                Reason.AUTH_REQUIRES_TLS,
                f"Refusing to send credentials to {endpoint.address} over an unencrypted "
                f"connection{hint}",
                stage=Stage.AUTH,
            )
        offered = self._extensions.get("AUTH", "").upper().split()
        if not offered and not encrypted and "STARTTLS" in self._extensions:
            raise SMTPFailure(
                Reason.AUTH_REQUIRES_TLS,
                f"The server at {endpoint.address} offers AUTH only after STARTTLS; "
                "use encryption STARTTLS",
                stage=Stage.AUTH,
            )
        candidates = [mechanism for mechanism in endpoint.auth_mechanisms if mechanism in offered]
        if not candidates:
            offers = " ".join(offered) if offered else "no AUTH at all"
            raise SMTPFailure(
                Reason.AUTH_NOT_SUPPORTED,
                f"The server at {endpoint.address} offers {offers}; usable mechanisms "
                f"are {', '.join(endpoint.auth_mechanisms)}",
                stage=Stage.AUTH,
            )
        for index, mechanism in enumerate(candidates):
            if mechanism == "PLAIN":
                reply = await self._auth_plain(login)
            else:
                reply = await self._auth_login(login)
            if reply.code == 235:
                self.auth_mechanism = mechanism
                logger.debug("%s: authenticated with %s", endpoint.address, mechanism)
                return
            if reply.code == 504 and index + 1 < len(candidates):
                continue  # advertised but refused: try the next one
            raise self._reply_failure(reply, Stage.AUTH)

    async def _auth_plain(self, login: Login) -> Reply:
        blob = base64.b64encode(
            b"\0" + login.username.encode() + b"\0" + login.password.encode()
        ).decode()
        return await self.command(Stage.AUTH, f"AUTH PLAIN {blob}", secret=True)

    async def _auth_login(self, login: Login) -> Reply:
        reply = await self.command(Stage.AUTH, "AUTH LOGIN")
        if reply.code != 334:
            return reply
        user = base64.b64encode(login.username.encode()).decode()
        reply = await self.command(Stage.AUTH, user, secret=True)
        if reply.code != 334:
            return reply
        password = base64.b64encode(login.password.encode()).decode()
        return await self.command(Stage.AUTH, password, secret=True)

    # --- commands ------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, stage: Stage) -> Iterator[None]:
        """Turns network/TLS/protocol exceptions at `stage` into an SMTPFailure."""
        try:
            yield
        except asyncio.CancelledError:
            # A reply may still be on its way; it must never meet the next command.
            self._stream.abort()
            raise
        except _NETWORK_ERRORS as exc:
            failure = failure_from_exception(
                exc, stage=stage, endpoint=self.endpoint, redact=self.redact
            )
            if failure is None:  # pragma: no cover - every _NETWORK_ERRORS type is mapped
                raise
            logger.debug(
                "%s: %s failed: %s (%s)",
                self.endpoint.address,
                stage,
                failure.reason,
                type(exc).__name__,
            )
            self._stream.abort()
            raise failure from None

    def _reply_failure(self, reply: Reply, stage: Stage, address: str | None = None) -> SMTPFailure:
        return failure_from_reply(
            reply,
            stage=stage,
            endpoint=self.endpoint,
            redact=self.redact,
            address=address,
            tls_active=self.tls_version is not None,
        )

    async def command(
        self, stage: Stage, line: str, *, secret: bool = False, within: float | None = None
    ) -> Reply:
        """Send one command line, return its reply; a 421 closes and raises."""
        if "\r" in line or "\n" in line:
            raise ValueError("an SMTP command line cannot contain CR or LF")
        if secret:
            line_shown = "AUTH <redacted>" if line.upper().startswith("AUTH ") else "<redacted>"
        else:
            line_shown = line
        logger.debug("%s -> %s", self.endpoint.address, line_shown)
        with self._guard(stage):
            async with asyncio.timeout(within or self.endpoint.timeout_seconds):
                self._stream.send(line.encode("utf-8") + b"\r\n")
                await self._stream.drain()
                reply = await self._stream.read_reply()
        logger.debug("%s <- %s", self.endpoint.address, self.redact.reply(reply))
        if reply.code == 421:
            self._stream.abort()
            raise self._reply_failure(reply, stage)
        return reply

    def offers(self, extension: str) -> bool:
        return extension.upper() in self._extensions

    @property
    def extensions(self) -> Mapping[str, str]:
        """EHLO keywords (upper case) -> parameters, as last advertised (after TLS)."""
        return MappingProxyType(self._extensions)

    @property
    def max_size(self) -> int | None:
        value = self._extensions.get("SIZE", "")
        return int(value) if value.isdigit() and int(value) > 0 else None

    async def mail(self, sender: str, *, smtputf8: bool = False, body_8bit: bool = False) -> Reply:
        params = (" BODY=8BITMIME" if body_8bit else "") + (" SMTPUTF8" if smtputf8 else "")
        reply = await self.command(Stage.MAIL, f"MAIL FROM:<{sender}>{params}")
        if reply.code != 250:
            raise self._reply_failure(reply, Stage.MAIL, sender)
        self.in_transaction = True
        return reply

    async def rcpt(self, recipient: str) -> Reply:
        """The server's answer for one recipient (250/251 accept); the caller judges it."""
        return await self.command(Stage.RCPT, f"RCPT TO:<{recipient}>")

    def recipients_failure(self, refused: Mapping[str, Reply]) -> SMTPFailure:
        """One failure for refused recipients: a permanent refusal is reported first;
        permanent only if every refusal is."""
        failures = [self._reply_failure(reply, Stage.RCPT, rcpt) for rcpt, reply in refused.items()]
        first = next((failure for failure in failures if failure.permanent), failures[0])
        message = first.message
        if len(failures) > 1:
            message += f" (refused recipients: {', '.join(refused)})"
        return SMTPFailure(
            first.reason,
            message,
            all(failure.permanent for failure in failures),
            server_reply=first.server_reply,
            reply_code=first.reply_code,
            recipient=first.recipient,
            stage=Stage.RCPT,
            rejected={
                rcpt: (reply.code, self.redact.server_text(reply.text))
                for rcpt, reply in refused.items()
            },
        )

    async def data(self, message: bytes) -> Reply:
        reply = await self.command(Stage.DATA, "DATA")
        if reply.code != 354:
            raise self._reply_failure(reply, Stage.DATA)
        timeout = max(self.endpoint.timeout_seconds, DATA_REPLY_TIMEOUT_FLOOR)
        logger.debug("%s -> <message, %d bytes>", self.endpoint.address, len(message))
        with self._guard(Stage.DATA):
            async with asyncio.timeout(timeout):
                self._stream.send(data_payload(message))
                await self._stream.drain()
                reply = await self._stream.read_reply()
        logger.debug("%s <- %s", self.endpoint.address, self.redact.reply(reply))
        self.in_transaction = False
        if reply.code == 421:
            self._stream.abort()
        if reply.code != 250:
            raise self._reply_failure(reply, Stage.DATA)
        return reply

    async def rset(self) -> None:
        reply = await self.command(Stage.RSET, "RSET")
        if reply.code != 250:
            raise self._reply_failure(reply, Stage.RSET)
        self.in_transaction = False

    async def noop(self) -> None:
        reply = await self.command(Stage.NOOP, "NOOP")
        if reply.code != 250:
            raise self._reply_failure(reply, Stage.NOOP)

    def is_alive(self) -> bool:
        return self._stream.alive

    def abort(self) -> None:
        """Drop the connection at once (no QUIT)."""
        self._stream.abort()

    async def quit(self) -> None:
        """QUIT politely (best effort, briefly bounded) and close."""
        if self.is_alive():
            with contextlib.suppress(SMTPFailure):
                await self.command(
                    Stage.QUIT, "QUIT", within=min(self.endpoint.timeout_seconds, QUIT_TIMEOUT)
                )
        await self.close()

    async def close(self) -> None:
        await self._stream.close()


def _parse_ehlo(reply: Reply) -> tuple[str, dict[str, str]]:
    first, *rest = reply.lines or ("",)
    domain = (first.split() or [""])[0]
    extensions: dict[str, str] = {}
    for line in rest:
        keyword, _, params = line.strip().partition(" ")
        if not keyword:
            continue
        if keyword.upper().startswith("AUTH="):  # old-style "AUTH=PLAIN LOGIN"
            params = (keyword[5:] + " " + params).strip()
            keyword = "AUTH"
        keyword = keyword.upper()
        if keyword == "AUTH" and "AUTH" in extensions:
            params = f"{extensions['AUTH']} {params}".strip()
        extensions[keyword] = params.strip()
    return domain, extensions
