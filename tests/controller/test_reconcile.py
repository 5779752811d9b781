"""Reconcile against the real API server and real SMTP servers."""

from __future__ import annotations

from typing import Any

import pytest

from emailsettings.devstack.kubectl import Kubectl
from emailsettings.devstack.pki import KeyPair, LocalCA
from emailsettings.devstack.processes import OperatorProcess
from emailsettings.devstack.smtp_server import Security, SMTPServer
from emailsettings.kube import KubeClient

from .helpers import (
    SMTP_USER,
    condition,
    put_ca,
    put_secret,
    ready_is,
    settings_body,
    wait_for_status,
)

pytestmark = [pytest.mark.kube, pytest.mark.smtp]


async def test_verified_settings_become_ready(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server_cert: KeyPair,
    local_ca: LocalCA,
) -> None:
    with SMTPServer(Security.STARTTLS, cert=server_cert, credentials=SMTP_USER) as server:
        await put_secret(kube, namespace)
        await put_ca(kube, namespace, local_ca.ca_pem.decode())
        kubectl.apply(settings_body("good", namespace, port=server.port))
        body = await wait_for_status_ready(kube, namespace, "good")
        assert condition(body, "SMTPVerified")["reason"] == "Verified"
        smtp = body["status"]["smtp"]
        assert smtp["tlsVersion"].startswith("TLSv1.")
        assert smtp["authMechanism"] in {"PLAIN", "LOGIN"}
        assert server.mailbox.messages == []  # verification sends no message


async def wait_for_status_ready(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    return await wait_for_status(kube, namespace, name, ready_is("True"), what="Ready=True")
