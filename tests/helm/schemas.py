"""Offline JSON Schemas for kubeconform, made from the real API server and the CRDs.

kubeconform normally downloads schemas; these machines have no internet. The
Kubernetes schemas are generated here from the API server's own /openapi/v2 (so
they are exactly the tested version's), in the layout of kubeconform's
``{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`` template
(core kinds under ``v1/``), like openapi2jsonschema's standalone-strict flavour:
every kind is one self-contained file (reachable definitions copied in, so
recursive types such as JSONSchemaProps stay finite), objects with declared
properties reject unknown ones, and int-or-string / Quantity accept both forms.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

REF_PREFIX = "#/definitions/"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def _strict(node: Any) -> Any:
    """A copy of a schema node: closed objects, both forms for int-or-string."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if out.get("format") == "int-or-string":
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    closable = "properties" in out and "additionalProperties" not in out
    if closable and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.add(ref[len(REF_PREFIX) :])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs(item, found)


def _reachable(definitions: dict[str, Any], root: str) -> set[str]:
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(definitions[name], found)
        todo.extend(found - seen)
    return seen


def schema_path(out: Path, group: str, version: str, kind: str) -> Path:
    # kubeconform's .Group is the part before "/" of apiVersion: "v1" for the core group.
    return out / (group or version) / f"{kind.lower()}_{version}.json"


def write_kubernetes_schemas(openapi_v2: dict[str, Any], out: Path) -> int:
    """Write one standalone-strict schema per group/version/kind; return how many."""
    definitions: dict[str, Any] = openapi_v2["definitions"]
    converted = {name: _strict(schema) for name, schema in definitions.items()}
    converted[QUANTITY] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    count = 0
    for name, schema in definitions.items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            document = copy.deepcopy(converted[name])
            document.pop("x-kubernetes-group-version-kind", None)
            document["definitions"] = {
                ref: converted[ref] for ref in sorted(_reachable(definitions, name))
            }
            path = schema_path(out, gvk["group"], gvk["version"], gvk["kind"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(document))
            count += 1
    return count


def crd_json_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    """The JSON Schema of one version of a CRD, as kubeconform wants it."""
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    schema: dict[str, Any] = _strict(copy.deepcopy(served["schema"]["openAPIV3Schema"]))
    schema.setdefault("properties", {})
    group = crd["spec"]["group"]
    schema["properties"]["apiVersion"] = {"type": "string", "enum": [f"{group}/{version}"]}
    schema["properties"]["kind"] = {"type": "string", "enum": [crd["spec"]["names"]["kind"]]}
    schema["properties"]["metadata"] = {"type": "object"}
    schema["additionalProperties"] = False
    return schema


def write_crd_schema(crd: dict[str, Any], out: Path) -> list[Path]:
    written = []
    for version in crd["spec"]["versions"]:
        path = schema_path(out, crd["spec"]["group"], version["name"], crd["spec"]["names"]["kind"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(crd_json_schema(crd, version["name"])))
        written.append(path)
    return written
