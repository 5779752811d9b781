"""The CRD and a kubeconform JSON Schema, both generated from the models.

``crds/`` holds the output of ``python -m emailsettings.api.schema_export --write crds``
(``hack/generate-crds.sh``); a test proves the committed files are up to date.
The models carry every description, default, bound and CEL rule; this module
only turns pydantic's JSON Schema into a structural schema the API server takes
(``$ref`` inlined, optional fields flattened, no titles) and wraps it in a CRD.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from emailsettings.api import API_VERSION, GROUP, KIND, PLURAL, VERSION
from emailsettings.api.models import EmailSettingsSpec, EmailSettingsStatus

CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_FILE = f"{GROUP}_{PLURAL}.yaml"
JSON_SCHEMA_FILE = f"jsonschema/{GROUP}/{KIND.lower()}_{VERSION}.json"
SHORT_NAMES = ("ems",)
CATEGORIES = ("notifications",)
GENERATED_HEADER = (
    "# Generated from operator/emailsettings/api/models.py by hack/generate-crds.sh.\n"
    "# Do not edit by hand: change the models and regenerate.\n"
)

_RESOURCE_DESCRIPTION = (
    "EmailSettings configures an application's email notifications (the Email Settings "
    "page): the SMTP server, the sender, the recipients of administrative, error and "
    "support notifications, and how the settings are verified. The operator verifies "
    "them and reports the result in status.conditions; the notification sidecar sends "
    "mail only while Ready is True for the current generation."
)

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Whether the settings are verified and usable.",
    },
    {
        "name": "Host",
        "type": "string",
        "jsonPath": ".spec.smtp.host",
        "description": "The SMTP server.",
    },
    {
        "name": "Port",
        "type": "integer",
        "jsonPath": ".spec.smtp.port",
        "description": "The SMTP server's port.",
        "priority": 1,
    },
    {
        "name": "Encryption",
        "type": "string",
        "jsonPath": ".spec.smtp.encryption",
        "description": "None, STARTTLS or TLS.",
    },
    {
        "name": "Verified",
        "type": "date",
        "jsonPath": ".status.smtp.verifiedAt",
        "description": "When the settings were last verified against the server.",
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "description": "Why Ready has its status.",
        "priority": 1,
    },
    {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    },
]

_DROP = frozenset({"title"})
# Keywords in a reading order, so the generated YAML reads like a hand-written one.
_ORDER = (
    "type",
    "format",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "required",
    "properties",
    "items",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    rank = {key: index for index, key in enumerate(_ORDER)}
    return dict(sorted(node.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Overlay the keywords written next to a reference onto the referenced schema."""
    merged = dict(base)
    for key, value in overlay.items():
        if key == "x-kubernetes-validations":
            merged[key] = [*merged.get(key, []), *value]
        else:
            merged[key] = value
    return merged


def _inline(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    """The node with its reference or optional-wrapper resolved; None if it has neither."""
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b != {"type": "null"}]
        if len(branches) != 1:
            raise ValueError(f"unions are not structural: {node}")
        if node.get("default", ...) is None:
            del node["default"]
        return _merge(branches[0], node)
    if "allOf" in node:
        (only,) = node.pop("allOf")
        return _merge(only, node)
    if "$ref" in node:
        return _merge(defs[node.pop("$ref").rsplit("/", 1)[-1]], node)
    return None


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON Schema node as a Kubernetes structural schema node."""
    node = dict(schema)
    inlined = _inline(node, defs)
    if inlined is not None:
        return structural(inlined, defs)
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "additionalProperties" and value is False):
            # Unknown fields are rejected by field validation, not by the schema.
            continue
        if key == "description":
            result[key] = " ".join(str(value).split())
        elif key == "properties":
            result[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            result[key] = structural(value, defs)
        else:
            result[key] = value
    return _ordered(result)


def _model_schema(model: type[EmailSettingsSpec | EmailSettingsStatus]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return structural(raw, defs)


def open_api_schema() -> dict[str, Any]:
    """The CRD's openAPIV3Schema."""
    return {
        "type": "object",
        "description": _RESOURCE_DESCRIPTION,
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion defines the versioned schema of this representation "
                f"of an object: {API_VERSION}.",
            },
            "kind": {
                "type": "string",
                "description": f"Kind is the REST resource this object represents: {KIND}.",
            },
            "metadata": {"type": "object"},
            "spec": _model_schema(EmailSettingsSpec),
            "status": _model_schema(EmailSettingsStatus),
        },
    }


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition of EmailSettings."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "emailsettings-operator"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": copy.deepcopy(PRINTER_COLUMNS),
                    "schema": {"openAPIV3Schema": open_api_schema()},
                }
            ],
        },
    }


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """null is allowed where the API server replaces it with the default."""
    result = dict(node)
    if "type" in result:
        result["type"] = [result["type"], "null"]
    if "enum" in result:
        result["enum"] = [*result["enum"], None]
    return result


def _closed(node: dict[str, Any]) -> dict[str, Any]:
    """Strict JSON Schema: unknown fields are errors, as with kubectl's field validation."""
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "x-kubernetes-list-type" and value == "set":
            result["uniqueItems"] = True
        if key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            result[key] = {
                name: _nullable(_closed(sub)) if "default" in sub else _closed(sub)
                for name, sub in value.items()
            }
        elif key == "items":
            result[key] = _closed(value)
        else:
            result[key] = value
    if result.get("type") in ("object", ["object", "null"]) and "properties" in result:
        result["additionalProperties"] = False
    return result


def json_schema() -> dict[str, Any]:
    """A JSON Schema of an EmailSettings manifest for kubeconform (no CEL: structure only)."""
    root = copy.deepcopy(open_api_schema())
    root["properties"]["apiVersion"]["enum"] = [API_VERSION]
    root["properties"]["kind"]["enum"] = [KIND]
    root["required"] = ["apiVersion", "kind", "metadata", "spec"]
    schema = _closed(root)
    # metadata is validated by the API server, not here; leave it open.
    schema["properties"]["metadata"] = {"type": "object"}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"{KIND} {API_VERSION}",
        **schema,
    }


def crd_yaml() -> str:
    return GENERATED_HEADER + yaml.safe_dump(
        crd(), sort_keys=False, width=100, allow_unicode=True, default_flow_style=False
    )


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def outputs() -> dict[str, str]:
    """Relative path under crds/ -> content."""
    return {CRD_FILE: crd_yaml(), JSON_SCHEMA_FILE: json_schema_text()}


def write(directory: Path) -> list[Path]:
    written = []
    for relative, content in outputs().items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emailsettings.api.schema_export",
        description="Write the EmailSettings CRD and its kubeconform JSON Schema.",
    )
    parser.add_argument("--write", metavar="DIR", type=Path, help="write the files under DIR")
    parser.add_argument(
        "--format", choices=("crd", "json-schema"), default="crd", help="what to print"
    )
    args = parser.parse_args(argv)
    if args.write is not None:
        for path in write(args.write):
            sys.stdout.write(f"wrote {path}\n")
        return 0
    sys.stdout.write(crd_yaml() if args.format == "crd" else json_schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
