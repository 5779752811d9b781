"""Failure classification: every network, TLS and SMTP failure becomes one Reason.

A failure carries a human message that is safe to show and store: it names the
endpoint and, where it helps, the server's reply, but never the password (server
text passes through a Redactor) and never raw exception text.
"""

from __future__ import annotations

import base64
import enum
import errno
import re
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from emailsettings.api.conditions import TRANSIENT, Reason
from emailsettings.smtp.endpoint import Encryption, Endpoint, Login

MAX_SERVER_TEXT = 300

# OpenSSL verify codes (X509_V_ERR_*).
_CERT_NOT_YET_VALID = 9
_CERT_HAS_EXPIRED = 10
_HOSTNAME_MISMATCH = 62
_EMAIL_MISMATCH = 63
_IP_ADDRESS_MISMATCH = 64

_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}
_VERSION_ALERTS = ("PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class Stage(enum.StrEnum):
    CONNECT = "connect"
    TLS_HANDSHAKE = "TLS handshake"
    GREETING = "greeting"
    EHLO = "EHLO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    MAIL = "MAIL FROM"
    RCPT = "RCPT TO"
    DATA = "DATA"
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(line for line in self.lines if line)

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


class ConnectionLostError(ConnectionError):
    """The server closed the connection (or it broke) while we needed it."""


class ProtocolViolationError(Exception):
    """The server sent something that is not a well-formed SMTP reply."""

    def __init__(self, problem: str, snippet: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.snippet = snippet


class Redactor:
    """Removes the password, in every form we put on the wire, from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({secret for secret in secrets if secret}, key=len, reverse=True)

    @classmethod
    def for_login(cls, login: Login | None) -> Redactor:
        if login is None or not login.password:
            return cls()
        user, password = login.username.encode(), login.password.encode()
        forms = [
            login.password,
            base64.b64encode(password).decode(),
            base64.b64encode(b"\0" + user + b"\0" + password).decode(),
        ]
        return cls(forms)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def server_text(self, text: str) -> str:
        """Server-supplied text made safe to show: redacted, one line, bounded."""
        text = " ".join(_CONTROL.sub(" ", self(text)).split())
        text = self(text)
        if len(text) > MAX_SERVER_TEXT:
            text = text[: MAX_SERVER_TEXT - 3] + "..."
        return text

    def reply(self, reply: Reply) -> str:
        text = self.server_text(reply.text)
        return f"{reply.code} {text}" if text else str(reply.code)


class SMTPFailure(Exception):  # noqa: N818 - a failure result, named for what it reports
    """A classified SMTP/network/TLS failure with a safe message.

    `permanent` is true when retrying with the same settings cannot help: a 5xx
    reply, or a configuration problem such as TLS or credentials. `rejected` maps
    refused recipients to the server's (code, text) when recipients were refused.
    """

    def __init__(
        self,
        reason: Reason,
        message: str,
        permanent: bool | None = None,
        *,
        server_reply: str | None = None,
        reply_code: int | None = None,
        recipient: str | None = None,
        stage: Stage | None = None,
        rejected: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.permanent = is_permanent(reason, reply_code) if permanent is None else permanent
        self.server_reply = server_reply
        self.reply_code = reply_code
        self.recipient = recipient
        self.stage = stage
        self.rejected: Mapping[str, tuple[int, str]] = dict(rejected or {})

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason.value!r}, message={self.message!r}, "
            f"permanent={self.permanent!r})"
        )


class SMTPDeliveryError(SMTPFailure):
    """A whole-message delivery failure, raised by delivery sessions."""

    @classmethod
    def from_failure(cls, failure: SMTPFailure) -> SMTPDeliveryError:
        if isinstance(failure, SMTPDeliveryError):
            return failure
        return cls(
            failure.reason,
            failure.message,
            failure.permanent,
            server_reply=failure.server_reply,
            reply_code=failure.reply_code,
            recipient=failure.recipient,
            stage=failure.stage,
            rejected=failure.rejected,
        )


def is_permanent(reason: Reason, reply_code: int | None = None) -> bool:
    """5xx is permanent, 4xx transient; without a reply, the reason decides."""
    if reply_code is not None and 400 <= reply_code < 500:
        return False
    if reply_code is not None and 500 <= reply_code < 600:
        return True
    return reason not in TRANSIENT


# --- exceptions -> reasons ---------------------------------------------------------


def failure_from_exception(  # noqa: C901, PLR0911 - one return per class of failure
    exc: BaseException, *, stage: Stage, endpoint: Endpoint, redact: Redactor
) -> SMTPFailure | None:
    """The failure an exception at `stage` means, or None if it is not a network one."""
    where = endpoint.address
    if isinstance(exc, socket.gaierror):
        detail = exc.strerror or "lookup failed"
        return SMTPFailure(
            Reason.DNS_LOOKUP_FAILED,
            f"Could not resolve the SMTP host {endpoint.host!r}: {detail}",
            stage=stage,
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _certificate_failure(exc, endpoint, stage)
    if isinstance(exc, ssl.SSLError):
        return _handshake_failure(endpoint, stage, exc.reason or type(exc).__name__)
    if isinstance(exc, TimeoutError):
        return SMTPFailure(
            Reason.CONNECTION_TIMEOUT, _timeout_message(endpoint, stage), stage=stage
        )
    if isinstance(exc, ConnectionRefusedError):
        return SMTPFailure(
            Reason.CONNECTION_REFUSED, f"Connection to {where} was refused", stage=stage
        )
    if isinstance(exc, (ConnectionError, EOFError)):
        if stage is Stage.TLS_HANDSHAKE:
            return _handshake_failure(
                endpoint, stage, "the server closed the connection", closed=True
            )
        return SMTPFailure(
            Reason.CONNECTION_LOST,
            f"The connection to {where} was lost during {stage}",
            stage=stage,
        )
    if isinstance(exc, ProtocolViolationError):
        snippet = redact.server_text(exc.snippet)
        return SMTPFailure(
            Reason.PROTOCOL_ERROR,
            f"{where} does not speak SMTP as expected during {stage}: {exc.problem}"
            + (f" (received {snippet!r})" if snippet else ""),
            stage=stage,
        )
    if isinstance(exc, OSError):
        # errno-less: asyncio's merged "Multiple exceptions" for a host with several
        # addresses (every one failed); its text is a list of raw errors, not shown.
        detail = exc.strerror or (
            "no address of the host accepted the connection"
            if exc.errno is None
            else type(exc).__name__
        )
        if exc.errno in _UNREACHABLE:
            return SMTPFailure(
                Reason.CONNECTION_TIMEOUT, f"{where} is unreachable: {detail}", stage=stage
            )
        if stage is Stage.CONNECT:
            return SMTPFailure(
                Reason.CONNECTION_REFUSED, f"Could not connect to {where}: {detail}", stage=stage
            )
        return SMTPFailure(
            Reason.CONNECTION_LOST,
            f"The connection to {where} failed during {stage}: {detail}",
            stage=stage,
        )
    return None


def _timeout_message(endpoint: Endpoint, stage: Stage) -> str:
    seconds = f"{endpoint.timeout_seconds:g}s"
    where = endpoint.address
    if stage is Stage.CONNECT:
        return f"Connecting to {where} timed out after {seconds}"
    if stage is Stage.GREETING:
        hint = (
            " (if this port expects implicit TLS, use encryption TLS)"
            if endpoint.encryption is not Encryption.TLS
            else ""
        )
        return f"{where} accepted the connection but sent no SMTP greeting within {seconds}{hint}"
    if stage is Stage.TLS_HANDSHAKE:
        return f"The TLS handshake with {where} did not complete within {seconds}"
    return f"{where} did not answer {stage} within {seconds}"


def _handshake_failure(
    endpoint: Endpoint, stage: Stage, detail: str, *, closed: bool = False
) -> SMTPFailure:
    implicit = endpoint.encryption is Encryption.TLS
    version_hint = f"the server may not support {endpoint.tls.min_version} or later"
    if any(alert in detail.upper() for alert in _VERSION_ALERTS):
        hint = f"; {version_hint}"
    elif closed:
        hint = f"; {version_hint}" + (
            ", or not speak implicit TLS on this port" if implicit else ""
        )
    elif implicit:
        hint = "; implicit TLS (usually port 465) may not be what this port speaks"
    else:
        hint = ""
    return SMTPFailure(
        Reason.TLS_HANDSHAKE_FAILED,
        f"The TLS handshake with {endpoint.address} failed ({detail}){hint}",
        stage=stage,
    )


def _certificate_failure(
    exc: ssl.SSLCertVerificationError, endpoint: Endpoint, stage: Stage
) -> SMTPFailure:
    where = endpoint.address
    detail = exc.verify_message or "verification failed"
    code = exc.verify_code
    if code in {_CERT_HAS_EXPIRED, _CERT_NOT_YET_VALID}:
        state = "has expired" if code == _CERT_HAS_EXPIRED else "is not valid yet"
        return SMTPFailure(
            Reason.CERTIFICATE_EXPIRED, f"The certificate of {where} {state}", stage=stage
        )
    if code in {_HOSTNAME_MISMATCH, _EMAIL_MISMATCH, _IP_ADDRESS_MISMATCH}:
        return SMTPFailure(
            Reason.CERTIFICATE_HOSTNAME_MISMATCH,
            f"The certificate of {where} is not valid for {endpoint.sni_name!r}",
            stage=stage,
        )
    source = "the configured CA bundle" if endpoint.tls.ca_bundle_pem else "the system CAs"
    return SMTPFailure(
        Reason.CERTIFICATE_UNTRUSTED,
        f"The certificate of {where} is not trusted by {source}: {detail}",
        stage=stage,
    )


# --- replies -> reasons ------------------------------------------------------------


def failure_from_reply(  # noqa: C901, PLR0911, PLR0912 - the SMTP reply table, one case a line
    reply: Reply,
    *,
    stage: Stage,
    endpoint: Endpoint,
    redact: Redactor,
    address: str | None = None,
    tls_active: bool = False,
) -> SMTPFailure:
    """The failure an unexpected reply at `stage` means (421 and 4xx are transient)."""
    where = endpoint.address
    said = redact.reply(reply)
    recipient = address if stage is Stage.RCPT else None

    def fail(reason: Reason, what: str) -> SMTPFailure:
        return SMTPFailure(
            reason,
            f"{what}: {said}",
            server_reply=said,
            reply_code=reply.code,
            recipient=recipient,
            stage=stage,
        )

    code = reply.code
    if code == 421:
        return fail(Reason.SERVER_UNAVAILABLE, f"The server at {where} is closing the connection")
    if stage is Stage.GREETING:
        if reply.transient or reply.permanent:
            return fail(Reason.SERVER_UNAVAILABLE, f"The server at {where} refused service")
        return fail(Reason.PROTOCOL_ERROR, f"Unexpected greeting from {where}")
    if code == 530 and stage in {Stage.AUTH, Stage.MAIL, Stage.RCPT, Stage.DATA}:
        if not tls_active and (stage is Stage.AUTH or "STARTTLS" in reply.text.upper()):
            return fail(Reason.AUTH_REQUIRES_TLS, f"The server at {where} requires TLS first")
        return fail(
            Reason.AUTHENTICATION_FAILED,
            f"The server at {where} requires authentication; set a username and password",
        )
    if reply.transient:
        target = f" for {address}" if address else ""
        return fail(
            Reason.SERVER_UNAVAILABLE,
            f"The server at {where} temporarily refused {stage}{target}",
        )
    if reply.permanent:
        if stage is Stage.STARTTLS:
            return fail(Reason.STARTTLS_NOT_OFFERED, f"The server at {where} refused STARTTLS")
        if stage is Stage.AUTH:
            if code == 538:
                return fail(
                    Reason.AUTH_REQUIRES_TLS,
                    f"The server at {where} requires encryption for this AUTH mechanism",
                )
            if code in {504, 534}:
                return fail(
                    Reason.AUTH_NOT_SUPPORTED,
                    f"The server at {where} refused the AUTH mechanism",
                )
            return fail(
                Reason.AUTHENTICATION_FAILED,
                f"The server at {where} rejected the username or password",
            )
        if stage is Stage.MAIL:
            return fail(Reason.SENDER_REJECTED, f"The server at {where} rejected sender {address}")
        if stage is Stage.RCPT:
            return fail(
                Reason.RECIPIENT_REJECTED, f"The server at {where} rejected recipient {address}"
            )
        if stage is Stage.DATA:
            return fail(Reason.MESSAGE_REJECTED, f"The server at {where} rejected the message")
    return fail(Reason.PROTOCOL_ERROR, f"Unexpected reply from {where} to {stage}")
