"""Messages relayed through the SMTP intake: pure functions on their bytes.

The sidecar keeps a relayed message as the application sent it, with only these
changes, all at the header level and all deterministic, so a retry is the same bytes:

- at intake: line endings normalized to CRLF (a bare LF or lone CR becomes CRLF,
  as Postfix's `smtpd_forbid_bare_newline = normalize` does; nothing in the stored
  text can end the DATA of the next hop, because the SMTP client dot-stuffs every
  line that starts with a dot), a `Received:` trace field on top, and a `Date:`
  when the message has none;
- at delivery: the `From:` field replaced by the EmailSettings' sender (unless the
  sidecar is told to keep it; `Sender:` goes with it), a `Message-ID:` when the
  message has none (derived from the spool id, so every attempt carries the same),
  and for a storm `[Nx]` in the Subject plus `X-EmailSettings-Occurrences: N`.

Header fields are found by a small line parser that never rewrites a field it does
not touch, so signatures and encodings of the rest of the message survive.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from emailsettings.sidecar.compose import SMTP_POLICY, ComposeError, header_text

CRLF = b"\r\n"
_LINE_ENDING = re.compile(rb"\r\n|\r|\n")
_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_TOKEN_NAME = re.compile(r"[!-9;-~]+")
_MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,250}@[!-;=?-~]{1,250}>")
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")
_HELO = re.compile(r"[A-Za-z0-9.:_\[\]-]{1,255}")
OCCURRENCES_HEADER = "X-EmailSettings-Occurrences"


def has_bare_line_ending(data: bytes) -> bool:
    """A LF without CR before it, or a CR without LF after it."""
    return _BARE.search(data) is not None


def normalize_line_endings(data: bytes) -> bytes:
    """Every line ending as CRLF, the last line included."""
    normalized = _LINE_ENDING.sub(CRLF, data)
    if normalized and not normalized.endswith(CRLF):
        normalized += CRLF
    return normalized


@dataclass
class RawMessage:
    """A message split into its header fields (each with its folded lines) and the rest.

    `rest` starts at the empty line that ends the header section (or at the first
    line that is not a header field, for a message without one), so that
    b"".join(fields) + rest is the message again, byte for byte.
    """

    fields: list[bytes] = field(default_factory=list)
    rest: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> RawMessage:
        """Split a CRLF-normalized message."""
        fields: list[bytes] = []
        position = 0
        while position < len(data):
            end = data.find(CRLF, position)
            end = len(data) if end < 0 else end + 2
            line = data[position:end]
            if line[:1] in {b" ", b"\t"} and fields and line.strip():
                fields[-1] += line  # a folded continuation line
            elif _FIELD_NAME.match(line):
                fields.append(line)
            else:
                break  # the empty line, or a body without a separator
            position = end
        return cls(fields, data[position:])

    def to_bytes(self) -> bytes:
        return b"".join(self.fields) + self.rest

    @staticmethod
    def name_of(raw_field: bytes) -> str:
        match = _FIELD_NAME.match(raw_field)
        assert match is not None
        return match.group(1).decode("ascii").lower()

    @staticmethod
    def value_of(raw_field: bytes) -> str:
        """The unfolded value, decoded leniently (RFC 6532 allows UTF-8)."""
        value = raw_field.split(b":", 1)[1]
        unfolded = _LINE_ENDING.sub(b"", value)
        return unfolded.decode("utf-8", errors="replace").strip()

    def values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [self.value_of(f) for f in self.fields if self.name_of(f) == wanted]

    def get(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None

    def remove(self, *names: str) -> None:
        unwanted = {n.lower() for n in names}
        self.fields = [f for f in self.fields if self.name_of(f) not in unwanted]

    def replace_first(self, name: str, new_field: bytes) -> None:
        """Put new_field where the first `name` field was (else at the end); drop the others."""
        wanted = name.lower()
        result: list[bytes] = []
        placed = False
        for raw_field in self.fields:
            if self.name_of(raw_field) == wanted:
                if not placed:
                    result.append(new_field)
                    placed = True
                continue
            result.append(raw_field)
        if not placed:
            result.append(new_field)
        self.fields = result

    def prepend(self, new_field: bytes) -> None:
        self.fields.insert(0, new_field)

    def append(self, new_field: bytes) -> None:
        self.fields.append(new_field)


def header_field(name: str, value: str) -> bytes:
    """One short header field of our own (ASCII, one line)."""
    if not _TOKEN_NAME.fullmatch(name) or not value.isascii() or re.search(r"[\r\n\x00]", value):
        raise ComposeError(f"unsafe header field {name!r}")
    return f"{name}: {value}".encode("ascii") + CRLF


@functools.lru_cache(maxsize=16)
def from_field(display_name: str | None, address: str) -> bytes:
    """The From field of the EmailSettings' sender, folded and RFC 2047-encoded as needed.

    The same few senders for every message: built once each (building it with the
    email package was a third of the CPU of delivering a relayed message).
    """
    if not _ADDRESS.fullmatch(address):
        raise ComposeError(f"not a plain ASCII mail address: {address!r}")
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = Address(
        display_name=header_text(display_name or "", limit=200), addr_spec=address
    )
    data = message.as_bytes()
    head = data.split(CRLF + CRLF, 1)[0] + CRLF
    parsed = RawMessage.parse(head)
    if len(parsed.fields) != 1 or parsed.rest or parsed.name_of(parsed.fields[0]) != "from":
        raise ComposeError("the From field did not serialize as one field")
    return head


def received_field(
    *, helo: str | None, peer: str, by: str, protocol: str, when: dt.datetime
) -> bytes:
    """The trace field a relay adds on top (RFC 5321 4.4)."""
    helo_name = helo if helo and _HELO.fullmatch(helo) else "unknown"
    peer_ip = peer if _HELO.fullmatch(peer) else "unknown"
    by_name = by if _HELO.fullmatch(by) else "localhost"
    text = (
        f"Received: from {helo_name} ([{peer_ip}])\r\n"
        f"\tby {by_name} (emailsettings-sidecar) with {protocol};\r\n"
        f"\t{format_datetime(when)}\r\n"
    )
    return text.encode("ascii")


def message_id_of(message: RawMessage) -> str | None:
    """The message's own Message-ID when it has exactly one of a sane shape."""
    found = message.values("Message-ID")
    if len(found) != 1 or not _MESSAGE_ID.fullmatch(found[0]):
        return None
    return found[0]


def accept(
    data: bytes,
    *,
    helo: str | None,
    peer: str,
    by: str,
    protocol: str,
    now: dt.datetime,
) -> RawMessage:
    """The message as it is stored: CRLF line endings, a Received field, a Date."""
    message = RawMessage.parse(normalize_line_endings(data))
    message.prepend(received_field(helo=helo, peer=peer, by=by, protocol=protocol, when=now))
    if not message.values("Date"):
        message.append(header_field("Date", format_datetime(now)))
    return message


def categories_in_header(message: RawMessage, header: str, known: Sequence[str]) -> list[str]:
    """Categories the header names (comma-separated, case-insensitive); ValueError if unknown."""
    found: list[str] = []
    for value in message.values(header) if header else []:
        for token in value.split(","):
            category = token.strip().lower()
            if category not in known:
                shown = token.strip()[:40].encode("ascii", "replace").decode()
                raise ValueError(f"{header}: {shown!r} is not a category; use {', '.join(known)}")
            if category not in found:
                found.append(category)
    return found


def storm_identity(message: RawMessage, categories: Iterable[str], relay_to: Iterable[str]) -> str:
    """What makes two relayed messages "the same": targets, From, Subject and body."""
    digest = hashlib.sha256()
    head = [
        sorted(categories),
        sorted(relay_to),
        message.get("From") or "",
        message.get("Subject") or "",
    ]
    digest.update(json.dumps(head, ensure_ascii=False).encode())
    digest.update(message.rest)
    return digest.hexdigest()


def for_delivery(
    stored: bytes,
    *,
    sender: tuple[str | None, str] | None,
    message_id: str,
    occurrences: int = 1,
) -> bytes:
    """The bytes handed to the server: From rewritten (unless sender is None), a
    Message-ID when missing, the storm count when there was a storm."""
    message = RawMessage.parse(stored)
    if sender is not None:
        message.remove("Sender")
        message.replace_first("From", from_field(*sender))
    if not message.values("Message-ID"):
        message.append(header_field("Message-ID", message_id))
    if occurrences > 1:
        prefix = f"[{occurrences}x]".encode()
        subjects = [f for f in message.fields if message.name_of(f) == "subject"]
        if subjects:
            first = subjects[0]
            name, value = first.split(b":", 1)
            spaced = value if value[:1] in {b" ", b"\t"} else b" " + value
            message.replace_first("Subject", name + b": " + prefix + spaced)
        else:
            message.append(b"Subject: " + prefix + CRLF)
        message.remove(OCCURRENCES_HEADER)
        message.append(header_field(OCCURRENCES_HEADER, str(occurrences)))
    data = message.to_bytes()
    if has_bare_line_ending(data) or b"\x00" in data:
        raise ComposeError("the relayed message has bare CR, LF or NUL")
    return data
