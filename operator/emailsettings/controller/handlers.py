"""The kopf layer, kept thin: raw watch events in, nothing written by kopf itself.

Low-level `on.event` handlers make kopf store no progress annotations, diff bases
or finalizers (see shared KOPF-NOTES): the Reconciler does the work and writes
status once, only when it changed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from emailsettings.api import GROUP, PLURAL, VERSION
from emailsettings.controller.config import OperatorConfig
from emailsettings.controller.metrics import OperatorMetrics
from emailsettings.controller.reconciler import Reconciler, ReconcilerConfig
from emailsettings.controller.verifier import SharedVerifier
from emailsettings.kube import KubeClient, KubeConfig

log = logging.getLogger(__name__)

CONFIG: OperatorConfig = OperatorConfig()  # replaced by main() before kopf starts


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.enabled = False  # our own Events only; never kopf's exception texts
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = 60
    # Scanning namespaces and CRDs needs list/watch on both; only namespace globs need it.
    settings.scanning.disabled = not any(
        char in namespace for namespace in CONFIG.namespaces for char in "*?["
    )
    if CONFIG.peering:
        settings.peering.name = CONFIG.peering
        settings.peering.priority = CONFIG.priority
        settings.peering.mandatory = True
        settings.peering.clusterwide = CONFIG.clusterwide
    else:
        settings.peering.standalone = True
    metrics = OperatorMetrics()
    if CONFIG.metrics_port:
        start_http_server(CONFIG.metrics_port, CONFIG.bind_address, registry=metrics.registry)
    client = KubeClient(KubeConfig.load(CONFIG.kubeconfig), user_agent="emailsettings-operator")
    await client.__aenter__()
    reconciler = Reconciler(
        client,
        SharedVerifier(CONFIG.max_concurrent_verifications),
        metrics,
        ReconcilerConfig(workers=CONFIG.workers),
    )
    memo.client = client
    memo.reconciler = reconciler
    memo.task = asyncio.create_task(reconciler.run(), name="reconciler")


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get("task")
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    client: KubeClient | None = memo.get("client")
    if client is not None:
        await client.close()


# The event handlers are async on purpose: kopf runs sync handlers in a thread pool,
# which costs a thread hop per event and would touch the asyncio work queue from
# another thread.
@kopf.on.event(GROUP, VERSION, PLURAL)
async def emailsettings_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    reconciler: Reconciler = memo.reconciler
    body = event["object"]
    meta = body["metadata"]
    if event.get("type") == "DELETED":
        reconciler.forget(meta["namespace"], meta["name"])
    else:
        reconciler.observe(body)


@kopf.on.event("", "v1", "secrets")
async def secret_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _referenced_object_event("Secret", event, memo)


@kopf.on.event("", "v1", "configmaps")
async def configmap_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _referenced_object_event("ConfigMap", event, memo)


def _referenced_object_event(kind: str, event: kopf.RawEvent, memo: kopf.Memo) -> None:
    reconciler: Reconciler = memo.reconciler
    body = event["object"]
    meta = body["metadata"]
    deleted = event.get("type") == "DELETED"
    reconciler.object_changed(kind, meta["namespace"], meta["name"], None if deleted else body)
