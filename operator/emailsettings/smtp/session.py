"""Delivery sessions for the sidecar: one authenticated connection, many messages.

    async with open_session(endpoint, login) as session:
        result = await session.send(mail_from, recipients, message_bytes)

A pool can keep a DeliverySession (DeliverySession.open / close), check
is_alive() (cheap, local) or ping() (a NOOP round trip) before reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from emailsettings.api.conditions import Reason
from emailsettings.smtp.client import SMTPConnection
from emailsettings.smtp.endpoint import Endpoint, Login
from emailsettings.smtp.envelope import build_envelope, has_8bit, needs_smtputf8
from emailsettings.smtp.errors import Reply, SMTPDeliveryError, SMTPFailure

logger = logging.getLogger("emailsettings.smtp")


@dataclass(frozen=True)
class SendResult:
    accepted: tuple[str, ...]
    # Recipients the server refused while taking the message for the others:
    # address -> (reply code, reply text). 4xx ones are worth retrying later.
    rejected: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    server_reply: str = ""  # the reply to the end of DATA, e.g. "250 2.0.0 queued as X"


class DeliverySession:
    def __init__(self, connection: SMTPConnection) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()
        self.opened_at = time.monotonic()
        self.messages_sent = 0

    @classmethod
    async def open(cls, endpoint: Endpoint, login: Login | None = None) -> DeliverySession:
        """Connect, secure and authenticate; raises SMTPDeliveryError."""
        try:
            connection = await SMTPConnection.open(endpoint, login)
        except SMTPFailure as failure:
            raise SMTPDeliveryError.from_failure(failure) from None
        return cls(connection)

    def __repr__(self) -> str:
        return f"DeliverySession({self._connection!r}, messages_sent={self.messages_sent})"

    @property
    def endpoint(self) -> Endpoint:
        return self._connection.endpoint

    @property
    def tls_version(self) -> str | None:
        return self._connection.tls_version

    @property
    def auth_mechanism(self) -> str | None:
        return self._connection.auth_mechanism

    def is_alive(self) -> bool:
        """The connection is open as far as we know (no I/O; see ping())."""
        return self._connection.is_alive()

    async def ping(self) -> bool:
        """A NOOP round trip: true if the server still answers on this connection."""
        async with self._lock:
            if not self.is_alive():
                return False
            try:
                await self._connection.noop()
            except SMTPFailure:
                return False
            return True

    async def send(self, mail_from: str, recipients: Sequence[str], message: bytes) -> SendResult:
        """Deliver one message; some recipients may be refused (see SendResult.rejected).

        Raises SMTPDeliveryError when the message as a whole was not taken. After a
        refusal by reply the session stays usable; after a connection failure,
        is_alive() turns false.
        """
        async with self._lock:
            try:
                return await self._send(mail_from, recipients, message)
            except SMTPFailure as failure:
                await self._reset_after_failure()
                raise SMTPDeliveryError.from_failure(failure) from None

    async def _send(self, mail_from: str, recipients: Sequence[str], message: bytes) -> SendResult:
        connection = self._connection
        where = connection.endpoint.address
        if not connection.is_alive():
            raise SMTPFailure(
                Reason.CONNECTION_LOST, f"The connection to {where} is closed", permanent=False
            )
        sender, envelope_recipients = build_envelope(mail_from, recipients, delivery=True)
        smtputf8 = needs_smtputf8([sender, *envelope_recipients], message)
        if smtputf8 and not connection.offers("SMTPUTF8"):
            raise SMTPFailure(
                Reason.SMTPUTF8_NOT_OFFERED,
                f"The message needs SMTPUTF8 (non-ASCII addresses or headers), which the "
                f"server at {where} does not offer",
            )
        eight_bit = has_8bit(message)
        if eight_bit and not connection.offers("8BITMIME"):
            raise SMTPFailure(
                Reason.MESSAGE_REJECTED,
                f"The message has 8-bit content and the server at {where} does not offer "
                "8BITMIME; encode it as 7-bit (quoted-printable or base64)",
            )
        limit = connection.max_size
        if limit is not None and len(message) > limit:
            raise SMTPFailure(
                Reason.MESSAGE_REJECTED,
                f"The message ({len(message)} bytes) exceeds the size limit of the server "
                f"at {where} ({limit} bytes)",
            )
        if connection.in_transaction:
            await connection.rset()
        await connection.mail(sender, smtputf8=smtputf8, body_8bit=eight_bit)
        accepted: list[str] = []
        refused: dict[str, Reply] = {}
        for recipient in envelope_recipients:
            reply = await connection.rcpt(recipient)
            if reply.code in {250, 251}:
                accepted.append(recipient)
            else:
                refused[recipient] = reply
        if not accepted:
            raise connection.recipients_failure(refused)
        final = await connection.data(message)
        self.messages_sent += 1
        rejected = connection.recipients_failure(refused).rejected if refused else {}
        return SendResult(tuple(accepted), rejected, connection.redact.reply(final))

    async def _reset_after_failure(self) -> None:
        if self._connection.is_alive() and self._connection.in_transaction:
            with contextlib.suppress(SMTPFailure):
                await self._connection.rset()

    async def close(self) -> None:
        """QUIT (briefly bounded) and close; safe to call twice."""
        async with self._lock:
            await self._connection.quit()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


@contextlib.asynccontextmanager
async def open_session(
    endpoint: Endpoint, login: Login | None = None
) -> AsyncIterator[DeliverySession]:
    """A delivery session for the duration of the block; raises SMTPDeliveryError."""
    session = await DeliverySession.open(endpoint, login)
    try:
        yield session
    finally:
        await session.close()
