"""Judge one notification request: a pure function from JSON to a spool Submission.

Every refusal names the field and the rule, so the caller can fix the request.
Text that becomes a header must be one line: a subject with CR, LF or any other
control character is refused. Field values and bodies may span lines (stack
traces) but never contain NUL; where a field value lands in the subject, the
composer flattens it to one line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emailsettings.sidecar.spool import Submission
from emailsettings.sidecar.storm import fingerprint, storm_key
from emailsettings.sidecar.templates import CATEGORIES, EVENT_ID, EVENTS, FIELD_NAME, Renderer

MAX_FIELDS = 64
MAX_FIELD_VALUE = 16 * 1024
MAX_SUBJECT = 500
MAX_BODY = 64 * 1024
MAX_KEY = 200
ALLOWED = ("category", "event", "fields", "subject", "body", "idempotencyKey")

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_NAMES = {"\r": "CR", "\n": "LF", "\x00": "NUL", "\t": "TAB"}


class RequestError(ValueError):
    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field


def _invalid(detail: str, field: str | None = None) -> RequestError:
    return RequestError(422, detail, field)


def _control_name(text: str) -> str | None:
    match = _CONTROL.search(text)
    if match is None:
        return None
    char = match.group()
    return _CONTROL_NAMES.get(char, f"U+{ord(char):04X}")


@dataclass(frozen=True)
class IntakeRules:
    storm_window: float = 60.0


def check_idempotency_key(value: object, where: str) -> str:
    if not isinstance(value, str) or not IDEMPOTENCY_KEY.fullmatch(value):
        raise RequestError(
            422 if where == "idempotencyKey" else 400,
            f"{where} must be 1 to {MAX_KEY} printable ASCII characters without spaces",
            where,
        )
    return value


def _field_value(where: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise _invalid(f"{where} must be a string, number or boolean", where)
    if "\x00" in text:
        raise _invalid(f"{where} must not contain NUL characters", where)
    if len(text) > MAX_FIELD_VALUE:
        raise _invalid(f"{where} is longer than {MAX_FIELD_VALUE} characters", where)
    return text


def _fields(raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _invalid("fields must be an object of names to strings", "fields")
    if len(raw) > MAX_FIELDS:
        raise _invalid(f"fields has {len(raw)} entries; at most {MAX_FIELDS} are allowed", "fields")
    result: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
            raise _invalid(
                f"field name {name!r} is invalid: use a letter, then letters, digits or '_' "
                "(at most 64 characters)",
                "fields",
            )
        text = _field_value(f"fields.{name}", value)
        if text is not None:
            result[name] = text
    return result


def _subject(subject: object) -> str | None:
    if subject is None:
        return None
    if not isinstance(subject, str) or not subject.strip():
        raise _invalid("subject must be a non-empty string", "subject")
    control = _control_name(subject)
    if control is not None:
        raise _invalid(
            f"subject must be a single line: it contains a control character ({control})",
            "subject",
        )
    if len(subject) > MAX_SUBJECT:
        raise _invalid(f"subject is longer than {MAX_SUBJECT} characters", "subject")
    return subject


def _body(body: object) -> str | None:
    if body is None:
        return None
    if not isinstance(body, str) or not body.strip():
        raise _invalid("body must be a non-empty string", "body")
    if "\x00" in body:
        raise _invalid("body must not contain NUL characters", "body")
    if len(body) > MAX_BODY:
        raise _invalid(f"body is longer than {MAX_BODY} characters", "body")
    return body


def _idempotency_key(in_body: object, header: str | None) -> str | None:
    key = None if in_body is None else check_idempotency_key(in_body, "idempotencyKey")
    if header is not None:
        header = check_idempotency_key(header, "Idempotency-Key")
        if key is not None and key != header:
            raise _invalid(
                "idempotencyKey and the Idempotency-Key header differ; send one of them",
                "idempotencyKey",
            )
        key = header
    return key


def _check_event(
    event_id: str,
    *,
    category: str,
    fields: Mapping[str, str],
    subject: str | None,
    body: str | None,
    renderer: Renderer,
) -> None:
    known = EVENTS.get(event_id)
    if known is not None:
        if known.category != category:
            raise _invalid(
                f"event {event_id!r} belongs to category {known.category!r}, not {category!r}",
                "category",
            )
        missing = [f for f in known.required if not fields.get(f.name, "").strip()]
        if missing:
            names = ", ".join(f"fields.{f.name} ({f.label.lower()})" for f in missing)
            raise _invalid(f"event {event_id!r} needs {names}", f"fields.{missing[0].name}")
        return
    if subject is None and not renderer.has_template(event_id, "subject"):
        raise _invalid(
            f"event {event_id!r} is not in the catalog and has no subject template: send a subject",
            "subject",
        )
    if body is None and not fields and not renderer.has_template(event_id, "txt"):
        raise _invalid(
            f"event {event_id!r} is not in the catalog and has no body template: "
            "send a body or fields",
            "body",
        )


def parse_request(
    payload: Any,
    *,
    header_key: str | None,
    renderer: Renderer,
    rules: IntakeRules,
) -> Submission:
    if not isinstance(payload, Mapping):
        raise _invalid("the request body must be a JSON object")
    unknown = sorted(str(key) for key in payload if key not in ALLOWED)
    if unknown:
        raise _invalid(
            f"unknown field {unknown[0]!r}; allowed fields: {', '.join(ALLOWED)}", unknown[0]
        )
    category = payload.get("category")
    if category not in CATEGORIES:
        raise _invalid(f"category must be one of {', '.join(CATEGORIES)}", "category")
    event_id = payload.get("event")
    if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
        raise _invalid(
            "event must be a catalog event id (such as agent-out-of-date) or a custom id of "
            "lower-case letters, digits, '.' and '-', at most 63 characters",
            "event",
        )
    fields = _fields(payload.get("fields"))
    subject = _subject(payload.get("subject"))
    body = _body(payload.get("body"))
    key = _idempotency_key(payload.get("idempotencyKey"), header_key)
    _check_event(
        event_id, category=category, fields=fields, subject=subject, body=body, renderer=renderer
    )
    event = renderer.event_type(category, event_id)
    return Submission(
        category=category,
        event=event_id,
        subject=subject,
        body=body,
        fields=fields,
        idempotency_key=key,
        storm_key=storm_key(category, event, fields, subject, body)
        if rules.storm_window > 0
        else None,
        fingerprint=fingerprint(category, event_id, fields, subject, body),
    )
