"""The benchmark's environment: the same local stack `make run` and the tests use."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from emailsettings.api import API_VERSION, KIND
from emailsettings.devstack import demo
from emailsettings.devstack.stack import LocalStack
from emailsettings.kube import KubeClient, KubeConfig, paths

CONCURRENCY = 32


def client_for(stack: LocalStack) -> KubeClient:
    assert stack.control_plane is not None
    return KubeClient(KubeConfig.load(stack.control_plane.kubeconfig), limit=CONCURRENCY * 2)


async def bounded(
    job: Callable[[int], Awaitable[Any]], count: int, limit: int = CONCURRENCY
) -> None:
    """Run job(0..count-1) with at most `limit` in flight."""
    gate = asyncio.Semaphore(limit)

    async def run(index: int) -> None:
        async with gate:
            await job(index)

    await asyncio.gather(*(run(index) for index in range(count)))


def secret(name: str, password: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }


def settings(name: str, port: int, secret_name: str, username: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "smtp": {
                "host": "localhost",
                "port": port,
                "encryption": "STARTTLS",
                "username": username,
                "passwordSecretRef": {"name": secret_name, "key": "password"},
                "tls": {"caBundleRef": {"kind": "ConfigMap", "name": "smtp-ca", "key": "ca.crt"}},
            },
            "sender": "Bench <bench@example.com>",
            "recipients": {"administrative": ["admin@example.com"]},
        },
    }


async def prepare_namespace(client: KubeClient, namespace: str, ca_pem: str) -> None:
    await client.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    await client.create(
        paths.core("configmaps", namespace),
        {"metadata": {"name": "smtp-ca"}, "data": {"ca.crt": ca_pem}},
    )


async def install_crd(stack: LocalStack) -> None:
    await asyncio.to_thread(demo.install_crd, stack.kubectl)


_METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


async def request_counts(client: KubeClient) -> dict[tuple[str, str, str], float]:
    """apiserver_request_total summed by (verb, resource, subresource)."""
    assert client._session is not None
    async with client._session.get("/metrics", headers=client._headers()) as response:
        text = await response.text()
    counts: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if not match:
            continue
        labels = dict(part.split("=", 1) for part in match["labels"].split(","))
        verb, resource, sub = (
            labels.get(k, '""').strip('"') for k in ("verb", "resource", "subresource")
        )
        counts[verb, resource, sub] = counts.get((verb, resource, sub), 0) + float(match["value"])
    return counts


def delta(
    after: dict[tuple[str, str, str], float], before: dict[tuple[str, str, str], float]
) -> dict[tuple[str, str, str], float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


def now() -> float:
    return time.monotonic()
