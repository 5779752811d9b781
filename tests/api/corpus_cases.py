"""The corpus of EmailSettings manifests and what each expects.

Each document in tests/api/corpus/*.yaml says in its ``corpus.emailsettings.io/*``
annotations whether it is valid, who can judge it (``schema``: the OpenAPI
schema, ``cel``: the CRD's CEL rules, ``model``: only the models) and which
field the error must name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emailsettings.api import schema_export

HERE = Path(__file__).parent
REPO = HERE.parents[1]
CORPUS_DIR = HERE / "corpus"
CRD_PATH = REPO / "crds" / schema_export.CRD_FILE
JSON_SCHEMA_DIR = REPO / "crds" / "jsonschema"
EXAMPLES_DIR = REPO / "examples"
ANNOTATION = "corpus.emailsettings.io/"
SERVER_JUDGES = frozenset({"schema", "cel"})


@dataclass(frozen=True)
class Case:
    file: Path
    document: int  # 1-based
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    def _annotation(self, key: str) -> str | None:
        value = self.manifest["metadata"]["annotations"].get(ANNOTATION + key)
        return None if value is None else str(value)

    @property
    def valid(self) -> bool:
        return self._annotation("expect") == "valid"

    @property
    def judge(self) -> str | None:
        return self._annotation("judge")

    @property
    def field(self) -> str:
        return self._annotation("field") or ""

    @property
    def why(self) -> str:
        return self._annotation("why") or ""

    @property
    def server_rejects(self) -> bool:
        return self.judge in SERVER_JUDGES


def load_corpus() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(CORPUS_DIR.glob("*.yaml")):
        documents = yaml.safe_load_all(path.read_text(encoding="utf-8"))
        cases.extend(Case(path, index, doc) for index, doc in enumerate(documents, start=1))
    return cases


CORPUS = load_corpus()


def names(path: str, field_path: str) -> bool:
    """Whether an error at ``path`` is about ``field_path`` (itself or inside it)."""
    return path == field_path or path.startswith((field_path + "[", field_path + "."))


@dataclass
class ServerVerdicts:
    """What the real API server said about the whole corpus (two kubectl calls)."""

    accepted: set[str] = field(default_factory=set)
    errors: dict[str, list[str]] = field(default_factory=dict)
    defaulted: dict[str, dict[str, Any]] = field(default_factory=dict)
