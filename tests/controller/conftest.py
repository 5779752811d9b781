"""A real operator process against the real control plane, and helpers to drive it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from emailsettings.devstack.kubectl import Kubectl
from emailsettings.devstack.processes import OperatorProcess
from emailsettings.kube import KubeClient, KubeConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def emailsettings_crd(kubectl: Kubectl) -> None:
    kubectl.run(
        "apply", "--server-side", "-f", str(REPO / "crds" / "emailsettings.io_emailsettings.yaml")
    )
    kubectl.run(
        "wait", "--for=condition=Established", "crd/emailsettings.emailsettings.io", "--timeout=60s"
    )


@pytest.fixture(scope="session")
def operator(
    control_plane: Path, emailsettings_crd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(control_plane, log_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def kube(control_plane: Path) -> AsyncIterator[KubeClient]:
    async with KubeClient(KubeConfig.load(control_plane)) as client:
        yield client
