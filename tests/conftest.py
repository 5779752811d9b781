"""Session-wide real components: a local control plane, a CA and SMTP servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from emailsettings.devstack.controlplane import ControlPlane
from emailsettings.devstack.kubectl import Kubectl
from emailsettings.devstack.pki import KeyPair, LocalCA


@pytest.fixture(scope="session")
def control_plane_handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane | None]:
    """The local control plane this session started; None on an existing cluster."""
    if os.environ.get("EMAILSETTINGS_KUBECONFIG"):
        yield None
        return
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"))
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def control_plane(control_plane_handle: ControlPlane | None) -> Path:
    """The kubeconfig of a real kube-apiserver + etcd (or of EMAILSETTINGS_KUBECONFIG)."""
    if control_plane_handle is None:
        return Path(os.environ["EMAILSETTINGS_KUBECONFIG"])
    return control_plane_handle.kubeconfig


@pytest.fixture(scope="session")
def kubectl(control_plane: Path) -> Kubectl:
    return Kubectl(control_plane)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace per test, so tests never see each other's objects."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("pki"), name="emailsettings-test-ca")


@pytest.fixture(scope="session")
def server_cert(local_ca: LocalCA) -> KeyPair:
    return local_ca.issue("smtp", "localhost", "127.0.0.1")


@pytest.fixture(scope="session")
def expired_cert(local_ca: LocalCA) -> KeyPair:
    return local_ca.issue("smtp-expired", "localhost", "127.0.0.1", expired=True)


@pytest.fixture(scope="session")
def wrong_host_cert(local_ca: LocalCA) -> KeyPair:
    return local_ca.issue("smtp-wrong-host", "wrong.example.net")
