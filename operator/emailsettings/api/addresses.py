"""Mail addresses: parsing, the checks the API server can make, and header encoding.

Addresses are judged by email-validator (RFC 5321/5322), never by a home-made
regex. The few patterns below are *necessary* conditions that the CRD also
states as CEL rules, so the API server can reject the obvious mistakes on
`kubectl apply`; an address passes here only if it passes them *and*
email-validator.

Internationalized addresses, deliberately:

- an internationalized domain (``ops@bücher.example``) is accepted; the
  envelope form uses its IDNA A-label (``ops@xn--bcher-kva.example``), so any
  SMTP server can deliver it;
- a non-ASCII local part (``jörg@example.com``) is rejected with a clear
  message: it needs the SMTPUTF8 extension end to end, which this product does
  not use;
- a non-ASCII display name on the sender is accepted when quoted and is
  RFC 2047-encoded in the From header.
"""

from __future__ import annotations

import email.utils
import functools
import re
from dataclasses import dataclass

import email_validator
from email_validator import EmailNotValidError, ValidatedEmail, validate_email

# Characters that must never reach an SMTP command or a header: C0 controls
# (CR, LF, NUL, TAB...), DEL, C1 controls (NEL among them) and the Unicode
# line and paragraph separators. The CEL twin uses RE2 syntax.
CONTROL_CHARS_PATTERN = "[\x00-\x1f\x7f-\x9f\u2028\u2029]"
CONTROL_CHARS_RE2 = r"[\x00-\x1f\x7f-\x9f\x{2028}\x{2029}]"
_CONTROL_CHARS = re.compile(CONTROL_CHARS_PATTERN)

# One bare address: no spaces, angle brackets, quotes, list separators or
# other RFC 5322 specials outside the single @. Every address email-validator
# accepts (with quoted local parts and domain literals disallowed) has this shape.
BARE_ADDRESS_RE2 = r'^[^@ <>"(),;:\\\[\]]+@[^@ <>"(),;:\\\[\]]+$'
_BARE_ADDRESS = re.compile(r'[^@ <>"(),;:\\\[\]]+@[^@ <>"(),;:\\\[\]]+')

# A non-ASCII character before the first @ (needs SMTPUTF8, which is not used).
NON_ASCII_LOCAL_RE2 = r"^[^@]*[^\x00-\x7f][^@]*@"
_NON_ASCII_LOCAL = re.compile(r"[^@]*[^\x00-\x7f][^@]*@")

LOCAL_PART_MAX_LENGTH = 64  # RFC 5321 4.5.3.1.1
ADDRESS_MAX_LENGTH = 254  # RFC 5321 4.5.3.1.3 (path minus the angle brackets)
MAILBOX_MAX_LENGTH = 320  # sender: display name plus address

_SPECIAL_USE_HINT = (
    " Special-use domains (localhost, .test, .invalid, .arpa, .onion) cannot be used."
)

# On-premises directories often use a `.local` domain (Active Directory) and route it
# through an internal relay, so `.local` is allowed. email-validator documents its
# module-level list as the way to change which special-use names are refused.
if "local" in email_validator.SPECIAL_USE_DOMAIN_NAMES:
    email_validator.SPECIAL_USE_DOMAIN_NAMES.remove("local")
_SMTPUTF8_HINT = (
    " Internationalized characters before the @ need SMTPUTF8, which is not supported;"
    " use an ASCII address (an internationalized domain after the @ is fine)."
)
_DISPLAY_NAME_HINT = ' Put the name in double quotes, like "Jörg Müller, Ops" <ops@example.com>.'


class AddressError(ValueError):
    """An address that cannot be used; the message says why in a person's terms."""


def has_control_chars(text: str) -> bool:
    return _CONTROL_CHARS.search(text) is not None


def is_bare_address_shape(text: str) -> bool:
    """The CEL twin of the recipients' shape rule: one address, no display name."""
    return _BARE_ADDRESS.fullmatch(text) is not None


def has_non_ascii_local_part(text: str) -> bool:
    """The CEL twin: a non-ASCII character before the first @."""
    return _NON_ASCII_LOCAL.match(text) is not None


def local_part_within_limit(text: str) -> bool:
    """The CEL twin of ``self.indexOf('@') <= 64``."""
    return text.find("@") <= LOCAL_PART_MAX_LENGTH


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A validated address, with the optional display name of a sender.

    ``addr_spec`` is email-validator's normalized form (domain lower-cased,
    Unicode NFC, internationalized domain in U-labels); ``envelope`` is the
    ASCII form for MAIL FROM / RCPT TO and for headers.
    """

    addr_spec: str
    envelope: str
    display_name: str | None = None

    def header_value(self) -> str:
        """The mailbox as an RFC 5322 header value, RFC 2047-encoded where needed."""
        if not self.display_name:
            return self.envelope
        return email.utils.formataddr((self.display_name, self.envelope), charset="utf-8")


def _validate(text: str, *, allow_display_name: bool) -> ValidatedEmail:
    if has_control_chars(text):
        raise AddressError("must not contain control characters such as CR or LF.")
    try:
        return validate_email(
            text,
            allow_display_name=allow_display_name,
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_empty_local=False,
            check_deliverability=False,
            globally_deliverable=False,
        )
    except EmailNotValidError as exc:
        raise AddressError(_explain(str(exc))) from None
    except (UnicodeError, ValueError) as exc:  # a safety net: never crash on odd input
        raise AddressError(f"is not a valid address: {exc}") from None


def _explain(message: str) -> str:
    if "special-use or reserved" in message:
        return message + _SPECIAL_USE_HINT
    if "Internationalized characters before the @-sign" in message:
        return message + _SMTPUTF8_HINT
    if "display name contains invalid characters when not quoted" in message:
        return message + _DISPLAY_NAME_HINT
    return message


@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> Mailbox:
    """A bare address (a recipient): ``admin@example.com``, no display name."""
    if "<" in text or ">" in text:
        raise AddressError(
            "must be a bare address like admin@example.com; display names are allowed "
            "only in spec.sender."
        )
    if len(text) > ADDRESS_MAX_LENGTH:
        raise AddressError(f"must be at most {ADDRESS_MAX_LENGTH} characters long.")
    if not local_part_within_limit(text):
        raise AddressError(
            f"the part before the @ must be at most {LOCAL_PART_MAX_LENGTH} characters long."
        )
    result = _validate(text, allow_display_name=False)
    return _mailbox(result, display_name=None)


@functools.lru_cache(maxsize=1024)
def parse_mailbox(text: str) -> Mailbox:
    """A sender: ``Name <sender@example.com>``, ``"Name, Team" <s@x>`` or ``s@x``."""
    if len(text) > MAILBOX_MAX_LENGTH:
        raise AddressError(f"must be at most {MAILBOX_MAX_LENGTH} characters long.")
    result = _validate(text, allow_display_name=True)
    # The length rule email-validator leaves to strict mode.
    if len(result.local_part) > LOCAL_PART_MAX_LENGTH:
        raise AddressError(
            f"the part before the @ must be at most {LOCAL_PART_MAX_LENGTH} characters long."
        )
    return _mailbox(result, display_name=result.display_name or None)


def _mailbox(result: ValidatedEmail, display_name: str | None) -> Mailbox:
    # allow_smtputf8=False guarantees an ASCII form exists.
    envelope = result.ascii_email or result.normalized
    if not envelope.isascii():  # pragma: no cover - guarded by allow_smtputf8=False
        raise AddressError("has no ASCII form." + _SMTPUTF8_HINT)
    if display_name is not None and has_control_chars(display_name):  # pragma: no cover
        raise AddressError("the display name must not contain control characters.")
    return Mailbox(addr_spec=result.normalized, envelope=envelope, display_name=display_name)


_SEPARATORS = re.compile(r"[;,\n]")


def split_recipients(text: str) -> list[str]:
    """The seed page's form, ``"a@example.com; b@example.com"``, as a list.

    Semicolons (the seed's separator), commas and newlines separate entries;
    surrounding whitespace and empty entries are dropped. The entries are not
    validated here: the models judge them, so every path gives the same answer.
    """
    return [part.strip() for part in _SEPARATORS.split(text) if part.strip()]
