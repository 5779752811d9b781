"""The EmailSettings models: the one definition of the resource.

The CRD in ``crds/`` is generated from these classes (see
``emailsettings.api.schema_export``): field descriptions, defaults and bounds
are written once, here. Every check the API server makes with a CEL rule is
declared as a ``Rule`` that carries both the CEL expression and its Python
twin, so the API server and the models judge the same way; what CEL cannot
express (full RFC 5322 address syntax) only the models judge.

Wire names are the camelCase aliases. Spec models accept only those, forbid
unknown fields and refuse type coercion (``"587"`` is not a port), like the API
server. ``null`` stands for the default of a field that has one and is an error
elsewhere, again as the API server has it.
Nothing here holds a secret: the password is only ever a reference.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ModelWrapValidatorHandler,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError, PydanticUndefined, core_schema

from emailsettings.api import addresses
from emailsettings.api.addresses import AddressError, Mailbox

# --------------------------------------------------------------------------- rules

RULE_ERROR_TYPE = "cel_rule"  # pydantic error type of a failed Rule
NULL_ERROR_TYPE = "null_value"  # pydantic error type of a null where the CRD has no default
ADDRESS_ERROR_TYPE = "address"  # pydantic error type of an address email-validator refused


@dataclass(frozen=True)
class Rule:
    """A check the API server runs as a CEL rule, and its Python twin.

    Used as ``Annotated`` metadata on a field (``self`` is the field's value), or
    in a model's ``__rules__`` (``self`` is the object; ``field_path`` names the
    sub-field the error is about, as the CEL rule's ``fieldPath`` does).
    """

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None  # ".username": relative to the object the rule is on
    reason: str | None = None  # FieldValueRequired | FieldValueForbidden | FieldValueInvalid

    def to_crd(self) -> dict[str, str]:
        rule = {"rule": self.cel, "message": self.message}
        if self.field_path:
            rule["fieldPath"] = self.field_path
        if self.reason:
            rule["reason"] = self.reason
        return rule

    def error(self) -> PydanticCustomError:
        # No braces in messages: pydantic would read them as placeholders.
        return PydanticCustomError(RULE_ERROR_TYPE, self.message)

    def init_error(self, obj: BaseModel) -> InitErrorDetails:
        """The error of an object rule, at the field its fieldPath names."""
        loc = tuple(self.field_path.lstrip(".").split(".")) if self.field_path else ()
        return InitErrorDetails(type=self.error(), loc=loc, input=obj)

    def _validate(self, value: Any) -> Any:
        if not self.check(value):
            raise self.error()
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("x-kubernetes-validations", []).append(self.to_crd())
        return json_schema


def _cel_raw(pattern: str) -> str:
    if "'" in pattern:  # pragma: no cover - a programming error, caught by the CRD test
        raise ValueError(f"pattern {pattern!r} cannot be a CEL raw string")
    return f"r'{pattern}'"


NO_CONTROL_CHARS = Rule(
    cel=f"!self.matches({_cel_raw(addresses.CONTROL_CHARS_RE2)})",
    message="must not contain control characters such as CR or LF",
    check=lambda value: not addresses.has_control_chars(value),
)

# RFC 1123 host name (labels of letters, digits and inner hyphens), no trailing dot.
HOSTNAME_PATTERN = (
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_HOSTNAME = re.compile(HOSTNAME_PATTERN)


def is_hostname(value: str) -> bool:
    return _HOSTNAME.fullmatch(value) is not None


def is_ip(value: str) -> bool:
    """The twin of Kubernetes CEL ``isIP``: no zone, no IPv4-mapped IPv6."""
    if "%" in value:
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return not (isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None)


def is_host(value: str) -> bool:
    return is_hostname(value) or is_ip(value)


HOST = Rule(
    cel=f"self.matches({_cel_raw('^' + HOSTNAME_PATTERN + '$')}) || isIP(self)",
    message="must be a DNS name like mail.example.com (an internationalized name in its "
    "xn-- form) or an IP address",
    check=is_host,
)
HOSTNAME_OR_EMPTY = Rule(
    cel=f"self == '' || self.matches({_cel_raw('^' + HOSTNAME_PATTERN + '$')})",
    message="must be empty or a DNS name like mail.example.com",
    check=lambda value: value == "" or is_hostname(value),
)
HOST_OR_EMPTY = Rule(
    cel=f"self == '' || self.matches({_cel_raw('^' + HOSTNAME_PATTERN + '$')}) || isIP(self)",
    message="must be empty, a DNS name like mail.example.com or an IP address",
    check=lambda value: value == "" or is_host(value),
)

# A Kubernetes object name (DNS-1123 subdomain) and a Secret/ConfigMap data key.
DNS1123_SUBDOMAIN_PATTERN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS1123_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN_PATTERN)
OBJECT_NAME = Rule(
    cel=f"self.matches({_cel_raw('^' + DNS1123_SUBDOMAIN_PATTERN + '$')})",
    message="must be a Kubernetes object name: lower-case letters, digits, '-' and '.'",
    check=lambda value: _DNS1123_SUBDOMAIN.fullmatch(value) is not None,
)
DATA_KEY_PATTERN = r"[-._a-zA-Z0-9]+"
_DATA_KEY = re.compile(DATA_KEY_PATTERN)
DATA_KEY = Rule(
    cel=f"self.matches({_cel_raw('^' + DATA_KEY_PATTERN + '$')}) && self != '.' "
    "&& !self.startsWith('..')",
    message="must be a Secret or ConfigMap key: letters, digits, '-', '_' and '.', "
    "not '.' and not starting with '..'",
    check=lambda value: (
        _DATA_KEY.fullmatch(value) is not None and value != "." and not value.startswith("..")
    ),
)

# Recipients: the shape the API server can judge; email-validator judges the rest.
BARE_ADDRESS = Rule(
    cel=f"self.matches({_cel_raw(addresses.BARE_ADDRESS_RE2)})",
    message="must be a single address like admin@example.com, without a display name or separators",
    check=addresses.is_bare_address_shape,
)
ASCII_LOCAL_PART = Rule(
    cel=f"!self.matches({_cel_raw(addresses.NON_ASCII_LOCAL_RE2)})",
    message="the part before the @ must be ASCII: internationalized local parts need "
    "SMTPUTF8, which is not supported",
    check=lambda value: not addresses.has_non_ascii_local_part(value),
)
LOCAL_PART_LENGTH = Rule(
    cel=f"self.indexOf('@') <= {addresses.LOCAL_PART_MAX_LENGTH}",
    message=f"the part before the @ must be at most {addresses.LOCAL_PART_MAX_LENGTH} "
    "characters long",
    check=addresses.local_part_within_limit,
)
HAS_AT_SIGN = Rule(
    cel="self.contains('@')",
    message="must be an address like 'Name <sender@example.com>' or 'sender@example.com'",
    check=lambda value: "@" in value,
)

# Durations: whole hours, minutes and seconds, e.g. 30m, 1h, 1h30m.
DURATION_PATTERN = r"([0-9]{1,4}h)?([0-9]{1,6}m)?([0-9]{1,7}s)?"
_DURATION = re.compile(DURATION_PATTERN)
INTERVAL_MIN_SECONDS = 60
INTERVAL_MAX_SECONDS = 168 * 3600


def parse_duration(value: str) -> int | None:
    """Seconds of an ``1h30m``-style duration, or None if it has another form."""
    match = _DURATION.fullmatch(value)
    if match is None or not value:
        return None
    hours, minutes, seconds = (int(group[:-1]) if group else 0 for group in match.groups())
    return hours * 3600 + minutes * 60 + seconds


_DURATION_CEL = _cel_raw("^" + DURATION_PATTERN + "$")
DURATION_FORMAT = Rule(
    cel=f"self.matches({_DURATION_CEL})",
    message="must be a duration in hours, minutes and seconds, such as 30m, 1h or 1h30m",
    check=lambda value: parse_duration(value) is not None,
)
INTERVAL_RANGE = Rule(
    cel=f"!self.matches({_DURATION_CEL}) || "
    "(duration(self) >= duration('1m') && duration(self) <= duration('168h'))",
    message="must be at least 1m and at most 168h",
    check=lambda value: (
        (seconds := parse_duration(value)) is None
        or INTERVAL_MIN_SECONDS <= seconds <= INTERVAL_MAX_SECONDS
    ),
)


def _address(value: str) -> str:
    try:
        addresses.parse_address(value)
    except AddressError as exc:
        raise PydanticCustomError(ADDRESS_ERROR_TYPE, "{reason}", {"reason": str(exc)}) from None
    return value


def _mailbox(value: str) -> str:
    try:
        addresses.parse_mailbox(value)
    except AddressError as exc:
        raise PydanticCustomError(ADDRESS_ERROR_TYPE, "{reason}", {"reason": str(exc)}) from None
    return value


@dataclass(frozen=True)
class _After:
    """An after-validator that leaves the JSON schema alone (a models-only check)."""

    function: Callable[[Any], Any]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.function, handler(source))


# --------------------------------------------------------------------------- types


def _integral(value: Any) -> Any:
    # YAML 587.0 reaches the API server as JSON 587, which is an integer there.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WireInt = Annotated[StrictInt, BeforeValidator(_integral)]
"""An integer as the API server sees one: 587 and 587.0, never "587" or true."""

HostName = Annotated[StrictStr, Field(min_length=1, max_length=253), NO_CONTROL_CHARS, HOST]
RecipientAddress = Annotated[
    StrictStr,
    Field(min_length=3, max_length=addresses.ADDRESS_MAX_LENGTH),
    NO_CONTROL_CHARS,
    BARE_ADDRESS,
    ASCII_LOCAL_PART,
    LOCAL_PART_LENGTH,
    _After(_address),
]
SenderMailbox = Annotated[
    StrictStr,
    Field(min_length=3, max_length=addresses.MAILBOX_MAX_LENGTH),
    NO_CONTROL_CHARS,
    HAS_AT_SIGN,
    _After(_mailbox),
]


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


Timestamp = Annotated[
    AwareDatetime, PlainSerializer(_rfc3339, return_type=str, when_used="json-unless-none")
]
"""A metav1.Time: RFC 3339, UTC, whole seconds on the wire."""

MAX_RECIPIENTS = 50
MAX_CONDITIONS = 16


class Encryption(enum.StrEnum):
    """How the connection to the SMTP server is protected."""

    NONE = "None"
    STARTTLS = "STARTTLS"
    TLS = "TLS"


class VerificationMode(enum.StrEnum):
    """Whether the operator proves the settings work before reporting Ready."""

    VERIFY_AND_SAVE = "VerifyAndSave"
    SAVE = "Save"


class Category(enum.StrEnum):
    """The seed page's notification categories."""

    ADMINISTRATIVE = "administrative"
    ERROR = "error"
    SUPPORT = "support"


class TLSVersion(enum.StrEnum):
    """The lowest TLS protocol version accepted from the server."""

    TLS_1_2 = "TLSv1.2"
    TLS_1_3 = "TLSv1.3"


class CABundleKind(enum.StrEnum):
    """The kind of object holding a CA bundle."""

    SECRET = "Secret"  # noqa: S105 - a kind name, not a password
    CONFIG_MAP = "ConfigMap"


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class VerificationMessageResult(enum.StrEnum):
    """What became of the test message."""

    SENT = "Sent"
    FAILED = "Failed"


# --------------------------------------------------------------------------- base


def _add_object_rules(schema: dict[str, Any], cls: type[Any]) -> None:
    rules: tuple[Rule, ...] = getattr(cls, "__rules__", ())
    if rules:
        schema.setdefault("x-kubernetes-validations", []).extend(r.to_crd() for r in rules)


class WireModel(BaseModel):
    """A spec object as the API server sees it: camelCase, strict, closed."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
        json_schema_extra=_add_object_rules,
    )
    __rules__: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="wrap")
    @classmethod
    def _as_the_api_server_does(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """Nulls as the API server treats them, then the fields, then the object's rules.

        The API server replaces null with a field's default where it has one and
        rejects it elsewhere (an optional field is unset by leaving it out). Every
        problem is reported, each at the path of the field it is about.
        """
        if not isinstance(data, dict):
            return handler(data)
        defaulted = cls._defaulted_fields()
        problems = [
            InitErrorDetails(
                type=PydanticCustomError(
                    NULL_ERROR_TYPE, "must not be null: leave the field out to unset it"
                ),
                loc=(key,),
                input=None,
            )
            for key, value in data.items()
            if value is None and key not in defaulted
        ]
        try:
            model = handler({key: value for key, value in data.items() if value is not None})
        except ValidationError as exc:
            if not problems:
                raise
            # A null is also a missing value once removed: say it once.
            nulls = {problem["loc"] for problem in problems}
            others = _as_init_details(exc, skip_missing=nulls)
            raise ValidationError.from_exception_data(cls.__name__, problems + others) from None
        problems += [rule.init_error(model) for rule in cls.__rules__ if not rule.check(model)]
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return model

    @classmethod
    @functools.cache
    def _defaulted_fields(cls) -> frozenset[str]:
        """Wire names of the fields the CRD gives a default."""
        return frozenset(
            info.alias or name
            for name, info in cls.model_fields.items()
            if info.default_factory is not None
            or (info.default is not None and info.default is not PydanticUndefined)
        )


def _as_init_details(
    exc: ValidationError, skip_missing: set[tuple[int | str, ...]]
) -> list[InitErrorDetails]:
    return [
        InitErrorDetails(
            type=PydanticCustomError(error["type"], error["msg"], error.get("ctx")),
            loc=error["loc"],
            input=error["input"],
        )
        for error in exc.errors(include_url=False)
        if not (error["type"] == "missing" and error["loc"] in skip_missing)
    ]


# --------------------------------------------------------------------------- spec


class SecretKeyRef(WireModel):
    """A key in a Secret in the EmailSettings' own namespace."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=253), OBJECT_NAME] = Field(
        description="Name of the Secret, in the same namespace as the EmailSettings."
    )
    key: Annotated[StrictStr, Field(min_length=1, max_length=253), DATA_KEY] = Field(
        default="password", description="Key in the Secret's data that holds the password."
    )


class CABundleRef(WireModel):
    """A key in a Secret or ConfigMap, in the same namespace, holding PEM CA certificates."""

    kind: CABundleKind = Field(
        default=CABundleKind.SECRET,
        description="Kind of the object holding the CA bundle: Secret or ConfigMap.",
    )
    name: Annotated[StrictStr, Field(min_length=1, max_length=253), OBJECT_NAME] = Field(
        description="Name of the Secret or ConfigMap, in the same namespace as the EmailSettings."
    )
    key: Annotated[StrictStr, Field(min_length=1, max_length=253), DATA_KEY] = Field(
        default="ca.crt", description="Key holding one or more PEM-encoded CA certificates."
    )


class TLSSettings(WireModel):
    """How the server's certificate is checked, for encryption STARTTLS or TLS."""

    ca_bundle_ref: CABundleRef | None = Field(
        default=None,
        description="CA certificates to trust for the SMTP server instead of the system's "
        "trust store, e.g. for a server with a certificate from an internal CA.",
    )
    server_name: Annotated[StrictStr, Field(max_length=253), HOST_OR_EMPTY] | None = Field(
        default=None,
        description="Name the server's certificate must be valid for, and the TLS SNI name. "
        "Empty or unset: spec.smtp.host.",
    )
    min_version: TLSVersion = Field(
        default=TLSVersion.TLS_1_2,
        description="Lowest TLS version accepted: TLSv1.2 or TLSv1.3.",
    )


def _auth_over_plaintext_allowed(smtp: SMTPSettings) -> bool:
    return (
        smtp.username is None or smtp.encryption is not Encryption.NONE or smtp.allow_plaintext_auth
    )


class SMTPSettings(WireModel):
    """The mail server and how to talk to it (seed: SMTP Host, Port, Username, Password,
    Enable Encryption)."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.username) || has(self.passwordSecretRef)",
            message="passwordSecretRef is required when username is set",
            check=lambda s: s.username is None or s.password_secret_ref is not None,
            field_path=".passwordSecretRef",
            reason="FieldValueRequired",
        ),
        Rule(
            cel="!has(self.passwordSecretRef) || has(self.username)",
            message="username is required when passwordSecretRef is set",
            check=lambda s: s.password_secret_ref is None or s.username is not None,
            field_path=".username",
            reason="FieldValueRequired",
        ),
        Rule(
            cel="!has(self.username) || !has(self.encryption) || self.encryption != 'None' "
            "|| (has(self.allowPlaintextAuth) && self.allowPlaintextAuth)",
            message="authentication with encryption None sends the password in clear text: "
            "use STARTTLS or TLS, or set allowPlaintextAuth to true on a trusted network",
            check=_auth_over_plaintext_allowed,
            field_path=".encryption",
            reason="FieldValueForbidden",
        ),
        Rule(
            cel="!has(self.tls) || !has(self.encryption) || self.encryption != 'None'",
            message="tls settings have no effect with encryption None: remove tls or use "
            "STARTTLS or TLS",
            check=lambda s: s.tls is None or s.encryption is not Encryption.NONE,
            field_path=".tls",
            reason="FieldValueForbidden",
        ),
    )

    host: HostName = Field(
        description="Host name or IP address of the SMTP server (seed: SMTP Host), "
        "e.g. mail.example.com."
    )
    port: WireInt = Field(
        default=587,
        ge=1,
        le=65535,
        description="TCP port of the SMTP server (seed: Port): usually 587 for STARTTLS, "
        "465 for TLS, 25 for an internal relay.",
    )
    encryption: Encryption = Field(
        default=Encryption.STARTTLS,
        description="Connection security (seed: Enable Encryption). STARTTLS: plain "
        "connection upgraded with STARTTLS, which is then mandatory (usually port 587). "
        "TLS: implicit TLS from the first byte (usually port 465). None: no encryption "
        "(an internal relay, usually port 25).",
    )
    username: Annotated[StrictStr, Field(min_length=1, max_length=256), NO_CONTROL_CHARS] | None = (
        Field(
            default=None,
            description="User name for SMTP authentication (seed: Username), typically the "
            "sender's address. Unset: no authentication. Requires passwordSecretRef.",
        )
    )
    password_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="The Secret key holding the SMTP password (seed: Password). The "
        "password is never written in the EmailSettings itself. Requires username.",
    )
    allow_plaintext_auth: StrictBool = Field(
        default=False,
        description="Allow authentication with encryption None, which sends the password "
        "in clear text. Only for a trusted network path.",
    )
    helo_name: (
        Annotated[StrictStr, Field(max_length=253), NO_CONTROL_CHARS, HOSTNAME_OR_EMPTY] | None
    ) = Field(
        default=None,
        description="Name sent in EHLO/HELO. Empty or unset: the local host name.",
    )
    connect_timeout_seconds: WireInt = Field(
        default=10,
        ge=1,
        le=300,
        description="Seconds to wait for the connection, the TLS handshake and each reply.",
    )
    tls: TLSSettings | None = Field(
        default=None,
        description="Certificate checks for encryption STARTTLS and TLS. Unset: the "
        "system trust store, spec.smtp.host as the name, TLSv1.2 or later.",
    )

    @property
    def effective_tls(self) -> TLSSettings:
        return self.tls if self.tls is not None else TLSSettings.model_validate({})

    @property
    def tls_server_name(self) -> str:
        """The name the certificate must match: tls.serverName, else host."""
        return (self.tls.server_name if self.tls else None) or self.host

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _recipient_list(category: Category) -> Any:
    descriptions = {
        Category.ADMINISTRATIVE: "Addresses that receive administrative notifications (seed: "
        "Administrative Notification Recipients): exceptions, non-responding or outdated "
        "agents, agent launch failures, failed retests, authentication verifier exceptions.",
        Category.ERROR: "Addresses that receive error notifications (seed: Error "
        "Notification Recipients): reports from the application's error handler.",
        Category.SUPPORT: "Addresses that receive support notifications (seed: Support "
        "Notification Recipients): requests for assistance, new websites, logins, access "
        "granted, scans not responding or running too long.",
    }
    return Field(
        default_factory=list,
        max_length=MAX_RECIPIENTS,
        description=descriptions[category] + " Bare addresses like admin@example.com; "
        "no duplicates.",
        json_schema_extra={"default": [], "x-kubernetes-list-type": "set"},
    )


def _unique(values: list[str]) -> list[str]:
    seen: set[str] = set()
    duplicates = []
    for index, value in enumerate(values):
        if value in seen:
            duplicates.append(
                InitErrorDetails(
                    type=PydanticCustomError(
                        "duplicate", "duplicate value: {value}", {"value": value}
                    ),
                    loc=(index,),
                    input=value,
                )
            )
        seen.add(value)
    if duplicates:
        raise ValidationError.from_exception_data("list", duplicates)
    return values


RecipientList = Annotated[list[RecipientAddress], _After(_unique)]


class Recipients(WireModel):
    """Who receives each category of notification (seed: the three recipient fields)."""

    administrative: RecipientList = _recipient_list(Category.ADMINISTRATIVE)
    error: RecipientList = _recipient_list(Category.ERROR)
    support: RecipientList = _recipient_list(Category.SUPPORT)

    def raw(self, category: Category | str) -> list[str]:
        """The addresses of a category as written in the spec."""
        return list(getattr(self, Category(category).value))

    def for_category(self, category: Category | str) -> list[str]:
        """Envelope-ready (ASCII) addresses of a category, without duplicates, in order."""
        result: list[str] = []
        for value in self.raw(category):
            envelope = addresses.parse_address(value).envelope
            if envelope not in result:
                result.append(envelope)
        return result

    @property
    def total(self) -> int:
        return len(self.administrative) + len(self.error) + len(self.support)


class Verification(WireModel):
    """Whether and how often the operator checks the settings against the server
    (seed: Verify & Save / Save)."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.sendTestMessage) || !self.sendTestMessage || !has(self.mode) "
            "|| self.mode == 'VerifyAndSave'",
            message="sendTestMessage needs mode VerifyAndSave: with mode Save nothing is "
            "verified or sent",
            check=lambda v: not v.send_test_message or v.mode is VerificationMode.VERIFY_AND_SAVE,
            field_path=".sendTestMessage",
            reason="FieldValueForbidden",
        ),
    )

    mode: VerificationMode = Field(
        default=VerificationMode.VERIFY_AND_SAVE,
        description="VerifyAndSave (seed: Verify & Save): Ready only once the operator has "
        "connected, negotiated encryption and authenticated. Save (seed: Save): Ready "
        "without contacting the server; SMTPVerified stays Unknown.",
    )
    interval: Annotated[
        StrictStr, Field(min_length=1, max_length=16), DURATION_FORMAT, INTERVAL_RANGE
    ] = Field(
        default="1h",
        description="How often a verified configuration is verified again, as hours, "
        "minutes and seconds (e.g. 30m, 1h, 1h30m); from 1m to 168h.",
    )
    send_test_message: StrictBool = Field(
        default=False,
        description="Also send one real test message to the administrative recipients for "
        "each verified generation of the spec.",
    )

    @property
    def interval_seconds(self) -> int:
        seconds = parse_duration(self.interval)
        if seconds is None:  # pragma: no cover - validated
            raise ValueError(f"invalid interval {self.interval!r}")
        return seconds


class EmailSettingsSpec(WireModel):
    """The desired email-notification settings (the seed's Email Settings page)."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="(has(self.enabled) && !self.enabled) || (has(self.recipients) && "
            "(has(self.recipients.administrative) ? size(self.recipients.administrative) : 0) "
            "+ (has(self.recipients.error) ? size(self.recipients.error) : 0) "
            "+ (has(self.recipients.support) ? size(self.recipients.support) : 0) > 0)",
            message="at least one recipient is required while enabled is true",
            check=lambda s: not s.enabled or s.recipients.total > 0,
            field_path=".recipients",
            reason="FieldValueRequired",
        ),
        Rule(
            cel="(has(self.enabled) && !self.enabled) || !has(self.verification) "
            "|| !has(self.verification.sendTestMessage) || !self.verification.sendTestMessage "
            "|| (has(self.recipients) && has(self.recipients.administrative) "
            "&& size(self.recipients.administrative) > 0)",
            message="the test message goes to the administrative recipients: add at least one, "
            "or set sendTestMessage to false",
            check=lambda s: (
                not s.enabled
                or not s.verification.send_test_message
                or len(s.recipients.administrative) > 0
            ),
            field_path=".verification.sendTestMessage",
            reason="FieldValueInvalid",
        ),
    )

    enabled: StrictBool = Field(
        default=True,
        description="Send notifications (seed: Enable Email Notifications). False keeps the "
        "settings but the sidecar delivers nothing and the operator verifies nothing.",
    )
    smtp: SMTPSettings = Field(description="The SMTP server and how to connect to it.")
    sender: SenderMailbox = Field(
        description="The From address of every notification (seed: Notification Sender): "
        "an RFC 5322 mailbox, optionally with a display name, e.g. "
        "'Name <sender@example.com>'. Quote names with non-ASCII letters or punctuation: "
        "'\"Müller, Ops\" <ops@example.com>'."
    )
    recipients: Recipients = Field(
        default_factory=lambda: Recipients.model_validate({}),
        description="Recipients of each notification category.",
        json_schema_extra={"default": {}},
    )
    verification: Verification = Field(
        default_factory=lambda: Verification.model_validate({}),
        description="How the operator verifies the settings.",
        json_schema_extra={"default": {}},
    )

    @property
    def sender_mailbox(self) -> Mailbox:
        return addresses.parse_mailbox(self.sender)

    @property
    def sender_address(self) -> str:
        """The sender's bare addr-spec, envelope-ready (ASCII; IDN domains as A-labels)."""
        return self.sender_mailbox.envelope

    @property
    def sender_display_name(self) -> str | None:
        return self.sender_mailbox.display_name


# --------------------------------------------------------------------------- status


class StatusModel(BaseModel):
    """A status object: written by the operator, read by the sidecar.

    Python names and wire names are both accepted; unknown fields are ignored so an
    older reader copes with a newer writer.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
    )


CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(StatusModel):
    """One aspect of the current state, in the standard Kubernetes (metav1.Condition) shape."""

    type: str = Field(
        max_length=316,
        pattern=CONDITION_TYPE_PATTERN,
        description="Type of the condition: Ready, Validated, CredentialsResolved, "
        "SMTPVerified, Reconciling or Stalled.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description="CamelCase reason for the last transition, e.g. Verified, SecretNotFound, "
        "AuthenticationFailed.",
    )
    message: str = Field(
        max_length=32768, description="What happened and what to do about it, for a person."
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation the condition was computed from.",
        json_schema_extra={"format": "int64"},
    )
    last_transition_time: Timestamp = Field(
        description="When the status last changed from one value to another."
    )


class SMTPStatus(StatusModel):
    """What the last successful verification saw."""

    endpoint: str | None = Field(
        default=None, max_length=1024, description="host:port the operator connected to."
    )
    tls_version: str | None = Field(
        default=None,
        max_length=32,
        description="TLS version negotiated, e.g. TLSv1.3; unset without encryption.",
    )
    auth_mechanism: str | None = Field(
        default=None,
        max_length=64,
        description="SASL mechanism used to authenticate, e.g. PLAIN; unset without auth.",
    )
    verified_at: Timestamp | None = Field(
        default=None, description="When the settings were last verified successfully."
    )
    latency_milliseconds: int | None = Field(
        default=None, ge=0, description="How long the verification dialogue took, in ms."
    )
    secret_resource_version: str | None = Field(
        default=None,
        max_length=256,
        description="resourceVersion of the password Secret the verification used.",
    )
    verified_generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation that was verified.",
        json_schema_extra={"format": "int64"},
    )
    ca_bundle_resource_version: str | None = Field(
        default=None,
        max_length=256,
        description="resourceVersion of the CA bundle Secret or ConfigMap the verification "
        "used, if spec.smtp.tls.caBundleRef is set.",
    )


class VerificationMessageStatus(StatusModel):
    """The test message sent for a verified generation (spec.verification.sendTestMessage)."""

    generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation the message was sent for.",
        json_schema_extra={"format": "int64"},
    )
    sent_at: Timestamp | None = Field(default=None, description="When the message was sent.")
    result: VerificationMessageResult | None = Field(default=None, description="Sent or Failed.")
    message: str | None = Field(
        default=None, max_length=32768, description="The server's reply or the failure."
    )


class VerifyRequestStatus(StatusModel):
    """The answer to the last verify-now request.

    Requested with the annotation emailsettings.io/verify-requested-at.
    """

    request: str = Field(max_length=256, description="The annotation value this answer belongs to.")
    answered_at: Timestamp = Field(description="When the operator finished the verification.")
    ready: ConditionStatus = Field(description="The Ready status the verification produced.")
    reason: str = Field(max_length=1024, description="The Ready reason the verification produced.")


class TestMessageRequestStatus(StatusModel):
    """The answer to the last test-message request.

    Requested with the annotation emailsettings.io/test-message-request.
    """

    __test__ = False  # not a pytest test class, despite the name

    id: str = Field(max_length=256, description="The request's id.")
    to: list[Annotated[str, Field(max_length=320)]] = Field(
        default_factory=list, max_length=MAX_RECIPIENTS, description="Where it was sent."
    )
    result: VerificationMessageResult | None = Field(
        default=None, description="Sent or Failed; unset while sending."
    )
    sent_at: Timestamp | None = Field(default=None, description="When the server accepted it.")
    message: str | None = Field(
        default=None, max_length=32768, description="The server's reply or the failure."
    )


class EmailSettingsStatus(StatusModel):
    """The observed state, written by the operator and read by the sidecar."""

    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation the status was computed from. The sidecar "
        "sends only while it equals metadata.generation and Ready is True.",
        json_schema_extra={"format": "int64"},
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=MAX_CONDITIONS,
        description="Ready (always present), Validated, CredentialsResolved, SMTPVerified, "
        "and the kstatus conditions Reconciling and Stalled.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    smtp: SMTPStatus | None = Field(
        default=None, description="What the last successful verification saw."
    )
    test_message: VerificationMessageStatus | None = Field(
        default=None,
        description="The last test message sent (spec.verification.sendTestMessage).",
    )

    verify_request: VerifyRequestStatus | None = Field(
        default=None, description="The answer to the last verify-now request."
    )
    test_message_request: TestMessageRequestStatus | None = Field(
        default=None, description="The answer to the last test-message request."
    )

    def condition(self, condition_type: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == condition_type), None)
