"""Envelope addresses and message bytes as they go on the wire."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from emailsettings.api.conditions import Reason
from emailsettings.smtp.errors import SMTPFailure

_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_FORBIDDEN = re.compile(r"[\s<>\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidAddressError(ValueError):
    pass


def addr_spec(value: str) -> str:
    """The bare address of 'a@example.com' or 'Name <a@example.com>'."""
    text = value.strip()
    if _CONTROL.search(text):
        raise InvalidAddressError(f"{value!r} contains control characters")
    if text.endswith(">") and "<" in text:
        text = text[text.rindex("<") + 1 : -1].strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or _FORBIDDEN.search(text):
        raise InvalidAddressError(f"{value!r} is not an email address")
    return text


def needs_smtputf8(addresses: Iterable[str], message: bytes | None = None) -> bool:
    """Non-ASCII addresses, or non-ASCII header bytes (RFC 6532), need SMTPUTF8."""
    if any(not address.isascii() for address in addresses):
        return True
    if message is None:
        return False
    normalized = _LINE_ENDINGS.sub(b"\r\n", message)
    headers = normalized.split(b"\r\n\r\n", 1)[0]
    return not headers.isascii()


def has_8bit(message: bytes) -> bool:
    return not message.isascii()


def data_payload(message: bytes) -> bytes:
    """CRLF line endings, dot-stuffed, terminated by <CRLF>.<CRLF> (RFC 5321 4.5.2)."""
    normalized = _LINE_ENDINGS.sub(b"\r\n", message)
    if not normalized.endswith(b"\r\n"):
        normalized += b"\r\n"
    return _LEADING_DOT.sub(b"..", normalized) + b".\r\n"


def build_envelope(
    sender: str, recipients: Sequence[str], *, delivery: bool
) -> tuple[str, list[str]]:
    """Bare, de-duplicated envelope addresses; SMTPFailure(INVALID_*) for bad ones.

    For delivery an empty sender ('' or '<>', the null reverse-path) is allowed
    and at least one recipient is required.
    """
    try:
        null_sender = delivery and sender.strip() in {"", "<>"}
        envelope_sender = "" if null_sender else addr_spec(sender)
    except InvalidAddressError:
        raise SMTPFailure(
            Reason.INVALID_SENDER, f"The sender {sender!r} is not an email address"
        ) from None
    envelope_recipients: list[str] = []
    for recipient in recipients:
        try:
            address = addr_spec(recipient)
        except InvalidAddressError:
            raise SMTPFailure(
                Reason.INVALID_RECIPIENT,
                f"The recipient {recipient!r} is not an email address",
                recipient=recipient,
            ) from None
        if address not in envelope_recipients:
            envelope_recipients.append(address)
    if delivery and not envelope_recipients:
        raise SMTPFailure(Reason.INVALID_RECIPIENT, "The message has no recipients")
    return envelope_sender, envelope_recipients
