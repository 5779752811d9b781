"""The models' API as the operator and the sidecar use it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from emailsettings.api.addresses import (
    AddressError,
    parse_address,
    parse_mailbox,
    split_recipients,
)
from emailsettings.api.conditions import Reason
from emailsettings.api.models import (
    Category,
    Condition,
    EmailSettingsSpec,
    EmailSettingsStatus,
    Encryption,
    TLSVersion,
    VerificationMode,
)
from emailsettings.api.validation import SpecError, validate_spec


def spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "smtp": {
            "host": "smtp.example.com",
            "username": "sender@example.com",
            "passwordSecretRef": {"name": "smtp-credentials"},
        },
        "sender": "Notifications <sender@example.com>",
        "recipients": {
            "administrative": ["admin@example.com", "ops@example.com"],
            "error": ["errors@example.com"],
        },
    }
    base.update(changes)
    return base


def test_defaults() -> None:
    model = EmailSettingsSpec.model_validate(spec())
    assert model.enabled is True
    assert model.smtp.port == 587
    assert model.smtp.encryption is Encryption.STARTTLS
    assert model.smtp.password_secret_ref is not None
    assert model.smtp.password_secret_ref.key == "password"
    assert model.smtp.allow_plaintext_auth is False
    assert model.smtp.connect_timeout_seconds == 10
    assert model.smtp.tls is None
    assert model.smtp.effective_tls.min_version is TLSVersion.TLS_1_2
    assert model.smtp.tls_server_name == "smtp.example.com"
    assert model.smtp.endpoint == "smtp.example.com:587"
    assert model.verification.mode is VerificationMode.VERIFY_AND_SAVE
    assert model.verification.interval_seconds == 3600
    assert model.verification.send_test_message is False
    assert model.recipients.support == []


def test_enum_values_are_the_wire_strings() -> None:
    assert [e.value for e in Encryption] == ["None", "STARTTLS", "TLS"]
    assert [m.value for m in VerificationMode] == ["VerifyAndSave", "Save"]
    assert [c.value for c in Category] == ["administrative", "error", "support"]
    assert Encryption("None") is Encryption.NONE


def test_sender() -> None:
    model = EmailSettingsSpec.model_validate(spec())
    assert model.sender_address == "sender@example.com"
    assert model.sender_display_name == "Notifications"
    assert model.sender_mailbox.header_value() == "Notifications <sender@example.com>"
    bare = EmailSettingsSpec.model_validate(spec(sender="sender@example.com"))
    assert bare.sender_address == "sender@example.com"
    assert bare.sender_display_name is None


def test_recipients_for_category() -> None:
    model = EmailSettingsSpec.model_validate(spec())
    assert model.recipients.for_category(Category.ADMINISTRATIVE) == [
        "admin@example.com",
        "ops@example.com",
    ]
    assert model.recipients.for_category("error") == ["errors@example.com"]
    assert model.recipients.for_category(Category.SUPPORT) == []
    assert model.recipients.total == 3


def test_for_category_normalizes_and_deduplicates() -> None:
    model = EmailSettingsSpec.model_validate(
        spec(recipients={"error": ["ops@Bücher.Example", "ops@xn--bcher-kva.example", "A@X.ORG"]})
    )
    assert model.recipients.for_category(Category.ERROR) == [
        "ops@xn--bcher-kva.example",
        "A@x.org",
    ]
    assert model.recipients.raw(Category.ERROR)[0] == "ops@Bücher.Example"


@pytest.mark.parametrize(
    ("interval", "seconds"),
    [("1m", 60), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("90s", 90), ("168h", 604800)],
)
def test_interval_seconds(interval: str, seconds: int) -> None:
    model = EmailSettingsSpec.model_validate(spec(verification={"interval": interval}))
    assert model.verification.interval_seconds == seconds


def test_spec_is_immutable() -> None:
    model = EmailSettingsSpec.model_validate(spec())
    with pytest.raises(ValidationError):
        model.smtp.port = 25


def test_wire_names_only() -> None:
    """snake_case keys are unknown fields, as they are to the API server."""
    errors = validate_spec(spec(smtp={"host": "smtp.example.com", "connect_timeout_seconds": 5}))
    assert errors == [
        SpecError("spec.smtp.connect_timeout_seconds", Reason.INVALID_SPEC, "unknown field")
    ]


def test_no_type_coercion() -> None:
    for bad in ("587", True, 587.5, [587]):
        errors = validate_spec(spec(smtp={"host": "smtp.example.com", "port": bad}))
        assert [e.path for e in errors] == ["spec.smtp.port"], bad
    model = EmailSettingsSpec.model_validate(spec(smtp={"host": "mail.example.com", "port": 25.0}))
    assert model.smtp.port == 25
    assert isinstance(model.smtp.port, int)


def test_error_records() -> None:
    errors = validate_spec(
        spec(
            sender="Notifications <sender@example..com>",
            recipients={"error": ["ok@example.com", "bad@@example.com"]},
        )
    )
    assert [(e.path, e.reason) for e in errors] == [
        ("spec.sender", Reason.INVALID_SENDER),
        ("spec.recipients.error[1]", Reason.INVALID_RECIPIENT),
    ]
    assert str(errors[1]).startswith("spec.recipients.error[1]: must be a single address")


def test_not_an_object() -> None:
    assert validate_spec(None) == [SpecError("spec", Reason.INVALID_SPEC, "must be an object")]
    assert validate_spec("smtp.example.com")[0].path == "spec"


def test_cross_field_rules_name_the_field() -> None:
    errors = validate_spec(
        spec(
            smtp={
                "host": "relay.example.com",
                "username": "u",
                "passwordSecretRef": {"name": "s"},
                "encryption": "None",
            }
        )
    )
    assert [e.path for e in errors] == ["spec.smtp.encryption"]
    assert "allowPlaintextAuth" in errors[0].message
    errors = validate_spec(spec(recipients={}))
    assert errors == [
        SpecError(
            "spec.recipients",
            Reason.INVALID_SPEC,
            "at least one recipient is required while enabled is true",
        )
    ]


def test_repr_holds_no_secret_material() -> None:
    text = repr(EmailSettingsSpec.model_validate(spec()))
    assert "smtp-credentials" in text  # only the reference
    assert "password=" not in text.lower().replace("password_secret_ref=", "")


# ---------------------------------------------------------------- addresses


def test_internationalized_domain_is_encoded_for_smtp() -> None:
    mailbox = parse_address("hilfe@bücher.example")
    assert mailbox.addr_spec == "hilfe@bücher.example"
    assert mailbox.envelope == "hilfe@xn--bcher-kva.example"
    assert mailbox.envelope.isascii()


def test_internationalized_local_part_is_rejected_clearly() -> None:
    with pytest.raises(AddressError, match="SMTPUTF8"):
        parse_address("jörg@example.com")
    with pytest.raises(AddressError, match="SMTPUTF8"):
        parse_mailbox('"Jörg" <jörg@example.com>')


def test_non_ascii_display_name_is_encoded_in_the_header() -> None:
    mailbox = parse_mailbox('"Jörg Müller, Ops" <ops@bücher.example>')
    assert mailbox.display_name == "Jörg Müller, Ops"
    header = mailbox.header_value()
    assert header.isascii()
    assert header.startswith("=?utf-8?")
    assert header.endswith(" <ops@xn--bcher-kva.example>")


def test_display_name_specials_are_quoted_in_the_header() -> None:
    assert parse_mailbox('"Ops, Team" <ops@example.com>').header_value() == (
        '"Ops, Team" <ops@example.com>'
    )


def test_unquoted_non_ascii_display_name_gets_a_hint() -> None:
    with pytest.raises(AddressError, match="double quotes"):
        parse_mailbox("Jörg <j@example.com>")


def test_special_use_domains_are_explained() -> None:
    with pytest.raises(AddressError, match=r"Special-use domains \(localhost, .test"):
        parse_address("root@localhost")


def test_active_directory_local_domains_are_accepted() -> None:
    assert parse_address("Admin@Corp.Local").envelope.endswith("@corp.local")


def test_recipients_take_no_display_name() -> None:
    with pytest.raises(AddressError, match=r"only in spec\.sender"):
        parse_address("Admin <admin@example.com>")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("admin@example.com; admin2@example.com", ["admin@example.com", "admin2@example.com"]),
        ("admin@example.com;admin2@example.com;", ["admin@example.com", "admin2@example.com"]),
        ("a@x.org, b@x.org\nc@x.org", ["a@x.org", "b@x.org", "c@x.org"]),
        ("  ", []),
        ("", []),
        ("solo@example.com", ["solo@example.com"]),
    ],
)
def test_split_recipients(text: str, expected: list[str]) -> None:
    assert split_recipients(text) == expected


def test_split_recipients_feeds_the_model() -> None:
    addresses = split_recipients("admin@example.com; admin2@example.com")
    model = EmailSettingsSpec.model_validate(spec(recipients={"administrative": addresses}))
    assert model.recipients.for_category(Category.ADMINISTRATIVE) == addresses


# ---------------------------------------------------------------- status


def test_condition_and_status() -> None:
    when = datetime(2026, 5, 6, 7, 8, 9, 999, tzinfo=timezone(timedelta(hours=2)))
    condition = Condition(
        type="Ready",
        status="True",  # type: ignore[arg-type]
        reason=Reason.VERIFIED,
        message="ok",
        observed_generation=3,
        last_transition_time=when,
    )
    status = EmailSettingsStatus(observed_generation=3, conditions=[condition])
    wire = status.model_dump(mode="json", exclude_none=True)
    assert wire == {
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Verified",
                "message": "ok",
                "observedGeneration": 3,
                "lastTransitionTime": "2026-05-06T05:08:09Z",
            }
        ],
    }
    read = EmailSettingsStatus.model_validate({**wire, "someFutureField": {"x": 1}})
    ready = read.condition("Ready")
    assert ready is not None
    assert ready.status == "True"
    assert ready.last_transition_time == datetime(2026, 5, 6, 5, 8, 9, tzinfo=UTC)
    assert read.condition("Stalled") is None


def test_condition_rejects_bad_shapes() -> None:
    base = {
        "type": "Ready",
        "status": "True",
        "reason": "Verified",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    Condition.model_validate(base)
    for bad in (
        {"status": "Yes"},
        {"reason": "not camel case"},
        {"lastTransitionTime": "soon"},
        {"type": "has space"},
    ):
        with pytest.raises(ValidationError):
            Condition.model_validate({**base, **bad})
