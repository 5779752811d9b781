"""`emailsettings validate FILE|DIR|-`: check EmailSettings manifests offline.

For GitOps pipelines: reads multi-document YAML (or JSON), ignores every other
kind, and checks each EmailSettings with the same code the operator uses
(``emailsettings.api.validation``): everything the API server would reject,
plus the full address syntax only the operator can judge. Each error names the
file, line, document (1 is the first in the file), field path and reason.

Exit status: 0 when every EmailSettings is valid (or there is none), 1 when
any is invalid or a file is not valid YAML, 2 on usage errors (a missing path).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from emailsettings.api import KIND
from emailsettings.api.validation import is_emailsettings, validate_manifest
from emailsettings.cli.main import EXIT_INVALID, EXIT_OK, EXIT_USAGE

STDIN = "-"
STDIN_LABEL = "<stdin>"
SUFFIXES = (".yaml", ".yml", ".json")
YAML_ERROR = "InvalidYAML"


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "validate",
        help="check EmailSettings manifests offline",
        description="Check every EmailSettings in the given files (multi-document YAML or "
        "JSON; other kinds are ignored) against the rules the API server and the operator "
        "apply. A directory is searched recursively for *.yaml, *.yml and *.json; '-' reads "
        "standard input. Exit status: 0 valid, 1 invalid, 2 usage error.",
    )
    parser.add_argument("paths", nargs="+", metavar="FILE|DIR|-", help="what to check")
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text for people (default), json for machines",
    )
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class Finding:
    """One error, located."""

    file: str
    document: int  # 1-based index of the YAML document in the file
    line: int | None  # 1-based line of the offending field, as near as it can be found
    kind: str
    namespace: str | None
    name: str | None
    path: str
    reason: str
    message: str

    def text(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        what = self.name or "(unnamed)"
        if self.namespace:
            what = f"{self.namespace}/{what}"
        return (
            f"{where}: document {self.document}: {self.kind} {what}: "
            f"{self.path}: {self.message} ({self.reason})"
        )


@dataclass
class Report:
    files: int = 0
    documents: int = 0  # EmailSettings checked
    invalid_documents: int = 0

    def summary(self, errors: int) -> str:
        if not self.documents and not errors:
            return f"no EmailSettings found in {self.files} file(s)"
        if not errors:
            return f"{self.documents} EmailSettings valid in {self.files} file(s)"
        return (
            f"{errors} error(s) in {self.invalid_documents} of {self.documents} EmailSettings, "
            f"{self.files} file(s)"
        )


class UsageError(Exception):
    pass


def run(args: argparse.Namespace) -> int:
    try:
        sources = list(_sources(args.paths))
    except UsageError as exc:
        sys.stderr.write(f"emailsettings validate: {exc}\n")
        return EXIT_USAGE
    report = Report()
    findings: list[Finding] = []
    for label, read in sources:
        report.files += 1
        try:
            text = read()
        except (OSError, UnicodeDecodeError) as exc:
            sys.stderr.write(f"emailsettings validate: cannot read {label}: {exc}\n")
            return EXIT_USAGE
        findings.extend(check_text(text, label, report))
    _print(findings, report, args.output, sys.stdout)
    return EXIT_INVALID if findings else EXIT_OK


def _sources(paths: list[str]) -> Iterator[tuple[str, Any]]:
    for raw in paths:
        if raw == STDIN:
            yield STDIN_LABEL, sys.stdin.read
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
            )
            for file in files:
                yield str(file), lambda file=file: file.read_text(encoding="utf-8")
        elif path.is_file():
            yield str(path), lambda path=path: path.read_text(encoding="utf-8")
        else:
            raise UsageError(f"{raw}: no such file or directory")


def check_text(text: str, label: str, report: Report | None = None) -> list[Finding]:
    """Every error in the EmailSettings of one YAML stream."""
    report = report if report is not None else Report()
    findings: list[Finding] = []
    index = 0
    for index, node, document in _documents(text):
        for item_path, item_node, item in _items(node, document):
            before = len(findings)
            findings.extend(_check(label, index, item_path, item_node, item))
            if is_emailsettings(item):
                report.documents += 1
                report.invalid_documents += len(findings) > before
    yaml_error = _yaml_error(text)
    if yaml_error is not None:
        findings.append(_relabel(yaml_error, label, index + 1))
    return findings


# ------------------------------------------------------------------ YAML with positions


def _documents(text: str) -> Iterator[tuple[int, yaml.Node | None, Any]]:
    loader = yaml.SafeLoader(text)
    try:
        index = 0
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
                document = loader.construct_document(node)
            except yaml.YAMLError:
                return  # reported by _yaml_error
            index += 1
            yield index, node, document
    finally:
        loader.dispose()


def _yaml_error(text: str) -> Finding | None:
    try:
        for _ in yaml.safe_load_all(text):
            pass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return Finding("", 0, line, "", None, None, "", YAML_ERROR, f"not valid YAML: {problem}")
    return None


def _relabel(finding: Finding, label: str, document: int) -> Finding:
    values = asdict(finding)
    values.update(file=label, document=document, kind="YAML")
    return Finding(**values)


def _items(node: yaml.Node | None, document: Any) -> Iterator[tuple[str, yaml.Node | None, Any]]:
    """The document itself, or the items of a `kind: List`."""
    if (
        isinstance(document, Mapping)
        and document.get("kind") == "List"
        and isinstance(document.get("items"), list)
    ):
        items_node = _child(node, "items")
        for position, item in enumerate(document["items"]):
            child = _child(items_node, position) if items_node is not None else None
            yield f"items[{position}].", child, item
    else:
        yield "", node, document


def _child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(key, str):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value_node  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]  # type: ignore[no-any-return]
    return None


def _key_line(node: yaml.Node | None, key: str) -> int | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return int(key_node.start_mark.line) + 1
    return None


_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def line_of(node: yaml.Node | None, path: str) -> int | None:
    """The line of the field at ``path`` (or of its nearest existing parent)."""
    if node is None:
        return None
    line: int | None = int(node.start_mark.line) + 1
    current: yaml.Node | None = node
    for index, name in _PATH_PART.findall(path):
        key: str | int = int(index) if index else name
        if isinstance(key, str):
            line = _key_line(current, key) or line
        current = _child(current, key)
        if current is None:
            break
        if isinstance(key, int):
            line = int(current.start_mark.line) + 1
    return line


# ------------------------------------------------------------------ checking


def _check(
    label: str, index: int, prefix: str, node: yaml.Node | None, document: Any
) -> list[Finding]:
    if not is_emailsettings(document):
        return []
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = metadata.get("name") if isinstance(metadata.get("name"), str) else None
    namespace = metadata.get("namespace") if isinstance(metadata.get("namespace"), str) else None
    return [
        Finding(
            file=label,
            document=index,
            line=line_of(node, error.path),
            kind=KIND,
            namespace=namespace,
            name=name,
            path=prefix + error.path,
            reason=str(error.reason),
            message=error.message,
        )
        for error in validate_manifest(document)
    ]


def _print(findings: list[Finding], report: Report, output: str, out: TextIO) -> None:
    if output == "json":
        result = {
            "valid": not findings,
            "files": report.files,
            "documents": report.documents,
            "invalidDocuments": report.invalid_documents,
            "errors": [asdict(finding) for finding in findings],
        }
        out.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        return
    out.writelines(finding.text() + "\n" for finding in findings)
    out.write(report.summary(len(findings)) + "\n")
