"""Kubernetes Events on EmailSettings: Warning on failures, Normal on recovery."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from emailsettings.api import API_VERSION, KIND
from emailsettings.kube import ApiError, KubeClient, paths

log = logging.getLogger(__name__)
COMPONENT = "emailsettings-operator"


class EventRecorder:
    def __init__(self, client: KubeClient) -> None:
        self._client = client

    async def record(
        self, body: Mapping[str, Any], *, warning: bool, reason: str, message: str
    ) -> None:
        meta = body["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": "Warning" if warning else "Normal",
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._client.create(paths.events(meta["namespace"]), event)
        except ApiError as error:
            # Events are best effort; the status already says it all.
            log.warning("could not post event %s: %s", reason, error.reason)
