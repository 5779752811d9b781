"""Verify now and test messages on request: annotations, the kubectl plugin, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emailsettings.api.requests import TEST_MESSAGE_ANNOTATION, TestMessageRequest
from emailsettings.devstack import binaries
from emailsettings.devstack.kubectl import Kubectl
from emailsettings.devstack.pki import LocalCA
from emailsettings.devstack.processes import OperatorProcess
from emailsettings.devstack.smtp_server import SMTPServer
from emailsettings.kube import KubeClient, paths

from .helpers import (
    CANARY_PASSWORD,
    prepare_credentials,
    ready_is,
    settings_body,
    wait_for_status,
)

pytestmark = [pytest.mark.kube, pytest.mark.smtp]


def plugin(control_plane: Path, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl emailsettings ...`, found by the real kubectl on PATH as a plugin."""
    env = {
        **os.environ,
        "KUBECONFIG": str(control_plane),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    kubectl = str(binaries.find_on_path_or_cache("kubectl"))
    return subprocess.run(
        [kubectl, "emailsettings", "-n", namespace, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


async def _ready_resource(
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    port: int,
    local_ca: LocalCA,
    password: str = CANARY_PASSWORD,
) -> None:
    await prepare_credentials(kube, namespace, local_ca.ca_pem, password=password)
    kubectl.apply(settings_body("main", namespace, port=port))


async def test_verify_now_bypasses_the_shared_result(
    operator: OperatorProcess,
    control_plane: Path,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
    local_ca: LocalCA,
) -> None:
    await _ready_resource(kube, kubectl, namespace, server.port, local_ca)
    before = await wait_for_status(kube, namespace, "main", ready_is("True", "Verified"))
    assert server.mailbox.logins == 1
    result = plugin(control_plane, namespace, "verify", "main", "--wait", "-o", "json")
    assert result.returncode == 0, result.stderr + result.stdout
    answer = json.loads(result.stdout)
    assert (answer["ready"], answer["reason"]) == ("True", "Verified")
    assert server.mailbox.logins == 2  # answered by a new verification, not the shared one
    after = await kube.get(paths.emailsettings(namespace, "main"))
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["status"]["verifyRequest"]["request"] == answer["request"]


async def test_verify_now_reports_auth_failure_with_exit_code(
    operator: OperatorProcess,
    control_plane: Path,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
    local_ca: LocalCA,
) -> None:
    await _ready_resource(kube, kubectl, namespace, server.port, local_ca, password="wrong")
    await wait_for_status(kube, namespace, "main", ready_is("False", "AuthenticationFailed"))
    result = plugin(control_plane, namespace, "verify", "main", "--wait")
    assert result.returncode == 1
    assert "AuthenticationFailed" in result.stdout


def test_unknown_resource_exit_code(
    operator: OperatorProcess, control_plane: Path, namespace: str
) -> None:
    result = plugin(control_plane, namespace, "verify", "nope", "--wait")
    assert result.returncode == 3
    assert "not found" in result.stderr


async def test_status_table_and_exit_codes(
    operator: OperatorProcess,
    control_plane: Path,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
    local_ca: LocalCA,
) -> None:
    await _ready_resource(kube, kubectl, namespace, server.port, local_ca)
    await wait_for_status(kube, namespace, "main", ready_is("True", "Verified"))
    result = plugin(control_plane, namespace, "status")
    assert result.returncode == 0
    assert "SMTPVerified" in result.stdout
    assert "\033[" not in result.stdout  # no color when not on a terminal
    kubectl.apply(settings_body("broken", namespace, port=server.port, secret="absent"))
    await wait_for_status(kube, namespace, "broken", ready_is("False", "SecretNotFound"))
    assert plugin(control_plane, namespace, "status").returncode == 1
    assert plugin(control_plane, namespace, "status", "missing").returncode == 3


async def test_test_message_once_per_request_across_a_restart(
    operator: OperatorProcess,
    control_plane: Path,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
    local_ca: LocalCA,
) -> None:
    await _ready_resource(kube, kubectl, namespace, server.port, local_ca)
    await wait_for_status(kube, namespace, "main", ready_is("True", "Verified"))
    result = plugin(control_plane, namespace, "test", "main", "--to", "ops@example.com", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    [message] = server.mailbox.wait_for(1)
    assert message.rcpt_tos == ("ops@example.com",)

    # The same request value, seen again by a restarted operator, sends nothing.
    request = TestMessageRequest("fixed-request-1", category="support")
    kubectl.run(
        "annotate",
        "emailsettings",
        "main",
        "-n",
        namespace,
        "--overwrite",
        f"{TEST_MESSAGE_ANNOTATION}={request.encode()}",
    )
    await wait_for_status(
        kube,
        namespace,
        "main",
        lambda b: (
            (b["status"].get("testMessageRequest") or {}).get("id") == request.id
            and b["status"]["testMessageRequest"].get("result") == "Sent"
        ),
        what="the support test message",
    )
    assert server.mailbox.wait_for(2)[-1].rcpt_tos == ("support@example.com",)
    operator.stop()
    operator.start()
    verify = plugin(
        control_plane, namespace, "verify", "main", "--wait"
    )  # the restarted one answers
    assert verify.returncode == 0
    assert len(server.mailbox.messages) == 2


async def test_test_message_when_not_ready_fails_clearly(
    operator: OperatorProcess,
    control_plane: Path,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
    local_ca: LocalCA,
) -> None:
    await _ready_resource(kube, kubectl, namespace, server.port, local_ca, password="wrong")
    await wait_for_status(kube, namespace, "main", ready_is("False", "AuthenticationFailed"))
    result = plugin(
        control_plane, namespace, "test", "main", "--category", "administrative", "--wait"
    )
    assert result.returncode == 1
    assert "not usable" in result.stdout
    assert server.mailbox.messages == []
