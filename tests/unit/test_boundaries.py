"""Module boundaries from docs/architecture.md, checked on the source's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "emailsettings"


def imports_of(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (PACKAGE / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[str(path.relative_to(PACKAGE))] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {name}"
        for module, names in imports_of(package).items()
        for name in names
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


@pytest.mark.parametrize("package", ["api", "smtp", "kube", "sidecar", "cli"])
def test_no_kopf_outside_the_controller(package: str) -> None:
    assert offenders(package, ("kopf",)) == []


def test_status_computation_is_pure() -> None:
    names = imports_of("controller")["controller/status.py"]
    assert not {n for n in names if n.startswith(("kopf", "aiohttp", "emailsettings.kube"))}


def test_operator_and_sidecar_never_import_each_other() -> None:
    assert offenders("controller", ("emailsettings.sidecar",)) == []
    assert offenders("sidecar", ("emailsettings.controller",)) == []


@pytest.mark.parametrize("package", ["api", "smtp", "kube", "controller", "sidecar", "cli"])
def test_product_never_imports_the_test_platform(package: str) -> None:
    assert offenders(package, ("emailsettings.devstack", "trustme")) == []
