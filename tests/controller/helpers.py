"""Helpers to build EmailSettings and wait on their status."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Callable
from typing import Any

from emailsettings.api import API_VERSION, KIND
from emailsettings.devstack.smtp_server import Credentials
from emailsettings.kube import ApiError, KubeClient, NotFoundError, paths

CANARY_PASSWORD = "canary-Pw-7f3a9c1e-do-not-leak"
SMTP_USER = Credentials("mailer@example.com", CANARY_PASSWORD)


def settings_body(
    name: str,
    namespace: str,
    *,
    port: int,
    host: str = "localhost",
    encryption: str = "STARTTLS",
    username: str | None = SMTP_USER.username,
    secret: str | None = "smtp-credentials",
    ca_configmap: str | None = "smtp-ca",
    mode: str = "VerifyAndSave",
    enabled: bool = True,
    **extra_smtp: Any,
) -> dict[str, Any]:
    smtp: dict[str, Any] = {"host": host, "port": port, "encryption": encryption, **extra_smtp}
    if username is not None:
        smtp["username"] = username
        smtp["passwordSecretRef"] = {"name": secret, "key": "password"}
    if ca_configmap is not None:
        smtp["tls"] = {"caBundleRef": {"kind": "ConfigMap", "name": ca_configmap, "key": "ca.crt"}}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "enabled": enabled,
            "smtp": smtp,
            "sender": "Notifier <notifier@example.com>",
            "recipients": {
                "administrative": ["admin@example.com"],
                "error": ["errors@example.com"],
                "support": ["support@example.com"],
            },
            "verification": {"mode": mode},
        },
    }


async def put_secret(
    kube: KubeClient,
    namespace: str,
    name: str = "smtp-credentials",
    password: str = CANARY_PASSWORD,
) -> None:
    body = {
        "metadata": {"name": name},
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }
    try:
        await kube.create(paths.core("secrets", namespace), body)
    except ApiError:  # exists: replace its data
        await kube.patch(paths.secret(namespace, name), {"data": body["data"]})


async def put_ca(kube: KubeClient, namespace: str, pem: str, name: str = "smtp-ca") -> None:
    await kube.create(
        paths.core("configmaps", namespace), {"metadata": {"name": name}, "data": {"ca.crt": pem}}
    )


async def wait_for_status(
    kube: KubeClient,
    namespace: str,
    name: str,
    predicate: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 30,
    what: str = "status",
) -> dict[str, Any]:
    """Poll the object until `predicate(object)`; fail with the last status seen."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            body = await kube.get(paths.emailsettings(namespace, name))
        except NotFoundError:
            body = {}
        if body and predicate(body):
            return body
        await asyncio.sleep(0.1)  # poll interval while waiting on a condition
    raise AssertionError(f"timed out waiting for {what}; last status: {body.get('status')}")


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for entry in body.get("status", {}).get("conditions", []):
        if entry["type"] == kind:
            return dict(entry)
    return {}


def ready_is(status: str, reason: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        ready = condition(body, "Ready")
        current = body.get("status", {}).get("observedGeneration") == body["metadata"]["generation"]
        return (
            current
            and ready.get("status") == status
            and (reason is None or ready.get("reason") == reason)
        )

    return check


def unique(prefix: str = "es") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def prepare_credentials(
    kube: KubeClient, namespace: str, ca_pem: bytes, password: str = CANARY_PASSWORD
) -> None:
    """The Secret (right password unless told otherwise) and the CA ConfigMap tests reference."""
    await put_secret(kube, namespace, password=password)
    await put_ca(kube, namespace, ca_pem.decode())
