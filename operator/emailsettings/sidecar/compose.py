"""Build the MIME message: plain text plus an HTML alternative, safe headers.

Header injection is stopped in three layers:

1. Text that becomes a header (subject, sender display name) is flattened to one
   line: every control character (CR, LF, NUL, TAB, NEL, U+2028/2029...) becomes
   a space.
2. RFC 2047 encoded-word openers ("=?") in that text are broken with an
   invisible WORD JOINER. Python's email package decodes encoded words found in
   header values it is given, and older versions write the decoded bytes back
   raw, so "=?utf-8?b?<base64 of CRLF Bcc:...>?=" would otherwise become a new
   header (CVE-2024-6923). With the opener broken, the text is carried
   literally (encoded as UTF-8 by the library) and reads as typed.
3. After serializing, the message is parsed back and must have exactly the
   headers we set, each once, with the values we meant; otherwise nothing is sent.

Addresses come from the EmailSettings (validated by the API models) and are
checked again here to be bare ASCII addresses without control characters.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from typing import Any

from emailsettings.sidecar.templates import Rendered


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, building each header class and common header once.

    HeaderRegistry creates a new class with type() for every header it makes or
    reads back, then parses the value; that was two thirds of the time to compose a
    message. The classes are stateless, so one per header name gives the same
    headers and the same bytes. Header objects are immutable values, so the ones
    that recur in every message (MIME-Version, Auto-Submitted, the sender, the
    category, the parts' Content-Type...) are parsed once and shared; a small LRU
    keeps them while one-off values (Subject, Date, Message-ID) pass through.
    """

    _LIMIT = 256  # header names are ours (a fixed set); never grow without bound
    _SHARED = 32  # recent (name, text) headers kept: about 200 KB; enough for every hit
    _SHARED_TEXT = 200  # longer values are not kept

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}
        self._shared = functools.lru_cache(maxsize=self._SHARED)(super().__call__)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = super().__getitem__(name)
            if len(self._classes) < self._LIMIT:
                self._classes[key] = cls
        return cls

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if type(value) is str and len(value) <= self._SHARED_TEXT:
            return self._shared(name, value)
        return super().__call__(name, value)


_HEADERS = _HeaderClasses()
# CRLF line ends, 78-column folding, RFC 2047 for non-ASCII
SMTP_POLICY = policy.SMTP.clone(header_factory=_HEADERS)
_READ_POLICY = policy.default.clone(header_factory=_HEADERS)

SUBJECT_MAX = 250

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
_ENCODED_WORD_OPENER = "=?"
_WORD_JOINER = "\u2060"
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

BASE_HEADERS = (
    "Subject",
    "From",
    "To",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "X-EmailSettings-Category",
    "X-EmailSettings-Event",
    "MIME-Version",
    "Content-Type",
)


class ComposeError(ValueError):
    """The message cannot be built safely; the notification must not be sent as is."""


def header_text(value: str, limit: int = SUBJECT_MAX) -> str:
    """Display text fit for one header line: no controls, no encoded-word openers."""
    text = _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "\u2026"
    return text.replace(_ENCODED_WORD_OPENER, "=" + _WORD_JOINER + "?")


def body_text(value: str) -> str:
    """Body text with normalized line ends and no NULs (bodies may span lines)."""
    text = value.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return _CONTROL.sub(lambda m: m.group() if m.group() in "\n\t" else " ", text)


def _address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ComposeError(f"not a plain ASCII mail address: {value!r}")
    return value


def message_id(seed: str, domain: str) -> str:
    """A Message-ID that is the same for every attempt of one notification.

    The seed is the idempotency key when the caller gave one, else the
    notification id, so a duplicate the protocol forces (a lost 250 after DATA)
    carries the same Message-ID and is recognizable.
    """
    digest = hashlib.sha256(seed.encode()).hexdigest()[:40]
    domain = domain.lower() if re.fullmatch(r"[A-Za-z0-9.-]{1,253}", domain) else "localhost"
    return f"<{digest}@{domain}>"


@dataclass(frozen=True)
class Envelope:
    sender_address: str
    sender_name: str | None
    recipients: Sequence[str]
    message_id: str
    category: str
    event: str
    occurrences: int = 1
    date: dt.datetime | None = None
    # Everyone the message is addressed to (To header); the envelope may be fewer
    # on a retry. Empty: the recipients.
    to: Sequence[str] = ()


def compose(envelope: Envelope, rendered: Rendered) -> bytes:
    if not envelope.recipients:
        raise ComposeError("no recipients")
    if not _TOKEN.fullmatch(envelope.category) or not _TOKEN.fullmatch(envelope.event):
        raise ComposeError("category and event must be plain tokens")
    if not re.fullmatch(r"<[0-9a-f]{40}@[a-z0-9.-]+>", envelope.message_id):
        raise ComposeError("unexpected Message-ID shape")
    subject = header_text(rendered.subject) or "(no subject)"
    name = header_text(envelope.sender_name or "", limit=200)
    sender = Address(display_name=name, addr_spec=_address(envelope.sender_address))
    recipients = [Address(addr_spec=_address(r)) for r in (envelope.to or envelope.recipients)]
    date = envelope.date or dt.datetime.now(dt.UTC)

    message = EmailMessage(policy=SMTP_POLICY)
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = recipients
    message["Date"] = format_datetime(date)
    message["Message-ID"] = envelope.message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message["X-Auto-Response-Suppress"] = "All"
    message["X-EmailSettings-Category"] = envelope.category
    message["X-EmailSettings-Event"] = envelope.event
    expected = list(BASE_HEADERS)
    if envelope.occurrences > 1:
        message["X-EmailSettings-Occurrences"] = str(envelope.occurrences)
        expected.append("X-EmailSettings-Occurrences")
    message.set_content(body_text(rendered.text), subtype="plain", cte="quoted-printable")
    message.add_alternative(body_text(rendered.html), subtype="html", cte="quoted-printable")
    for part in message.iter_parts():
        del part["MIME-Version"]  # belongs to the top level only
    # A boundary derived from the Message-ID: a retry is the same bytes. "=_" cannot
    # occur in quoted-printable text, so it cannot collide with the content.
    message.set_boundary("=_es_" + hashlib.sha256(envelope.message_id.encode()).hexdigest()[:32])
    data = message.as_bytes()
    _verify(data, expected, subject, name)
    return data


def _squeeze(text: str) -> str:
    return "".join(text.split())


def _verify(data: bytes, expected: list[str], subject: str, name: str) -> None:
    parsed = BytesHeaderParser(policy=_READ_POLICY).parsebytes(data)  # top-level headers
    names = [key.lower() for key in parsed]
    if sorted(names) != sorted(h.lower() for h in expected):
        raise ComposeError(f"unexpected header set after serialization: {names}")
    # Python's folder may drop a space between encoded words; content is what counts.
    if _squeeze(str(parsed["Subject"])) != _squeeze(subject):
        raise ComposeError("the Subject header did not survive serialization intact")
    addresses: tuple[Address, ...] = getattr(parsed["From"], "addresses", ())
    # Python's parser may put a space between folded encoded words of a phrase.
    if len(addresses) != 1 or _squeeze(addresses[0].display_name) != _squeeze(name):
        raise ComposeError("the From header did not survive serialization intact")
    if b"\x00" in data or b"\r\n" not in data or re.search(rb"(?<!\r)\n|\r(?!\n)", data):
        raise ComposeError("the serialized message has bare CR, LF or NUL")
