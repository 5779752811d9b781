"""values.yaml, values.schema.json and the chart README agree."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from types import ModuleType
from typing import Any

import yaml

from .conftest import CHART, REPO

TOOL = REPO / "helm" / "tools" / "chart_docs.py"


def _chart_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_docs", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chart_docs"] = module
    spec.loader.exec_module(module)
    return module


VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def test_readme_values_table_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(TOOL), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_value_is_documented() -> None:
    docs = _chart_docs()
    documented = {entry.path for entry in docs.documented(VALUES_TEXT)}
    for leaf in docs.leaves(VALUES):
        prefixes = {leaf[:i] for i in range(1, len(leaf) + 1)}
        assert prefixes & documented, f"{'.'.join(leaf)} has no '# --' comment"


def _schema_at(path: tuple[str, ...]) -> dict[str, Any] | None:
    node: dict[str, Any] = SCHEMA
    for key in path:
        properties = node.get("properties")
        if properties is None:
            return None if node.get("additionalProperties") is False else node
        if key not in properties:
            return None
        node = properties[key]
    return node


def test_schema_is_strict_and_covers_every_value() -> None:
    docs = _chart_docs()
    for leaf in docs.leaves(VALUES):
        assert _schema_at(leaf) is not None, f"{'.'.join(leaf)} is not in values.schema.json"

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        properties = node.get("properties")
        if properties is None:
            return
        # Every object the chart defines is closed; free-form maps are typed maps.
        assert node.get("additionalProperties") is False, f"{'.'.join(path)} is not strict"
        parent: Any = VALUES
        for part in path:
            parent = parent[part]
        for key, child in properties.items():
            # Optional keys of an empty default ({}), Helm's global and Kubernetes'
            # optional resources.claims need no default; every other key has one.
            optional = parent == {} or key in {"global", "claims"}
            assert optional or key in parent, f"schema has {'.'.join((*path, key))}, values not"
            if key in parent:
                walk(child, (*path, key))

    walk(SCHEMA, ())
