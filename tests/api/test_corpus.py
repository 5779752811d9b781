"""One truth: the API server, the models and the CLI judge the corpus alike.

Every document goes through the real API server (server-side dry-run apply,
batched) and through the models. Where the API server can judge a document
(schema or CEL), both must reject it naming the same field; where it cannot
(full address syntax), the server accepts and the models reject. Valid
documents are accepted everywhere, and the server's defaulting equals the
models' defaults.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from typing import Any

import pytest

from emailsettings.api.conditions import Reason
from emailsettings.api.models import EmailSettingsSpec
from emailsettings.api.validation import validate_manifest
from emailsettings.cli.main import main as cli_main

from .corpus_cases import CORPUS, CORPUS_DIR, Case, ServerVerdicts, names

IDS = [case.name for case in CORPUS]


def test_corpus_is_well_formed() -> None:
    assert len(IDS) == len(set(IDS)), "corpus names must be unique"
    for case in CORPUS:
        assert case.why, case.name
        if case.valid:
            assert case.judge is None, case.name
            assert case.name.startswith("v-"), case.name
        else:
            assert case.judge in {"schema", "cel", "model"}, case.name
            assert case.field.startswith("spec"), case.name
            assert case.name.startswith(case.judge[0] + "-"), case.name
    judges = {case.judge for case in CORPUS}
    assert judges == {None, "schema", "cel", "model"}


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_models(case: Case) -> None:
    errors = validate_manifest(case.manifest)
    if case.valid:
        assert errors == [], f"{case.why}: {errors}"
        return
    assert any(names(error.path, case.field) for error in errors), (
        f"{case.name} ({case.why}): expected an error at {case.field}, got {errors}"
    )
    for error in errors:
        assert error.message
        if error.path.startswith("spec.sender"):
            assert error.reason is Reason.INVALID_SENDER
        elif error.path.startswith("spec.recipients.") and error.path.count(".") >= 2:
            assert error.reason is Reason.INVALID_RECIPIENT
        else:
            assert error.reason is Reason.INVALID_SPEC


@pytest.mark.kube
@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_api_server(case: Case, server_verdicts: ServerVerdicts) -> None:
    errors = server_verdicts.errors[case.name]
    if not case.server_rejects:
        assert case.name in server_verdicts.accepted, f"{case.why}: rejected: {errors}"
        assert not errors
        return
    assert case.name not in server_verdicts.accepted, f"{case.why}: the API server accepted it"
    assert any(case.field in error for error in errors), (
        f"{case.name}: the API server's error does not name {case.field}: {errors}"
    )


def _without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nones(v) for v in value]
    return value


@pytest.mark.kube
@pytest.mark.parametrize("case", [c for c in CORPUS if c.valid], ids=lambda c: c.name)
def test_defaults_agree(case: Case, server_verdicts: ServerVerdicts) -> None:
    """The spec the API server stores is the spec the models see, defaults included."""
    model = EmailSettingsSpec.model_validate(case.manifest["spec"])
    ours = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert server_verdicts.defaulted[case.name] == _without_nones(ours)


def _cli(*args: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli_main(["validate", "--output", "json", *args])
    return code, json.loads(out.getvalue())


@pytest.mark.kube
def test_cli_agrees_with_api_server(server_verdicts: ServerVerdicts) -> None:
    code, report = _cli(str(CORPUS_DIR))
    assert code == 1
    assert report["documents"] == len(CORPUS)
    paths_by_name: dict[str, list[str]] = {}
    for error in report["errors"]:
        paths_by_name.setdefault(error["name"], []).append(error["path"])
    disagreements = []
    for case in CORPUS:
        cli_paths = paths_by_name.get(case.name, [])
        server_accepts = case.name in server_verdicts.accepted
        if not server_accepts and not any(names(p, case.field) for p in cli_paths):
            disagreements.append(f"{case.name}: server rejects {case.field}, CLI says {cli_paths}")
        if server_accepts and cli_paths and case.judge != "model":
            disagreements.append(f"{case.name}: server accepts, CLI says {cli_paths}")
        if case.judge == "model" and not (server_accepts and cli_paths):
            disagreements.append(f"{case.name}: expected server accept + CLI reject")
    assert not disagreements, "\n".join(disagreements)
    assert report["invalidDocuments"] == sum(not case.valid for case in CORPUS)
