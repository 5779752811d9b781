"""SMTP intake: applications that already send mail use the sidecar as their local relay.

An application's own "email settings" page is pointed at the sidecar on localhost
(no authentication, no encryption: the connection never leaves the pod), and the
sidecar delivers with the verified EmailSettings, whose password the application
never holds.

- Listens on a loopback address only (EMAILSETTINGS_SMTP_LISTEN; off by default) and
  refuses, per connection, any peer that is not a loopback address (554).
- ESMTP with SIZE, 8BITMIME, SMTPUTF8 and PIPELINING (aiosmtpd speaks the protocol;
  this module decides what to accept).
- Recipients: administrative@, error@ and support@ the local domain (and postmaster,
  RFC 5321 4.5.1, as administrative) expand to that category's recipient list at
  delivery; any other address is relayed as addressed only when relaying is allowed,
  otherwise refused at RCPT with 550. A header (X-Notification-Category by default)
  adds categories.
- A 250 at the end of DATA is sent only after the message is committed to the
  durable spool (SQLite, synchronous=FULL; concurrent completions share one commit).
  A full spool answers 452, a broken one 451: never 250 for something not on disk.
- Oversize messages are refused at MAIL (SIZE=) or at the end of DATA (552); a
  bare LF or lone CR in DATA is normalized to CRLF (or refused, by configuration),
  so no sequence such as <LF>.<LF> can become the end of DATA at the next hop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session

from emailsettings.api.addresses import AddressError, parse_address
from emailsettings.sidecar import relay
from emailsettings.sidecar.metrics import Metrics
from emailsettings.sidecar.spool import (
    Spool,
    SpoolFullError,
    SpoolUnavailableError,
    State,
    Submission,
)

log = logging.getLogger(__name__)
# aiosmtpd logs every command (addresses included) at INFO; keep that for DEBUG runs.
AIOSMTPD_LOG = logging.getLogger("mail.log")

CATEGORIES = ("administrative", "error", "support")
POSTMASTER = "postmaster"  # RFC 5321 4.5.1: must be accepted; goes to the administrators
MAX_RECIPIENTS = 100
MAX_ADDRESS = 254
EVENT = "smtp"  # the event shown for relayed messages in the API
_CONTROL = re.compile("[\x00-\x1f\x7f]")
# "<local@domain>" with a dot-atom local part and a plain domain: the common MAIL FROM /
# RCPT TO argument, whose address is its own text. Anything else takes aiosmtpd's parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ANGLE_ADDR = re.compile(rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")


@dataclass(frozen=True)
class SMTPIntakeSettings:
    domain: str = "localhost"
    allow_relay: bool = False
    category_header: str = "X-Notification-Category"  # empty: no header selects
    max_message_bytes: int = 4 * 1024 * 1024
    max_connections: int = 8
    bare_newline: str = "normalize"  # or "reject"
    storm_window: float = 0.0
    hostname: str = field(default_factory=socket.gethostname)
    timeout: float = 300.0  # idle seconds before a connection is closed (RFC 5321 4.5.3.2.7)

    def aliases(self) -> str:
        return ", ".join(f"{c}@{self.domain}" for c in CATEGORIES)


def is_loopback(peer: object) -> bool:
    """Whether a socket peer ('127.0.0.1', port) / ('::1', port, ...) is a loopback address."""
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return False
    try:
        address = ipaddress.ip_address(peer[0].split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@dataclass(frozen=True)
class Target:
    category: str | None = None
    relay_to: str | None = None


class RecipientRefusedError(Exception):
    def __init__(self, reason: str, reply: str) -> None:
        super().__init__(reply)
        self.reason = reason  # metric label
        self.reply = reply


def _shown(address: str) -> str:
    """An address for a reply text: one line, printable, bounded."""
    return _CONTROL.sub("?", address)[:MAX_ADDRESS]


def judge_recipient(address: str, settings: SMTPIntakeSettings) -> Target:
    """An alias (its category) or an address to relay to; RecipientRefusedError if neither."""
    shown = _shown(address)
    if _CONTROL.search(address) or len(address) > MAX_ADDRESS:
        raise RecipientRefusedError("invalid", f"553 5.1.3 <{shown}>: not a valid address")
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, settings.domain  # RFC 5321 allows a bare <postmaster>
        if local.lower() != POSTMASTER:
            raise RecipientRefusedError(
                "invalid", f"553 5.1.3 <{shown}>: a full address (name@domain) is needed"
            )
    if domain.lower() == settings.domain.lower():
        name = local.lower()
        if name in CATEGORIES:
            return Target(category=name)
        if name == POSTMASTER:
            return Target(category="administrative")
        raise RecipientRefusedError(
            "unknown_alias",
            f"550 5.1.1 <{shown}>: no such alias here; use {settings.aliases()}",
        )
    if not settings.allow_relay:
        raise RecipientRefusedError(
            "relay_denied",
            f"550 5.7.1 <{shown}>: relaying denied: this sidecar delivers to "
            f"{settings.aliases()} only (EMAILSETTINGS_SMTP_ALLOW_RELAY is off)",
        )
    try:
        mailbox = parse_address(address)
    except AddressError as error:
        text = _CONTROL.sub(" ", str(error))[:200]
        raise RecipientRefusedError("invalid", f"553 5.1.3 <{shown}>: {text}") from None
    return Target(relay_to=mailbox.envelope)


def judge_sender(address: str, smtputf8: bool) -> str | None:
    """The refusal for a malformed MAIL FROM address, or None. Its value is not used
    further: the envelope sender of the delivery is always the EmailSettings' sender."""
    if address in {"", "<>"}:
        return None  # the null reverse-path
    shown = _shown(address)
    if _CONTROL.search(address) or len(address) > MAX_ADDRESS:
        return f"553 5.1.7 <{shown}>: not a valid sender address"
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return f"553 5.1.7 <{shown}>: a full sender address (name@domain) is needed"
    if not address.isascii() and not smtputf8:
        return f"553 5.6.7 <{shown}>: a non-ASCII address needs MAIL FROM ... SMTPUTF8"
    return None


class IntakeEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.categories: list[str] = []
        self.relay_to: list[str] = []


def category_label(categories: list[str], relay_to: list[str]) -> str:
    """The category a relayed message is filed (and counted) under."""
    if len(categories) == 1:
        return categories[0]
    if categories:
        return "mixed"
    return "relay" if relay_to else "none"


class _Hooks:
    """aiosmtpd's handler: one object for all connections, the decisions in SMTPIntake."""

    def __init__(self, intake: SMTPIntake) -> None:
        self._intake = intake

    async def handle_EHLO(  # noqa: N802 - aiosmtpd hook name
        self,
        _server: SMTP,
        session: Session,
        _envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        # aiosmtpd reads one command after the other, so pipelined commands just work.
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(  # noqa: N802 - aiosmtpd hook name
        self,
        _server: SMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        refusal = judge_sender(address, bool(envelope.smtp_utf8))
        if refusal is not None:
            self._intake.metrics.smtp_recipients_refused.labels(reason="invalid_sender").inc()
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self,
        _server: SMTP,
        _session: Session,
        envelope: IntakeEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        metrics = self._intake.metrics
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            metrics.smtp_recipients_refused.labels(reason="too_many").inc()
            return f"452 4.5.3 Too many recipients (at most {MAX_RECIPIENTS} per message)"
        try:
            target = judge_recipient(address, self._intake.settings)
        except RecipientRefusedError as refused:
            metrics.smtp_recipients_refused.labels(reason=refused.reason).inc()
            return refused.reply
        if target.category is not None and target.category not in envelope.categories:
            envelope.categories.append(target.category)
        if target.relay_to is not None and target.relay_to not in envelope.relay_to:
            envelope.relay_to.append(target.relay_to)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, _server: SMTP, session: Session, envelope: IntakeEnvelope
    ) -> str:
        intake = self._intake
        intake.inflight += 1
        intake.idle.clear()
        try:
            return await intake.take(session, envelope)
        except Exception:
            log.exception("SMTP intake: unexpected error taking a message")
            intake.metrics.smtp_messages.labels(result="error").inc()
            return "451 4.3.0 Local error; the message was not stored, try again later"
        finally:
            intake.inflight -= 1
            if not intake.inflight:
                intake.idle.set()


# aiosmtpd's own refusals, given enhanced status codes and a metric.
_AIOSMTPD_REPLIES = {
    "552 Error: message size exceeds fixed maximum message size": "too_big",
    "552 Error: Too much mail data": "too_big",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "line_too_long",
}


class IntakeSMTP(SMTP):
    """One connection: the loopback check and the connection limit come before the greeting."""

    def __init__(self, intake: SMTPIntake, **kwargs: Any) -> None:
        # aiosmtpd keeps this table on the class and changes it per EHLO; one per connection.
        self.command_size_limits: dict[str, int] = collections.defaultdict(
            lambda: SMTP.command_size_limit
        )
        super().__init__(_Hooks(intake), **kwargs)
        self._intake = intake

    def _create_envelope(self) -> IntakeEnvelope:
        return IntakeEnvelope()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parser, without its cost for a plain <local@domain>.

        aiosmtpd parses with the email package's header parser, about a fifth of the
        time to take a message. For a plain address the result is the text between
        the brackets and the parameters after it, which is what this returns; any
        other form (quoting, comments, literals, non-ASCII, <>) goes to aiosmtpd.
        """
        match = _PLAIN_ANGLE_ADDR.match(arg)
        if match is not None:
            tail = arg[match.end() :]
            rest = tail.lstrip(" \t")
            if (not tail or rest != tail) and not rest.startswith("("):
                address = match.group(1)
                local_part = address.rpartition("@")[0]
                if self.local_part_limit and len(local_part) > self.local_part_limit:
                    return None, None
                return address, rest
        result: tuple[str | None, str | None] = super()._getaddr(arg)
        return result

    async def _handle_client(self) -> None:
        intake = self._intake
        assert self.session is not None
        peer = self.session.peer
        if not is_loopback(peer):
            intake.metrics.smtp_connections.labels(result="refused_not_loopback").inc()
            log.warning("SMTP intake: refused a connection from %s: not a loopback address", peer)
            await super().push("554 5.7.1 This relay accepts connections from loopback only")
            self.close_now()
            return
        if len(intake.sessions) >= intake.settings.max_connections:
            intake.metrics.smtp_connections.labels(result="refused_busy").inc()
            await super().push("421 4.7.0 Too many connections; try again later")
            self.close_now()
            return
        intake.metrics.smtp_connections.labels(result="accepted").inc()
        intake.sessions.add(self)
        try:
            await super()._handle_client()
        finally:
            intake.sessions.discard(self)

    async def push(self, status: AnyStr) -> None:
        text = status if isinstance(status, str) else status.decode("utf-8", "replace")
        result = _AIOSMTPD_REPLIES.get(text)
        if result is not None:
            self._intake.metrics.smtp_messages.labels(result=result).inc()
            limit = self._intake.settings.max_message_bytes
            text = (
                f"552 5.3.4 Message too big: the limit is {limit} bytes"
                if result == "too_big"
                else "500 5.5.2 Line too long: at most 998 characters a line (RFC 5321)"
            )
            await super().push(text)
            return
        await super().push(status)

    def close_now(self) -> None:
        if self.transport is not None:
            self.transport.close()


class SMTPIntake:
    def __init__(
        self,
        *,
        spool: Spool,
        metrics: Metrics,
        settings: SMTPIntakeSettings,
        on_accepted: Callable[[], None] = lambda: None,
        accepting: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self.metrics = metrics
        self.settings = settings
        self._on_accepted = on_accepted
        self._accepting = accepting
        self._clock = clock
        self._servers: list[asyncio.Server] = []
        self.sessions: set[IntakeSMTP] = set()
        self.inflight = 0  # DATA completions waiting for their commit
        self.idle = asyncio.Event()
        self.idle.set()
        self.addresses: list[tuple[str, int]] = []

    async def start(self, host: str, port: int) -> list[tuple[str, int]]:
        if AIOSMTPD_LOG.level == logging.NOTSET and not log.isEnabledFor(logging.DEBUG):
            AIOSMTPD_LOG.setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: IntakeSMTP(
                self,
                data_size_limit=self.settings.max_message_bytes,
                enable_SMTPUTF8=True,
                decode_data=False,
                hostname=self.settings.hostname,
                ident="ESMTP emailsettings-sidecar",
                timeout=self.settings.timeout,
                loop=loop,
            ),
            host,
            port,
            reuse_address=True,
        )
        self._servers.append(server)
        for sock in server.sockets:
            name = sock.getsockname()
            self.addresses.append((str(name[0]), int(name[1])))
        return self.addresses

    async def close(self, grace: float = 10.0) -> None:
        """Stop listening, let DATA commits in flight answer, then close the connections."""
        for server in self._servers:
            server.close()
        if self.inflight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), grace)
        for session in list(self.sessions):
            session.close_now()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def take(self, session: Session, envelope: IntakeEnvelope) -> str:
        """Judge, store and answer one message at the end of DATA."""
        if not self._accepting():
            self.metrics.smtp_messages.labels(result="shutting_down").inc()
            return "451 4.3.2 The sidecar is shutting down; try again later"
        content = envelope.original_content or b""
        refusal = self._judge_content(content)
        if refusal is not None:
            return refusal
        now = self._clock()
        peer = session.peer[0] if isinstance(session.peer, tuple) else "unknown"
        if not session.extended_smtp:
            protocol = "SMTP"
        else:
            protocol = "UTF8SMTP" if envelope.smtp_utf8 else "ESMTP"
        message = relay.accept(
            content,
            helo=session.host_name,
            peer=str(peer),
            by=self.settings.hostname,
            protocol=protocol,
            now=dt.datetime.fromtimestamp(now, dt.UTC),
        )
        categories = list(envelope.categories)
        try:
            extra = relay.categories_in_header(message, self.settings.category_header, CATEGORIES)
        except ValueError as error:
            self.metrics.smtp_messages.labels(result="bad_category_header").inc()
            return f"554 5.6.0 Message refused: {_one_line(error)}"
        categories += [c for c in extra if c not in categories]
        relay_to = list(envelope.relay_to)
        storm_key = None
        if self.settings.storm_window > 0:
            storm_key = relay.storm_identity(message, categories, relay_to)
        submission = Submission(
            category=category_label(categories, relay_to),
            event=EVENT,
            subject=None,
            body=None,
            fields={},
            storm_key=storm_key,
            fingerprint=storm_key or "",
            raw=message.to_bytes(),
            categories=tuple(categories),
            relay_to=tuple(relay_to),
            message_id=relay.message_id_of(message),
        )
        return await self._store(submission, now)

    def _judge_content(self, content: bytes) -> str | None:
        if b"\x00" in content:
            self.metrics.smtp_messages.labels(result="bad_content").inc()
            return "554 5.6.0 Message refused: it contains NUL characters"
        if relay.has_bare_line_ending(content):
            if self.settings.bare_newline == "reject":
                self.metrics.smtp_messages.labels(result="bad_content").inc()
                return (
                    "554 5.6.0 Message refused: a bare LF or CR is not a line ending; "
                    "send CRLF line endings"
                )
            self.metrics.smtp_bare_newlines.inc()
        return None

    async def _store(self, submission: Submission, now: float) -> str:
        """Commit, then answer: 250 only for what is on disk."""
        metrics = self.metrics
        label = submission.category
        started = time.monotonic()
        try:
            receipt = await self.spool.add(
                submission, now=now, storm_window=self.settings.storm_window
            )
        except SpoolFullError as error:
            metrics.smtp_messages.labels(result="spool_full").inc()
            return f"452 4.3.1 Insufficient system storage: {_one_line(error)}"
        except SpoolUnavailableError as error:
            metrics.smtp_messages.labels(result="spool_unavailable").inc()
            if "full" in str(error):
                return f"452 4.3.1 Insufficient system storage: {_one_line(error)}"
            return f"451 4.3.0 Not stored: {_one_line(error)}; try again later"
        metrics.smtp_commit_seconds.observe(time.monotonic() - started)
        if receipt.state is State.COLLAPSED:
            metrics.smtp_messages.labels(result="collapsed").inc()
            metrics.collapsed.labels(category=label).inc()
            return f"250 2.0.0 Ok: queued as {receipt.id} (counted into {receipt.collapsed_into})"
        metrics.smtp_messages.labels(result="accepted").inc()
        metrics.accepted.labels(category=label).inc()
        self._on_accepted()
        size = len(submission.raw or b"")
        log.info("SMTP intake: message %s stored (%d bytes, %s)", receipt.id, size, label)
        return f"250 2.0.0 Ok: queued as {receipt.id}"


def _one_line(error: BaseException) -> str:
    return _CONTROL.sub(" ", str(error))[:300]
