"""Save, disable, rotation, invalid specs, events, shared verification, test messages."""

from __future__ import annotations

import re
from typing import Any

import pytest

from emailsettings.devstack.faulty_smtp import Fault, FaultySMTPServer
from emailsettings.devstack.kubectl import Kubectl
from emailsettings.devstack.netutil import free_port
from emailsettings.devstack.pki import KeyPair, LocalCA
from emailsettings.devstack.processes import OperatorProcess
from emailsettings.devstack.smtp_server import Security, SMTPServer
from emailsettings.kube import KubeClient, paths

from .helpers import (
    SMTP_USER,
    condition,
    prepare_credentials,
    put_secret,
    ready_is,
    settings_body,
    wait_for_status,
)

pytestmark = [pytest.mark.kube, pytest.mark.smtp]


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_plain_save_skips_verification(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
    local_ca: LocalCA,
) -> None:
    await prepare_credentials(kube, namespace, local_ca.ca_pem)
    kubectl.apply(settings_body("saved", namespace, port=server.port, mode="Save"))
    seen = await wait_for_status(kube, namespace, "saved", ready_is("True", "VerificationSkipped"))
    verified = condition(seen, "SMTPVerified")
    assert (verified["status"], verified["reason"]) == ("Unknown", "VerificationSkipped")
    assert condition(seen, "CredentialsResolved")["status"] == "True"
    assert server.mailbox.logins == 0


async def test_disabled_is_ready_without_contacting_the_server(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
) -> None:
    kubectl.apply(settings_body("off", namespace, port=server.port, enabled=False))
    seen = await wait_for_status(kube, namespace, "off", ready_is("True", "Disabled"))
    assert condition(seen, "SMTPVerified")["reason"] == "Disabled"
    assert server.mailbox.logins == 0


async def test_rotation_turns_failing_ready_and_back(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
    local_ca: LocalCA,
) -> None:
    await prepare_credentials(kube, namespace, local_ca.ca_pem, password="wrong-password-1")
    kubectl.apply(settings_body("rot", namespace, port=server.port))
    seen = await wait_for_status(kube, namespace, "rot", ready_is("False", "AuthenticationFailed"))
    assert condition(seen, "Stalled")["status"] == "True"
    await put_secret(kube, namespace)  # the right password
    seen = await wait_for_status(kube, namespace, "rot", ready_is("True", "Verified"), timeout=10)
    secret = await kube.get(paths.secret(namespace, "smtp-credentials"))
    assert seen["status"]["smtp"]["secretResourceVersion"] == secret["metadata"]["resourceVersion"]
    await put_secret(kube, namespace, password="wrong-password-2")
    await wait_for_status(
        kube, namespace, "rot", ready_is("False", "AuthenticationFailed"), timeout=10
    )


async def test_invalid_spec_stalls_without_a_hot_loop(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
) -> None:
    body = settings_body("bad", namespace, port=server.port)
    # The API server cannot judge full address syntax; the operator can.
    body["spec"]["recipients"]["error"] = ["ops@exa_mple..com"]
    kubectl.apply(body)
    seen = await wait_for_status(kube, namespace, "bad", ready_is("False"))
    ready = condition(seen, "Ready")
    assert ready["reason"] in {"InvalidRecipient", "InvalidSpec"}
    assert "spec.recipients.error[0]" in ready["message"]
    assert condition(seen, "Stalled")["status"] == "True"
    assert condition(seen, "Validated")["status"] == "False"
    before = _metric(operator.metrics(), "emailsettings_status_writes_total")
    # Touch an unrelated Secret and re-read: no rewrite, no retry loop.
    await put_secret(kube, namespace)
    again = await kube.get(paths.emailsettings(namespace, "bad"))
    assert again["metadata"]["resourceVersion"] == seen["metadata"]["resourceVersion"]
    assert _metric(operator.metrics(), "emailsettings_status_writes_total") == before


async def test_events_warning_on_failure_normal_on_recovery(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
    local_ca: LocalCA,
) -> None:
    await prepare_credentials(kube, namespace, local_ca.ca_pem, password="wrong")
    kubectl.apply(settings_body("ev", namespace, port=server.port))
    await wait_for_status(kube, namespace, "ev", ready_is("False", "AuthenticationFailed"))
    await put_secret(kube, namespace)
    await wait_for_status(kube, namespace, "ev", ready_is("True", "Verified"))
    events = kubectl.get_json("events", "-n", namespace)["items"]
    kinds = [(e["type"], e["reason"]) for e in events if e["involvedObject"]["name"] == "ev"]
    assert ("Warning", "AuthenticationFailed") in kinds
    assert ("Normal", "Verified") in kinds


async def test_unchanged_resource_is_not_rewritten(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
    local_ca: LocalCA,
) -> None:
    await prepare_credentials(kube, namespace, local_ca.ca_pem)
    kubectl.apply(settings_body("steady", namespace, port=server.port))
    seen = await wait_for_status(kube, namespace, "steady", ready_is("True"))
    # A no-op re-apply and an annotation change produce no status write.
    kubectl.apply(settings_body("steady", namespace, port=server.port))
    kubectl.run("annotate", "emailsettings", "steady", "-n", namespace, "note=hello")
    current = await kube.get(paths.emailsettings(namespace, "steady"))
    assert current["status"] == seen["status"]
    assert server.mailbox.logins == 1


async def test_resources_on_one_server_share_one_verification(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
    local_ca: LocalCA,
) -> None:
    await prepare_credentials(kube, namespace, local_ca.ca_pem)
    before = _metric(operator.metrics(), "emailsettings_shared_verification_hits_total")
    for index in range(5):
        kubectl.apply(settings_body(f"shared-{index}", namespace, port=server.port))
    for index in range(5):
        await wait_for_status(kube, namespace, f"shared-{index}", ready_is("True", "Verified"))
    assert server.mailbox.logins == 1
    assert _metric(operator.metrics(), "emailsettings_shared_verification_hits_total") - before == 4


async def test_injected_starttls_response_is_discarded(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server_cert: KeyPair,
    local_ca: LocalCA,
) -> None:
    with FaultySMTPServer(
        Fault.STARTTLS_INJECTION,
        cert=server_cert,
        username=SMTP_USER.username,
        password=SMTP_USER.password,
    ) as faulty:
        await prepare_credentials(kube, namespace, local_ca.ca_pem)
        kubectl.apply(settings_body("inj", namespace, port=faulty.port))
        await wait_for_status(kube, namespace, "inj", ready_is("True", "Verified"))
    assert re.search(
        rf"localhost:{faulty.port} sent \d+ byte\(s\) before the TLS handshake", operator.logs()
    )


async def test_test_message_sent_once_per_generation(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
    local_ca: LocalCA,
) -> None:
    await prepare_credentials(kube, namespace, local_ca.ca_pem)
    body = settings_body("tm", namespace, port=server.port)
    body["spec"]["verification"]["sendTestMessage"] = True
    kubectl.apply(body)
    seen = await wait_for_status(
        kube,
        namespace,
        "tm",
        lambda b: (b.get("status", {}).get("testMessage") or {}).get("result") == "Sent",
        what="testMessage Sent",
    )
    assert seen["status"]["testMessage"]["generation"] == seen["metadata"]["generation"]
    [message] = server.mailbox.wait_for(1)
    assert message.rcpt_tos == ("admin@example.com",)
    assert "verified" in message.parsed()["Subject"]
    # A new generation sends one more; re-applying the same spec sends none.
    kubectl.apply(body)
    body["spec"]["recipients"]["administrative"] = ["admin@example.com", "admin2@example.com"]
    kubectl.apply(body)
    await wait_for_status(
        kube,
        namespace,
        "tm",
        lambda b: (
            (b.get("status", {}).get("testMessage") or {}).get("generation") == 2
            and b["status"]["testMessage"].get("result") == "Sent"
        ),
        what="second test message",
    )
    assert len(server.mailbox.wait_for(2)) == 2


async def test_slow_verification_reports_reconciling_first(
    operator: OperatorProcess, kube: KubeClient, kubectl: Kubectl, namespace: str, local_ca: LocalCA
) -> None:
    with FaultySMTPServer(Fault.NEVER_GREET) as silent:
        await prepare_credentials(kube, namespace, local_ca.ca_pem)
        kubectl.apply(settings_body("slow", namespace, port=silent.port, connectTimeoutSeconds=6))

        def reconciling(body: dict[str, Any]) -> bool:
            return condition(body, "Reconciling").get("status") == "True"

        seen = await wait_for_status(kube, namespace, "slow", reconciling, what="Reconciling=True")
        ready = condition(seen, "Ready")
        assert (ready["status"], ready["reason"]) == ("Unknown", "Progressing")
        done = await wait_for_status(
            kube, namespace, "slow", ready_is("False", "ConnectionTimeout")
        )
        assert condition(done, "Reconciling") == {}


async def test_transient_failure_retries_until_the_server_appears(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server_cert: KeyPair,
    local_ca: LocalCA,
) -> None:
    port = free_port()
    await prepare_credentials(kube, namespace, local_ca.ca_pem)
    kubectl.apply(settings_body("later", namespace, port=port))
    await wait_for_status(kube, namespace, "later", ready_is("False", "ConnectionRefused"))
    with SMTPServer(Security.STARTTLS, cert=server_cert, credentials=SMTP_USER, port=port):
        # Backoff retries (2 s, 4 s, ...) find it without any change to the resource.
        await wait_for_status(kube, namespace, "later", ready_is("True", "Verified"), timeout=30)


async def test_periodic_reverification_at_the_interval(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server: SMTPServer,
    local_ca: LocalCA,
) -> None:
    await prepare_credentials(kube, namespace, local_ca.ca_pem)
    body = settings_body("periodic", namespace, port=server.port)
    body["spec"]["verification"]["interval"] = "1m"  # the shortest the API allows
    kubectl.apply(body)
    first = await wait_for_status(kube, namespace, "periodic", ready_is("True", "Verified"))
    stamp = first["status"]["smtp"]["verifiedAt"]
    again = await wait_for_status(
        kube,
        namespace,
        "periodic",
        lambda b: b["status"]["smtp"]["verifiedAt"] != stamp,
        timeout=90,
        what="a second verification one interval later",
    )
    assert (
        condition(again, "Ready")["lastTransitionTime"]
        == condition(first, "Ready")["lastTransitionTime"]
    )
    assert server.mailbox.logins == 2
