"""The exported JSON Schema works with kubeconform, offline.

kubeconform can only judge structure (types, enums, bounds, required and
unknown fields): it must reject exactly the corpus documents the OpenAPI
schema rejects, naming the field, and accept everything else.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from emailsettings.api import schema_export
from emailsettings.devstack import binaries

from .corpus_cases import CORPUS, CORPUS_DIR, EXAMPLES_DIR, JSON_SCHEMA_DIR, Case

LOCATION = "{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"


def _kubeconform(schema_dir: Path, *paths: Path) -> dict[str, dict[str, Any]]:
    result = subprocess.run(
        [
            str(binaries.find("kubeconform")),
            "-strict",
            "-ignore-missing-schemas",  # Secrets and ConfigMaps in the examples
            "-schema-location",
            f"{schema_dir}/{LOCATION}",
            "-output",
            "json",
            "-verbose",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    report = json.loads(result.stdout)
    return {
        f"{Path(r['filename']).name}/{r['name']}": r
        for r in report["resources"]
        if r["kind"] == "EmailSettings"
    }


def _pointer(field_path: str) -> str:
    """spec.recipients.error[0] -> /spec/recipients/error/0"""
    return "/" + field_path.replace("[", ".").replace("]", "").replace(".", "/")


@pytest.fixture(scope="module")
def verdicts() -> dict[str, dict[str, Any]]:
    return _kubeconform(JSON_SCHEMA_DIR, CORPUS_DIR)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_kubeconform_judges_the_structure(case: Case, verdicts: dict[str, dict[str, Any]]) -> None:
    verdict = verdicts[f"{case.file.name}/{case.name}"]
    if case.judge != "schema":
        assert verdict["status"] == "statusValid", verdict
        return
    assert verdict["status"] == "statusInvalid", verdict
    pointer = _pointer(case.field)
    leaf = pointer.rsplit("/", 1)[-1]
    assert any(
        error["path"].startswith(pointer)
        or (pointer.startswith(error["path"] + "/") and f"'{leaf}'" in error["msg"])
        or (pointer == "/spec" and error["path"] == "" and "'spec'" in error["msg"])
        for error in verdict["validationErrors"]
    ), verdict


def test_examples_pass_kubeconform() -> None:
    verdicts = _kubeconform(JSON_SCHEMA_DIR, EXAMPLES_DIR)
    assert len(verdicts) == 3
    assert {v["status"] for v in verdicts.values()} == {"statusValid"}


def test_cli_writes_the_schema_kubeconform_uses(tmp_path: Path) -> None:
    from emailsettings.cli.main import main  # noqa: PLC0415 - the command under test

    assert main(["schema", "--write", str(tmp_path)]) == 0
    written = tmp_path / schema_export.JSON_SCHEMA_FILE
    assert json.loads(written.read_text()) == schema_export.json_schema()
    verdicts = _kubeconform(tmp_path / "jsonschema", CORPUS_DIR / "invalid-schema.yaml")
    assert verdicts
    assert {v["status"] for v in verdicts.values()} == {"statusInvalid"}
