#!/usr/bin/env python3
"""Render the CRDs in crds/ into the Helm chart as templates (cert-manager style).

    python hack/sync-chart-crds.py          # write helm/emailsettings-operator/templates/crds/
    python hack/sync-chart-crds.py --check  # exit 1 and show the diff if the chart is stale

crds/ is the source of truth (generated from the API models). The chart's copy is a
template so `helm upgrade` upgrades the CRD: it is wrapped in `crds.enabled`, gets the
chart's labels and, with `crds.keep`, Helm's keep policy. tests/helm/test_crds_sync.py
runs --check, so CI fails when the two drift apart.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "crds"
TARGET = ROOT / "helm" / "emailsettings-operator" / "templates" / "crds"

# Labels the chart sets itself (commonLabels); a source label with one of these keys is
# left to the chart so no key appears twice.
CHART_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
}


def escape(text: str) -> str:
    """Make literal text safe inside a Go template: '{{' would start an action."""
    return text.replace("{{", '{{ "{{" }}')


class _NoAliasDumper(yaml.SafeDumper):
    """Repeated values are written out in full: a template reads better without anchors."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 - PyYAML's signature
        return True


def dump(data: Any, indent: int) -> str:
    text = yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, width=120, allow_unicode=True)
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def render(source: Path, crd: dict[str, Any]) -> str:
    metadata = crd.get("metadata") or {}
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k not in CHART_LABELS}
    annotations = metadata.get("annotations") or {}
    out = [
        f"{{{{- /* Generated from crds/{source.name} by hack/sync-chart-crds.py. */}}}}\n",
        "{{- /* Do not edit: change the API models, regenerate crds/, then run the script. */}}\n",
        "{{- if .Values.crds.enabled }}\n",
        f"apiVersion: {crd['apiVersion']}\n",
        f"kind: {crd['kind']}\n",
        "metadata:\n",
        f"  name: {metadata['name']}\n",
        "  labels:\n",
        '    {{- include "emailsettings-operator.commonLabels" . | nindent 4 }}\n',
    ]
    if labels:
        out.append(escape(dump(labels, 4)))
    condition = "true" if annotations else "or .Values.crds.keep .Values.crds.annotations"
    out += [
        f"  {{{{- if {condition} }}}}\n",
        "  annotations:\n",
        "    {{- if .Values.crds.keep }}\n",
        "    helm.sh/resource-policy: keep\n",
        "    {{- end }}\n",
        "    {{- with .Values.crds.annotations }}\n",
        "    {{- toYaml . | nindent 4 }}\n",
        "    {{- end }}\n",
    ]
    if annotations:
        out.append(escape(dump(annotations, 4)))
    out.append("  {{- end }}\n")
    out.append(escape(dump({"spec": crd["spec"]}, 0)))
    out.append("{{- end }}\n")
    return "".join(out)


def expected() -> dict[str, str]:
    """Target file name -> content, for every CRD in crds/."""
    files: dict[str, str] = {}
    for source in sorted(SOURCE.glob("*.yaml")):
        for document in yaml.safe_load_all(source.read_text(encoding="utf-8")):
            if not document or document.get("kind") != "CustomResourceDefinition":
                continue
            name = f"{document['metadata']['name']}.yaml"
            files[name] = render(source, document)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    args = parser.parse_args(argv)
    want = expected()
    if not want:
        sys.stderr.write(f"no CustomResourceDefinition found in {SOURCE}\n")
        return 1
    have = {p.name: p.read_text(encoding="utf-8") for p in sorted(TARGET.glob("*.yaml"))}
    if args.check:
        drift = False
        for name in sorted(set(want) | set(have)):
            old, new = have.get(name, ""), want.get(name, "")
            if old != new:
                drift = True
                sys.stdout.writelines(
                    difflib.unified_diff(
                        old.splitlines(keepends=True),
                        new.splitlines(keepends=True),
                        f"chart/{name}",
                        f"from crds/ ({name})",
                    )
                )
        if drift:
            sys.stdout.write("\nThe chart's CRDs are stale: run hack/sync-chart-crds.py.\n")
            return 1
        return 0
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in set(have) - set(want):
        (TARGET / name).unlink()
    for name, text in want.items():
        (TARGET / name).write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {', '.join(sorted(want))} into {TARGET.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
