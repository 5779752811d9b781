#!/usr/bin/env bash
# Regenerates crds/ (the CRD and its kubeconform JSON Schema) from the models.
# tests/api/test_crd.py fails when the committed files differ from this output.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m emailsettings.api.schema_export --write crds
