"""Every failure reason, produced by a really failing server or a really missing object."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from emailsettings.devstack.faulty_smtp import Fault, FaultySMTPServer
from emailsettings.devstack.kubectl import Kubectl
from emailsettings.devstack.netutil import free_port
from emailsettings.devstack.pki import KeyPair, LocalCA
from emailsettings.devstack.processes import OperatorProcess
from emailsettings.devstack.smtp_server import Security, SMTPServer
from emailsettings.kube import KubeClient

from .helpers import (
    CANARY_PASSWORD,
    SMTP_USER,
    condition,
    put_ca,
    put_secret,
    ready_is,
    settings_body,
    wait_for_status,
)

pytestmark = [pytest.mark.kube, pytest.mark.smtp]


@dataclass(frozen=True)
class Certs:
    good: KeyPair
    expired: KeyPair
    wrong_host: KeyPair


@dataclass(frozen=True)
class Case:
    reason: str
    # Starts the server (or nothing) and returns (port, extra spec fields).
    setup: Callable[[ExitStack, Certs], tuple[int, dict[str, Any]]]
    stalled: bool
    mentions: str = ""


def _serve(stack: ExitStack, server: AbstractContextManager[Any]) -> Any:
    return stack.enter_context(server)


def _faulty(
    fault: Fault, **kwargs: Any
) -> Callable[[ExitStack, Certs], tuple[int, dict[str, Any]]]:
    def setup(stack: ExitStack, certs: Certs) -> tuple[int, dict[str, Any]]:
        server = _serve(
            stack,
            FaultySMTPServer(
                fault,
                cert=certs.good,
                username=SMTP_USER.username,
                password=SMTP_USER.password,
                **kwargs,
            ),
        )
        return server.port, {"connectTimeoutSeconds": 1}

    return setup


def _server_with(
    security: Security, which: str, **kwargs: Any
) -> Callable[[ExitStack, Certs], tuple[int, dict[str, Any]]]:
    def setup(stack: ExitStack, certs: Certs) -> tuple[int, dict[str, Any]]:
        cert = getattr(certs, which) if security is not Security.PLAIN else None
        server = _serve(stack, SMTPServer(security, cert=cert, credentials=SMTP_USER, **kwargs))
        return server.port, {}

    return setup


def _nothing_listening(stack: ExitStack, certs: Certs) -> tuple[int, dict[str, Any]]:
    return free_port(), {}


def _dns(stack: ExitStack, certs: Certs) -> tuple[int, dict[str, Any]]:
    return 587, {"host": "smtp.does-not-exist.invalid"}


def _implicit_tls_to_plain(stack: ExitStack, certs: Certs) -> tuple[int, dict[str, Any]]:
    server = _serve(stack, SMTPServer(Security.PLAIN))
    return server.port, {"encryption": "TLS", "connectTimeoutSeconds": 2}


def _untrusted(stack: ExitStack, certs: Certs) -> tuple[int, dict[str, Any]]:
    server = _serve(stack, SMTPServer(Security.STARTTLS, cert=certs.good, credentials=SMTP_USER))
    return server.port, {"no_ca": True}


CASES = [
    Case("ConnectionRefused", _nothing_listening, stalled=False, mentions="localhost:"),
    Case("DNSLookupFailed", _dns, stalled=False, mentions="smtp.does-not-exist.invalid"),
    Case("ConnectionTimeout", _faulty(Fault.NEVER_GREET), stalled=False),
    Case("ConnectionLost", _faulty(Fault.DROP_AFTER, step="MAIL"), stalled=False),
    Case(
        "ServerUnavailable",
        _faulty(Fault.REPLY_AT, step="GREETING", reply="421 4.3.2 busy"),
        stalled=False,
    ),
    Case("TLSHandshakeFailed", _implicit_tls_to_plain, stalled=True),
    Case("CertificateUntrusted", _untrusted, stalled=True),
    Case("CertificateExpired", _server_with(Security.STARTTLS, "expired"), stalled=True),
    Case(
        "CertificateHostnameMismatch", _server_with(Security.STARTTLS, "wrong_host"), stalled=True
    ),
    Case("StartTLSNotOffered", _faulty(Fault.NO_STARTTLS), stalled=True),
    Case(
        "AuthenticationFailed",
        _faulty(Fault.REPLY_AT, step="AUTH", reply="535 5.7.8 Authentication credentials invalid"),
        stalled=True,
    ),
    Case(
        "SenderRejected",
        _server_with(Security.STARTTLS, "good", reject_senders={"notifier@example.com"}),
        stalled=True,
    ),
    Case(
        "RecipientRejected",
        _server_with(Security.STARTTLS, "good", reject_recipients={"errors@example.com"}),
        stalled=True,
        mentions="errors@example.com",
    ),
]


@pytest.fixture
def certs(server_cert: KeyPair, expired_cert: KeyPair, wrong_host_cert: KeyPair) -> Certs:
    return Certs(server_cert, expired_cert, wrong_host_cert)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as servers:
        yield servers


@pytest.mark.parametrize("case", CASES, ids=[c.reason for c in CASES])
async def test_failure_reason(
    case: Case,
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    certs: Certs,
    local_ca: LocalCA,
    stack: ExitStack,
) -> None:
    port, extra = case.setup(stack, certs)
    no_ca = extra.pop("no_ca", False)
    host = extra.pop("host", "localhost")
    await put_secret(kube, namespace)
    await put_ca(kube, namespace, local_ca.ca_pem.decode())
    body = settings_body(
        "subject",
        namespace,
        port=port,
        host=host,
        ca_configmap=None if no_ca else "smtp-ca",
        **extra,
    )
    kubectl.apply(body)
    seen = await wait_for_status(
        kube,
        namespace,
        "subject",
        ready_is("False", case.reason),
        what=f"Ready=False {case.reason}",
    )
    verified = condition(seen, "SMTPVerified")
    assert verified["status"] == "False"
    assert verified["reason"] == case.reason
    assert case.mentions in verified["message"]
    assert CANARY_PASSWORD not in verified["message"]
    stalled = condition(seen, "Stalled")
    assert (stalled.get("status") == "True") is case.stalled


async def test_secret_missing_then_created(
    operator: OperatorProcess,
    kube: KubeClient,
    kubectl: Kubectl,
    namespace: str,
    server_cert: KeyPair,
    local_ca: LocalCA,
) -> None:
    with SMTPServer(Security.STARTTLS, cert=server_cert, credentials=SMTP_USER) as server:
        await put_ca(kube, namespace, local_ca.ca_pem.decode())
        kubectl.apply(settings_body("s", namespace, port=server.port))
        seen = await wait_for_status(kube, namespace, "s", ready_is("False", "SecretNotFound"))
        assert condition(seen, "CredentialsResolved")["reason"] == "SecretNotFound"
        assert "spec.smtp.passwordSecretRef" in condition(seen, "Ready")["message"]
        await put_secret(kube, namespace)
        await wait_for_status(kube, namespace, "s", ready_is("True", "Verified"), timeout=10)


async def test_secret_key_missing(
    operator: OperatorProcess, kube: KubeClient, kubectl: Kubectl, namespace: str
) -> None:
    await kube.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "smtp-credentials"}, "stringData": {"other": "x"}},
    )
    kubectl.apply(settings_body("k", namespace, port=free_port(), ca_configmap=None))
    seen = await wait_for_status(kube, namespace, "k", ready_is("False", "SecretKeyMissing"))
    assert "'password'" in condition(seen, "Ready")["message"]


async def test_ca_bundle_missing(
    operator: OperatorProcess, kube: KubeClient, kubectl: Kubectl, namespace: str
) -> None:
    await put_secret(kube, namespace)
    kubectl.apply(settings_body("c", namespace, port=free_port()))
    await wait_for_status(kube, namespace, "c", ready_is("False", "CABundleNotFound"))
