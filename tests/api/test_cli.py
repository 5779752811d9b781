"""`emailsettings validate`: exit codes, messages and JSON output."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emailsettings.cli.main import main

from .corpus_cases import CORPUS_DIR, EXAMPLES_DIR

GOOD = """\
apiVersion: emailsettings.io/v1alpha1
kind: EmailSettings
metadata:
  name: good
  namespace: app
spec:
  smtp:
    host: smtp.example.com
  sender: Notifications <sender@example.com>
  recipients:
    administrative: [admin@example.com]
"""

BAD = """\
apiVersion: emailsettings.io/v1alpha1
kind: EmailSettings
metadata:
  name: bad
  namespace: app
spec:
  smtp:
    host: smtp.example.com
    port: 70000
  sender: Notifications <sender@>
  recipients:
    administrative:
    - admin@example.com
    - "Admin <admin2@example.com>"
"""

OTHER_KINDS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {port: "not validated here"}
---
apiVersion: other.example.com/v1
kind: EmailSettings
metadata: {name: someone-elses}
spec: {anything: goes}
"""


def run(
    args: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None
) -> tuple[int, str, str]:
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        code = main(["validate", *args])
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_file_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(write(tmp_path, "good.yaml", GOOD))], capsys)
    assert code == 0
    assert out.strip() == "1 EmailSettings valid in 1 file(s)"


def test_errors_name_file_line_document_field_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "both.yaml", GOOD + "---\n" + BAD)
    code, out, _ = run([str(path)], capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[:3] == [
        (
            f"{path}:21: document 2: EmailSettings app/bad: spec.smtp.port: "
            "must be less than or equal to 65535 (InvalidSpec)"
        ),
        (
            f"{path}:22: document 2: EmailSettings app/bad: spec.sender: "
            "There must be something after the @-sign. (InvalidSender)"
        ),
        (
            f"{path}:26: document 2: EmailSettings app/bad: spec.recipients.administrative[1]: "
            "must be a single address like admin@example.com, without a display name or "
            "separators (InvalidRecipient)"
        ),
    ]
    assert lines[-1] == "3 error(s) in 1 of 2 EmailSettings, 1 file(s)"


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.yaml", BAD)
    code, out, _ = run(["--output", "json", str(path)], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert (report["files"], report["documents"], report["invalidDocuments"]) == (1, 1, 1)
    first: dict[str, Any] = report["errors"][0]
    assert first == {
        "file": str(path),
        "document": 1,
        "line": 9,
        "kind": "EmailSettings",
        "namespace": "app",
        "name": "bad",
        "path": "spec.smtp.port",
        "reason": "InvalidSpec",
        "message": "must be less than or equal to 65535",
    }
    assert [e["path"] for e in report["errors"]] == [
        "spec.smtp.port",
        "spec.sender",
        "spec.recipients.administrative[1]",
    ]


def test_other_kinds_and_groups_are_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run([str(write(tmp_path, "other.yaml", OTHER_KINDS))], capsys)
    assert code == 0
    assert out.strip() == "no EmailSettings found in 1 file(s)"


def test_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["-"], capsys, stdin=BAD)
    assert code == 1
    assert out.startswith("<stdin>:9: document 1: EmailSettings app/bad: spec.smtp.port:")


def test_directory_is_searched_recursively(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "a/good.yaml", GOOD)
    write(tmp_path, "a/b/bad.yml", BAD)
    write(tmp_path, "a/b/notes.txt", "kind: EmailSettings\n")
    write(tmp_path, "c.json", json.dumps({"kind": "EmailSettings", "apiVersion": "x/v1"}))
    code, out, _ = run(["--output", "json", str(tmp_path)], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["files"] == 3
    assert report["documents"] == 2
    assert {Path(e["file"]).name for e in report["errors"]} == {"bad.yml"}


def test_yaml_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "broken.yaml", GOOD + "---\nspec: {smtp: [\n")
    code, out, _ = run([str(path)], capsys)
    assert code == 1
    assert out.splitlines()[0].startswith(f"{path}:")
    assert "document 2" in out
    assert "(InvalidYAML)" in out
    assert "not valid YAML" in out


def test_list_kind_items_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml  # noqa: PLC0415 - only this test builds a List

    listing = {"apiVersion": "v1", "kind": "List", "items": [yaml.safe_load(BAD)]}
    code, out, _ = run([str(write(tmp_path, "list.yaml", yaml.safe_dump(listing)))], capsys)
    assert code == 1
    assert "items[0].spec.smtp.port" in out


def test_wrong_version_and_missing_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = GOOD.replace("v1alpha1", "v1").replace("  name: good\n", "")
    code, out, _ = run([str(write(tmp_path, "v1.yaml", text))], capsys)
    assert code == 1
    assert "apiVersion: unsupported version 'emailsettings.io/v1'" in out
    assert "metadata.name: required value" in out


def test_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([str(tmp_path / "nope.yaml")], capsys)
    assert code == 2
    assert out == ""
    assert "no such file or directory" in err


def test_no_arguments_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate"])
    assert exit_info.value.code == 2
    assert "usage: emailsettings validate" in capsys.readouterr().err


def test_examples_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(EXAMPLES_DIR)], capsys)
    assert (code, out.strip()) == (0, "3 EmailSettings valid in 3 file(s)")


def test_corpus_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([str(CORPUS_DIR / "valid.yaml")], capsys)[0] == 0
    for name in ("invalid-schema.yaml", "invalid-cel.yaml", "invalid-model.yaml"):
        code, out, _ = run(["-o", "json", str(CORPUS_DIR / name)], capsys)
        report = json.loads(out)
        assert code == 1
        assert report["invalidDocuments"] == report["documents"], name


def test_installed_entry_point(tmp_path: Path) -> None:
    """The console script behaves as the function does (exit code, stdout)."""
    script = Path(sys.executable).with_name("emailsettings")
    result = subprocess.run(
        [str(script), "validate", str(write(tmp_path, "bad.yaml", BAD))],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert "spec.smtp.port" in result.stdout
