"""Sidecar test platform: the CRD, namespaces of our own, SMTP servers, a running sidecar.

Namespaces here are named `sc-*`, so the suite's operator (which watches `t-*`)
never writes a status over the ones these tests set by hand.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from emailsettings.devstack.kubectl import Kubectl
from emailsettings.devstack.pki import KeyPair, LocalCA
from emailsettings.devstack.smtp_server import Credentials, Security, SMTPServer
from emailsettings.kube import KubeClient, KubeConfig
from emailsettings.sidecar.main import Sidecar

from .helpers import (
    CANARY_PASSWORD,
    SMTP_USER,
    Mounts,
    SettingsObject,
    StartSidecar,
    sidecar_config,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def sidecar_crd(kubectl: Kubectl) -> None:
    crd = REPO / "crds" / "emailsettings.io_emailsettings.yaml"
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    kubectl.run(
        "wait", "--for=condition=Established", "crd/emailsettings.emailsettings.io", "--timeout=60s"
    )


@pytest.fixture
def sc_namespace(kubectl: Kubectl, sidecar_crd: None) -> Iterator[str]:
    name = f"sc-{uuid.uuid4().hex[:10]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def smtp(server_cert: KeyPair) -> Iterator[SMTPServer]:
    """STARTTLS with AUTH, the usual submission setup."""
    server = SMTPServer(
        Security.STARTTLS, cert=server_cert, credentials=Credentials(SMTP_USER, CANARY_PASSWORD)
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def kube(control_plane: Path) -> AsyncIterator[KubeClient]:
    async with KubeClient(KubeConfig.load(control_plane)) as client:
        yield client


@pytest.fixture
def settings(kube: KubeClient, sc_namespace: str) -> SettingsObject:
    return SettingsObject(kube, sc_namespace)


@pytest.fixture
def mounts(tmp_path: Path, local_ca: LocalCA) -> Mounts:
    result = Mounts(tmp_path / "mounts")
    result.write_password(CANARY_PASSWORD)
    result.ca_dir.mkdir(parents=True)
    (result.ca_dir / "ca.crt").write_bytes(local_ca.ca_pem)
    return result


@pytest.fixture
async def start_sidecar(
    control_plane: Path, sc_namespace: str, tmp_path: Path, mounts: Mounts
) -> AsyncIterator[StartSidecar]:
    started: list[Sidecar] = []

    async def start(**overrides: Any) -> Sidecar:
        spool_dir = overrides.pop("spool_dir", tmp_path / "spool")
        config = sidecar_config(
            kubeconfig=control_plane,
            namespace=sc_namespace,
            spool_dir=spool_dir,
            mounts=mounts,
            **overrides,
        )
        sidecar = Sidecar(config)
        await sidecar.start()
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        await sidecar.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
