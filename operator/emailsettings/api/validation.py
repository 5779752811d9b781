"""Spec validation as records a person (and the operator's conditions) can use.

``validate_spec`` runs the models and turns pydantic's errors into
``SpecError(path, reason, message)``: the path in the API server's notation
(``spec.recipients.error[1]``), the condition reason the operator reports, and
a message. The same function backs the operator's Validated condition and the
``emailsettings validate`` command, so they never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from emailsettings.api import API_VERSION, GROUP, KIND
from emailsettings.api.conditions import Reason
from emailsettings.api.models import EmailSettingsSpec


@dataclass(frozen=True, slots=True)
class SpecError:
    """One problem with an EmailSettings: where, which condition reason, and why."""

    path: str
    reason: Reason
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


_MESSAGES = {
    "missing": "required value",
    "extra_forbidden": "unknown field",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be a boolean (true or false)",
    "list_type": "must be a list",
}


_REWORDING = (
    ("Input should be", "must be"),
    ("String should have", "must have"),
    ("List should have", "must have"),
    (" after validation", ""),
)


def format_path(root: str, loc: Sequence[int | str]) -> str:
    """``("recipients", "error", 1)`` -> ``spec.recipients.error[1]``."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _reason(loc: Sequence[int | str]) -> Reason:
    if loc and loc[0] == "sender":
        return Reason.INVALID_SENDER
    if len(loc) >= 2 and loc[0] == "recipients":
        return Reason.INVALID_RECIPIENT
    return Reason.INVALID_SPEC


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    message = error["msg"].removeprefix("Value error, ")
    for pydantic_words, ours in _REWORDING:
        message = message.replace(pydantic_words, ours)
    return message


def errors_from(exc: ValidationError, root: str = "spec") -> list[SpecError]:
    """pydantic's errors as SpecErrors, in the order the fields are declared."""
    result = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = list(error["loc"])
        result.append(SpecError(format_path(root, loc), _reason(loc), _message(error)))
    return result


def validate_spec(spec: Any, root: str = "spec") -> list[SpecError]:
    """Every problem the models find in an EmailSettings spec; empty when it is valid."""
    try:
        EmailSettingsSpec.model_validate(spec)
    except ValidationError as exc:
        return errors_from(exc, root)
    return []


_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def is_emailsettings(document: Any) -> bool:
    """Whether a manifest is an EmailSettings of this API group (any version)."""
    if not isinstance(document, Mapping) or document.get("kind") != KIND:
        return False
    api_version = document.get("apiVersion")
    return isinstance(api_version, str) and api_version.split("/", 1)[0] == GROUP


def validate_manifest(document: Mapping[str, Any]) -> list[SpecError]:
    """Check a whole EmailSettings manifest: apiVersion, metadata.name and the spec."""
    errors: list[SpecError] = []
    if document.get("apiVersion") != API_VERSION:
        errors.append(
            SpecError(
                "apiVersion",
                Reason.INVALID_SPEC,
                f"unsupported version {document.get('apiVersion')!r}: use {API_VERSION}",
            )
        )
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        errors.append(SpecError("metadata", Reason.INVALID_SPEC, "must be an object"))
    else:
        name = metadata.get("name")
        if name is None and not metadata.get("generateName"):
            errors.append(SpecError("metadata.name", Reason.INVALID_SPEC, "required value"))
        elif name is not None and (
            not isinstance(name, str) or len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name)
        ):
            errors.append(
                SpecError(
                    "metadata.name",
                    Reason.INVALID_SPEC,
                    "must be lower-case letters, digits, '-' and '.', at most 253 characters",
                )
            )
    if "spec" not in document:
        errors.append(SpecError("spec", Reason.INVALID_SPEC, "required value"))
    else:
        errors.extend(validate_spec(document["spec"]))
    return errors
