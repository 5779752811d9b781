"""The operator's check: would this server take mail from `sender` to `recipients`?

connect, EHLO, STARTTLS/TLS, AUTH, MAIL FROM, RCPT TO each recipient, RSET, QUIT;
no message is sent. Failures come back as a result, never as an exception.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from emailsettings.api.conditions import Reason
from emailsettings.smtp.client import SMTPConnection
from emailsettings.smtp.endpoint import Endpoint, Login
from emailsettings.smtp.envelope import build_envelope, needs_smtputf8
from emailsettings.smtp.errors import Redactor, Reply, SMTPFailure

logger = logging.getLogger("emailsettings.smtp")


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    reason: Reason
    message: str
    endpoint: str  # host:port
    permanent: bool = False  # a failure a retry cannot cure (5xx, TLS, credentials)
    tls_version: str | None = None  # e.g. "TLSv1.3"; None for plaintext
    auth_mechanism: str | None = None  # "PLAIN", "LOGIN" or None
    latency_seconds: float = 0.0
    rejected_recipient: str | None = None  # the (first) recipient the server refused
    rejected_recipients: tuple[str, ...] = ()  # every recipient the server refused
    server_reply: str | None = None  # the deciding reply, e.g. "550 5.1.1 ..."


async def verify(
    endpoint: Endpoint,
    login: Login | None,
    sender: str,
    recipients: Sequence[str],
) -> VerifyResult:
    started = time.monotonic()
    connection: SMTPConnection | None = None
    failure: SMTPFailure | None = None
    summary = ""
    try:
        envelope_sender, envelope_recipients = build_envelope(sender, recipients, delivery=False)
        connection = SMTPConnection(endpoint, login)
        await connection.connect()
        summary = await _check_envelope(connection, envelope_sender, envelope_recipients)
    except SMTPFailure as exc:
        failure = exc
    except Exception:  # a bug, not a server failure: report it, keep the caller running
        logger.exception("unexpected error while verifying %s", endpoint.address)
        failure = SMTPFailure(
            Reason.PROTOCOL_ERROR,
            f"Unexpected internal error while verifying {endpoint.address}",
            permanent=False,
        )
    except BaseException:  # cancelled: drop the connection at once, no QUIT
        if connection is not None:
            connection.abort()
        raise
    if connection is not None:
        await connection.quit()

    redact = Redactor.for_login(login)
    latency = time.monotonic() - started
    tls_version = connection.tls_version if connection else None
    auth_mechanism = connection.auth_mechanism if connection else None
    if failure is None:
        logger.info("verified %s in %.3fs", endpoint.address, latency)
        return VerifyResult(
            ok=True,
            reason=Reason.VERIFIED,
            message=redact(summary),
            endpoint=endpoint.address,
            tls_version=tls_version,
            auth_mechanism=auth_mechanism,
            latency_seconds=latency,
        )
    logger.info("verification of %s failed: %s", endpoint.address, failure.reason)
    return VerifyResult(
        ok=False,
        reason=failure.reason,
        message=redact(failure.message),
        endpoint=endpoint.address,
        permanent=failure.permanent,
        tls_version=tls_version,
        auth_mechanism=auth_mechanism,
        latency_seconds=latency,
        rejected_recipient=failure.recipient,
        rejected_recipients=tuple(failure.rejected),
        server_reply=redact(failure.server_reply) if failure.server_reply else None,
    )


async def _check_envelope(connection: SMTPConnection, sender: str, recipients: list[str]) -> str:
    where = connection.endpoint.address
    smtputf8 = needs_smtputf8([sender, *recipients])
    if smtputf8 and not connection.offers("SMTPUTF8"):
        raise SMTPFailure(
            Reason.SMTPUTF8_NOT_OFFERED,
            f"The server at {where} does not offer SMTPUTF8, needed for the non-ASCII addresses",
        )
    await connection.mail(sender, smtputf8=smtputf8)
    refused: dict[str, Reply] = {}
    for recipient in recipients:
        reply = await connection.rcpt(recipient)
        if reply.code not in {250, 251}:
            refused[recipient] = reply
    if refused:
        raise connection.recipients_failure(refused)
    # The envelope was accepted: RSET (and later QUIT) are courtesy, not part of the verdict.
    with contextlib.suppress(SMTPFailure):
        await connection.rset()
    security = connection.tls_version or "plaintext"
    auth = f", AUTH {connection.auth_mechanism}" if connection.auth_mechanism else ""
    return f"{where} accepted sender {sender} and {len(recipients)} recipient(s) ({security}{auth})"
