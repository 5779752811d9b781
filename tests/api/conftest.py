"""The CRD installed in the real API server, and its verdicts on the corpus."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import yaml

from emailsettings.api import schema_export
from emailsettings.devstack.kubectl import Kubectl

from .corpus_cases import CORPUS, CRD_PATH, ServerVerdicts


def _dry_run(kubectl: Kubectl, namespace: str, text: str, output: str) -> tuple[str, str]:
    result = kubectl.run(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        "-o",
        output,
        stdin=text,
        check=False,
        timeout=120,
    )
    return result.stdout, result.stderr


@pytest.fixture(scope="session")
def crd_installed(kubectl: Kubectl) -> Kubectl:
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH))
    kubectl.run(
        "wait", "--for=condition=Established", f"crd/{schema_export.CRD_NAME}", "--timeout=60s"
    )
    return kubectl


@pytest.fixture(scope="session")
def api_namespace(crd_installed: Kubectl) -> Iterator[str]:
    """One namespace for the session's dry runs (nothing is stored in it)."""
    name = f"api-{uuid.uuid4().hex[:10]}"
    crd_installed.run("create", "namespace", name)
    yield name
    crd_installed.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def server_verdicts(crd_installed: Kubectl, api_namespace: str) -> ServerVerdicts:
    verdicts = ServerVerdicts()
    everything = yaml.safe_dump_all([case.manifest for case in CORPUS], allow_unicode=True)
    stdout, stderr = _dry_run(crd_installed, api_namespace, everything, "name")
    verdicts.accepted = {line.rsplit("/", 1)[-1] for line in stdout.split()}
    lines = stderr.splitlines()
    for case in CORPUS:
        # "EmailSettings.emailsettings.io "NAME" is invalid: ..." or "(NAMESPACE/NAME; ...)"
        verdicts.errors[case.name] = [
            line for line in lines if f'"{case.name}"' in line or f"/{case.name};" in line
        ]
    unattributed = [line for line in lines if not any(line in e for e in verdicts.errors.values())]
    assert not unattributed, f"kubectl errors not attributed to a document: {unattributed}"

    valid = [case.manifest for case in CORPUS if case.valid]
    stdout, stderr = _dry_run(
        crd_installed, api_namespace, yaml.safe_dump_all(valid, allow_unicode=True), "json"
    )
    assert not stderr, stderr
    listing = json.loads(stdout)
    for item in listing.get("items", [listing]):
        verdicts.defaulted[item["metadata"]["name"]] = item["spec"]
    return verdicts
