"""Property-based tests: arbitrary specs never crash the models.

The only outcome besides success is a validation error naming a field path;
never an exception, and never a control character accepted into a field that
reaches an SMTP command or a header.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from email_validator import EmailNotValidError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from emailsettings.api import addresses
from emailsettings.api.addresses import AddressError, split_recipients
from emailsettings.api.conditions import Reason
from emailsettings.api.models import (
    Category,
    EmailSettingsSpec,
    EmailSettingsStatus,
    parse_duration,
)
from emailsettings.api.validation import validate_spec

# Deterministic: the same examples on every run and machine.
PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEWER = settings(PROPERTY, max_examples=100)

CONTROL = "\x00\t\n\r\x0b\x0c\x1b\x7f\x85\u2028\u2029"
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
PATH = re.compile(r"spec(\.[A-Za-z][A-Za-z0-9]*|\[\d+\])*")
REASONS = {Reason.INVALID_SPEC, Reason.INVALID_SENDER, Reason.INVALID_RECIPIENT}

ADDRESS_CHARS = st.sampled_from(
    [*"abcxyzABZ0189.-_+'!#$%&*/=?^`{|}~@ <>\"(),;:[]\\", "ü", "ß", "中", "é", "\u0301"]
) | st.sampled_from(list(CONTROL))
address_like = st.text(ADDRESS_CHARS, max_size=40)
plausible_address = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    st.text(st.sampled_from(list("abc.+-_'")), min_size=1, max_size=8),
    st.text(st.sampled_from(list("abcü-0")), min_size=1, max_size=8),
    st.sampled_from(["com", "example", "org", "local", "xn--p1ai", "c0m"]),
)
any_text = st.text(max_size=40) | address_like | plausible_address


def _hostile(valid: st.SearchStrategy[Any], weight: int = 6) -> st.SearchStrategy[Any]:
    """Mostly a valid value; sometimes a near miss with a control character, or anything."""
    injected = st.builds(
        lambda text, char, at: text[:at] + char + text[at:],
        st.text(max_size=20) | valid.map(str),
        st.sampled_from(list(CONTROL)),
        st.integers(0, 20),
    )
    junk = st.none() | st.booleans() | st.integers() | st.floats() | any_text | st.lists(any_text)
    return st.integers(0, weight + 1).flatmap(
        lambda pick: valid if pick < weight else (injected if pick == weight else junk)
    )


VALID_ADDRESS = st.sampled_from(
    ["admin@example.com", "ops@bücher.example", "a.b+c@x.org", "Admin@EXAMPLE.COM", "o'k@a-b.io"]
)


Wrap = Callable[..., st.SearchStrategy[Any]]


def _plain(valid: st.SearchStrategy[Any], weight: int = 0) -> st.SearchStrategy[Any]:
    del weight
    return valid


def spec_strategy(h: Wrap) -> st.SearchStrategy[dict[str, Any]]:
    """Spec-shaped dictionaries; ``h`` wraps each value (``_hostile`` or ``_plain``)."""
    tls = st.fixed_dictionaries(
        {},
        optional={
            "serverName": h(st.sampled_from(["", "mail.example.com", "10.1.2.3"])),
            "minVersion": h(st.sampled_from(["TLSv1.2", "TLSv1.3"])),
            "caBundleRef": h(
                st.fixed_dictionaries(
                    {"name": h(st.sampled_from(["ca", "corp.ca-1"]))},
                    optional={
                        "kind": h(st.sampled_from(["Secret", "ConfigMap"])),
                        "key": h(st.sampled_from(["ca.crt", "bundle.pem"])),
                    },
                )
            ),
        },
    )
    smtp = st.fixed_dictionaries(
        {"host": h(st.sampled_from(["smtp.example.com", "10.0.0.1", "2001:db8::1", "relay"]))},
        optional={
            "port": h(st.integers(1, 65535)),
            "encryption": h(st.sampled_from(["STARTTLS", "TLS", "None"])),
            "username": h(st.sampled_from(["sender@example.com", "user"])),
            "passwordSecretRef": h(
                st.fixed_dictionaries(
                    {"name": h(st.sampled_from(["smtp", "a.b-c"]))},
                    optional={"key": h(st.sampled_from(["password", "pw.txt"]))},
                )
            ),
            "allowPlaintextAuth": h(st.booleans()),
            "heloName": h(st.sampled_from(["", "client.example.com"])),
            "connectTimeoutSeconds": h(st.integers(1, 300)),
            "tls": h(tls),
        },
    )
    sender = st.sampled_from(
        ["Name <sender@example.com>", '"Müller, Ops" <ops@bücher.example>', "sender@example.com"]
    )
    recipient_list = h(st.lists(h(VALID_ADDRESS), max_size=4, unique_by=repr))
    verification = st.fixed_dictionaries(
        {},
        optional={
            "mode": h(st.sampled_from(["VerifyAndSave", "Save"])),
            "interval": h(st.sampled_from(["1m", "1h30m", "168h", "45m30s"])),
            "sendTestMessage": h(st.booleans()),
        },
    )
    return st.fixed_dictionaries(
        {
            "smtp": h(smtp, weight=12),
            "sender": h(sender | plausible_address, weight=12),
            "recipients": h(
                st.fixed_dictionaries({}, optional={c.value: recipient_list for c in Category}),
                weight=12,
            ),
        },
        optional={"enabled": h(st.booleans()), "verification": h(verification)},
    )


specs = spec_strategy(_hostile)
plausible_specs = spec_strategy(_plain)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=12) | st.sampled_from(["smtp", "host", "sender"]), children, max_size=4
        )
    ),
    max_leaves=10,
)


def _header_fields(model: EmailSettingsSpec) -> list[str]:
    """Everything in a valid spec that reaches an SMTP command or a header."""
    smtp = model.smtp
    mailbox = model.sender_mailbox
    values = [smtp.host, model.sender, mailbox.envelope, mailbox.addr_spec, mailbox.header_value()]
    values += [smtp.username or "", smtp.helo_name or "", smtp.tls_server_name]
    values += [mailbox.display_name or ""]
    for category in Category:
        values += model.recipients.raw(category)
        values += model.recipients.for_category(category)
    return values


def _check_outcome(spec: Any) -> None:
    errors = validate_spec(spec)
    try:
        model = EmailSettingsSpec.model_validate(spec)
    except ValidationError:
        assert errors, "the model rejected what validate_spec accepted"
        for error in errors:
            assert PATH.fullmatch(error.path), error
            assert error.reason in REASONS
            assert isinstance(error.message, str)
            assert error.message
        return
    assert errors == []
    for value in _header_fields(model):
        assert not _CONTROL_RE.search(value), value
    assert model.sender_address.isascii()
    for category in Category:
        assert all(a.isascii() for a in model.recipients.for_category(category))


@PROPERTY
@given(specs)
def test_hostile_specs(spec: dict[str, Any]) -> None:
    _check_outcome(spec)


@PROPERTY
@given(plausible_specs)
def test_plausible_specs(spec: dict[str, Any]) -> None:
    """Well-typed specs: many valid, the rest fail a cross-field or address rule."""
    _check_outcome(spec)


@FEWER
@given(json_values)
def test_arbitrary_json(spec: Any) -> None:
    errors = validate_spec(spec)
    for error in errors:
        assert error.path.startswith("spec")
        assert error.reason in REASONS
        assert error.message


VALID_SPEC: dict[str, Any] = {
    "smtp": {
        "host": "smtp.example.com",
        "username": "sender@example.com",
        "passwordSecretRef": {"name": "smtp"},
        "heloName": "client.example.com",
        "tls": {"serverName": "mail.example.com"},
    },
    "sender": "Notifications <sender@example.com>",
    "recipients": {"administrative": ["admin@example.com"], "error": ["errors@example.com"]},
}
HEADER_FIELDS = [
    ("smtp", "host"),
    ("smtp", "username"),
    ("smtp", "heloName"),
    ("smtp", "tls", "serverName"),
    ("sender",),
    ("recipients", "administrative", 0),
    ("recipients", "error", 0),
]


@PROPERTY
@given(st.sampled_from(HEADER_FIELDS), st.sampled_from(list(CONTROL)), st.integers(0, 40))
def test_control_characters_are_always_rejected(
    where: tuple[str | int, ...], char: str, at: int
) -> None:
    spec = copy.deepcopy(VALID_SPEC)
    parent: Any = spec
    for key in where[:-1]:
        parent = parent[key]
    value = parent[where[-1]]
    parent[where[-1]] = value[:at] + char + value[at:]
    errors = validate_spec(spec)
    expected = "spec" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in where)
    assert expected in [error.path for error in errors]


@PROPERTY
@given(address_like | plausible_address)
def test_the_crd_never_rejects_an_address_email_validator_accepts(text: str) -> None:
    """The CEL shape rules on recipients are necessary conditions of a valid address."""
    try:
        addresses._validate(text, allow_display_name=False)
    except AddressError:
        return
    assert not addresses.has_control_chars(text)
    assert addresses.is_bare_address_shape(text)
    assert not addresses.has_non_ascii_local_part(text)


@PROPERTY
@given(st.text(max_size=80) | address_like)
def test_address_parsing_never_crashes(text: str) -> None:
    for parse in (addresses.parse_address, addresses.parse_mailbox):
        try:
            mailbox = parse(text)
        except AddressError as exc:
            message = str(exc)
            assert message
            continue
        except EmailNotValidError as exc:  # pragma: no cover - would be a wrapping bug
            raise AssertionError from exc
        assert mailbox.envelope.isascii()
        assert "\r" not in mailbox.header_value()
        assert "\n" not in mailbox.header_value()


@FEWER
@given(st.lists(plausible_address, max_size=6))
def test_split_recipients_round_trip(items: list[str]) -> None:
    assert split_recipients("; ".join(items)) == items


@PROPERTY
@given(st.integers(0, 9999), st.integers(0, 999999), st.integers(0, 9999999), st.text(max_size=12))
def test_durations(hours: int, minutes: int, seconds: int, junk: str) -> None:
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n)
    expected = hours * 3600 + minutes * 60 + seconds
    assert parse_duration(text) == (expected if text else None)
    parse_duration(junk)  # never raises


@PROPERTY
@given(st.datetimes(timezones=st.just(UTC)))
def test_status_times_round_trip_in_whole_seconds(when: datetime) -> None:
    status = EmailSettingsStatus.model_validate({"smtp": {"verifiedAt": when}})
    wire = status.model_dump(mode="json", exclude_none=True)
    read = EmailSettingsStatus.model_validate(wire)
    assert read.smtp is not None
    assert read.smtp.verified_at == when.replace(microsecond=0)
