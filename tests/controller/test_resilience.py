"""The operator survives SIGKILL mid-reconcile and an API server restart."""

from __future__ import annotations

import collections
import threading
import uuid
from pathlib import Path

import pytest

from emailsettings.devstack.controlplane import ControlPlane
from emailsettings.devstack.kubectl import Kubectl
from emailsettings.devstack.pki import KeyPair, LocalCA
from emailsettings.devstack.processes import OperatorProcess
from emailsettings.devstack.smtp_server import Security, SMTPServer
from emailsettings.kube import KubeClient, paths

from .helpers import SMTP_USER, put_ca, put_secret, ready_is, settings_body, wait_for_status

pytestmark = [pytest.mark.kube, pytest.mark.smtp]

RESOURCES = 50


def _test_message_settled(body: dict[str, object]) -> bool:
    status = body.get("status") or {}
    assert isinstance(status, dict)
    record = status.get("testMessage") or {}
    return bool(ready_is("True", "Verified")(body)) and bool(record.get("result"))


async def test_sigkill_mid_reconcile_converges_without_duplicate_test_messages(
    control_plane: Path,
    emailsettings_crd: None,
    kube: KubeClient,
    kubectl: Kubectl,
    server_cert: KeyPair,
    local_ca: LocalCA,
    tmp_path: Path,
) -> None:
    # A namespace the suite's operator does not watch: this test runs its own.
    namespace = f"iso-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", namespace)
    gate = threading.Event()
    with SMTPServer(
        Security.STARTTLS, cert=server_cert, credentials=SMTP_USER, data_gate=gate
    ) as server:
        await put_secret(kube, namespace)
        await put_ca(kube, namespace, local_ca.ca_pem.decode())
        bodies = [settings_body(f"r{i:02d}", namespace, port=server.port) for i in range(RESOURCES)]
        for body in bodies:
            body["spec"]["verification"]["sendTestMessage"] = True
        kubectl.apply(*bodies)
        operator = OperatorProcess(
            tmp_path / "op.log", kubeconfig=control_plane, namespaces=(namespace,)
        )
        operator.start()
        # Wait until test messages are in flight (claimed, held at end of DATA) ...
        await wait_for_status(
            kube,
            namespace,
            "r00",
            lambda b: bool((b.get("status") or {}).get("testMessage")),
            what="a test message in flight",
        )
        operator.kill()  # ... and kill the operator in the middle.
        gate.set()
        restarted = OperatorProcess(
            tmp_path / "op2.log", kubeconfig=control_plane, namespaces=(namespace,)
        )
        restarted.start()
        try:
            for index in range(RESOURCES):
                await wait_for_status(
                    kube,
                    namespace,
                    f"r{index:02d}",
                    _test_message_settled,
                    timeout=60,
                    what="Ready and a test-message outcome",
                )
        finally:
            restarted.stop()
        message_ids = [m.parsed()["Message-ID"] for m in server.mailbox.messages]
        duplicates = [mid for mid, n in collections.Counter(message_ids).items() if n > 1]
        assert not duplicates, f"test messages sent twice: {duplicates}"
        listing = await kube.get(paths.emailsettings(namespace))
        results = collections.Counter(
            i["status"]["testMessage"]["result"] for i in listing["items"]
        )
        assert results["Sent"] + results["Failed"] == RESOURCES
        assert results["Sent"] >= 1


async def test_api_server_restart_operator_reconnects(
    control_plane_handle: ControlPlane | None,
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server_cert: KeyPair,
    local_ca: LocalCA,
) -> None:
    if control_plane_handle is None:
        pytest.skip("needs the local control plane to restart its API server")
    with SMTPServer(Security.STARTTLS, cert=server_cert, credentials=SMTP_USER) as server:
        await put_secret(kube, namespace, password="wrong-before-restart")
        await put_ca(kube, namespace, local_ca.ca_pem.decode())
        kubectl.apply(settings_body("before", namespace, port=server.port))
        await wait_for_status(kube, namespace, "before", ready_is("False", "AuthenticationFailed"))

        control_plane_handle.stop_apiserver()
        control_plane_handle.start_apiserver()

        # Changes made after the restart reach the operator through its re-established watches.
        await put_secret(kube, namespace)
        kubectl.apply(settings_body("after", namespace, port=server.port))
        await wait_for_status(kube, namespace, "before", ready_is("True", "Verified"), timeout=60)
        await wait_for_status(kube, namespace, "after", ready_is("True", "Verified"), timeout=60)
