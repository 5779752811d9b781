"""A real operator process against the real control plane, and the checks every test gets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from emailsettings.devstack.kubectl import Kubectl
from emailsettings.devstack.pki import KeyPair
from emailsettings.devstack.processes import OperatorProcess
from emailsettings.devstack.smtp_server import Security, SMTPServer
from emailsettings.kube import KubeClient, KubeConfig, follow, paths

from .helpers import CANARY_PASSWORD, SMTP_USER
from .invariants import violations

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def emailsettings_crd(kubectl: Kubectl) -> None:
    crd = REPO / "crds" / "emailsettings.io_emailsettings.yaml"
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    kubectl.run(
        "wait", "--for=condition=Established", "crd/emailsettings.emailsettings.io", "--timeout=60s"
    )


@pytest.fixture(scope="session")
def operator(
    control_plane: Path, emailsettings_crd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The suite's operator: watches the per-test namespaces (t-*) only, so tests that run
    an operator of their own use namespaces it does not see."""
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(log_path, kubeconfig=control_plane, namespaces=("t-*",))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def server(server_cert: KeyPair) -> Iterator[SMTPServer]:
    """A STARTTLS server requiring AUTH with the canary credentials."""
    with SMTPServer(Security.STARTTLS, cert=server_cert, credentials=SMTP_USER) as running:
        yield running


@pytest.fixture
async def kube(control_plane: Path) -> AsyncIterator[KubeClient]:
    async with KubeClient(KubeConfig.load(control_plane)) as client:
        yield client


class StatusRecorder:
    """Every status write seen cluster-wide (spec-only changes excluded), for the checks."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []  # versions whose status the operator changed
        self._last: dict[str, Any] = {}

    async def run(self, client: KubeClient) -> None:
        async for event in follow(client, paths.emailsettings()):
            if event.type not in {"ADDED", "MODIFIED"}:
                continue
            uid = event.object["metadata"]["uid"]
            status = event.object.get("status")
            if status and status != self._last.get(uid):
                self.seen.append(event.object)
            self._last[uid] = status


@pytest.fixture(scope="session")
async def status_recorder(
    control_plane: Path, emailsettings_crd: None
) -> AsyncIterator[StatusRecorder]:
    recorder = StatusRecorder()
    async with KubeClient(KubeConfig.load(control_plane)) as client:
        task = asyncio.create_task(recorder.run(client))
        yield recorder
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture(autouse=True)
async def check_invariants_and_canary(
    request: pytest.FixtureRequest, status_recorder: StatusRecorder, kubectl: Kubectl
) -> AsyncIterator[None]:
    start = len(status_recorder.seen)
    yield
    written = status_recorder.seen[start:]
    broken = [(obj["metadata"]["name"], problem) for obj in written for problem in violations(obj)]
    assert not broken, f"kstatus invariants violated: {broken}"
    exposed = {
        "statuses, annotations and specs": json.dumps(written),
        "events": kubectl.run("get", "events", "-A", "-o", "json").stdout,
    }
    if "operator" in request.fixturenames:
        process: OperatorProcess = request.getfixturevalue("operator")
        exposed["operator log"] = process.logs()
        exposed["operator metrics"] = process.metrics()
    leaked = [where for where, text in exposed.items() if CANARY_PASSWORD in text]
    assert not leaked, f"the canary password leaked into: {leaked}"
