"""The chart's CRD templates are generated from crds/; CI fails when they drift."""

from __future__ import annotations

import subprocess
import sys

import yaml

from .conftest import CHART, REPO, Rendered, helm

SCRIPT = REPO / "hack" / "sync-chart-crds.py"


def test_chart_crds_match_crds_directory() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_crd_is_the_source_crd(renders: dict[str, Rendered]) -> None:
    sources = {
        d["metadata"]["name"]: d
        for path in sorted((REPO / "crds").glob("*.yaml"))
        for d in yaml.safe_load_all(path.read_text())
        if d and d["kind"] == "CustomResourceDefinition"
    }
    assert sources
    rendered = {
        d["metadata"]["name"]: d for d in renders["defaults"].all("CustomResourceDefinition")
    }
    assert set(rendered) == set(sources)
    for name, source in sources.items():
        crd = rendered[name]
        assert crd["spec"] == source["spec"]
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        for key, value in (source["metadata"].get("labels") or {}).items():
            assert crd["metadata"]["labels"][key] == value
    assert not renders["minimal"].all("CustomResourceDefinition")  # crds.enabled=false


def test_keep_can_be_turned_off() -> None:
    docs = yaml.safe_load_all(helm("template", "r", str(CHART), "--set=crds.keep=false"))
    (crd,) = [d for d in docs if d and d["kind"] == "CustomResourceDefinition"]
    assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})
