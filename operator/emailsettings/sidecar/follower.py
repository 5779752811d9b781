"""Follows one named EmailSettings with list + watch, and keeps its gate current.

It lists with `fieldSelector=metadata.name=<name>` and watches from the list's
resourceVersion, so RBAC can be limited to that one object (`resourceNames`)
with the verbs get, list and watch. A watch that expires (410) or breaks is
resumed by listing again; while the API cannot be reached, the last settings
read stay in force and the error is shown on /v1/status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import aiohttp

from emailsettings.kube import ApiError, GoneError, WatchEvent, paths
from emailsettings.sidecar.settings_gate import Gate, GateReason, evaluate, waiting

log = logging.getLogger(__name__)


class WatchClient(Protocol):
    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]: ...

    def watch(
        self, path: str, params: Mapping[str, str] | None = None, *, timeout_seconds: int = 300
    ) -> AsyncIterator[WatchEvent]: ...


class SettingsFollower:
    def __init__(
        self,
        client: WatchClient,
        namespace: str,
        name: str,
        *,
        on_change: Callable[[Gate], None] | None = None,
        max_backoff: float = 30.0,
        watch_timeout: int = 300,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.on_change = on_change
        self.max_backoff = max_backoff
        self.watch_timeout = watch_timeout
        self.gate: Gate = waiting()
        self.last_error: str | None = None
        self.synced = asyncio.Event()  # set once the object (or its absence) was read
        self._read_once = False

    @property
    def what(self) -> str:
        return f"EmailSettings {self.namespace}/{self.name}"

    async def run(self) -> None:
        collection = paths.emailsettings(self.namespace)
        selector = {"fieldSelector": f"metadata.name={self.name}"}
        backoff = 0.5
        while True:
            try:
                listing = await self.client.get(collection, selector)
                items = listing.get("items") or []
                self._publish(items[0] if items else None)
                version = str((listing.get("metadata") or {}).get("resourceVersion", ""))
                self.last_error = None
                backoff = 0.5
                while True:
                    async for event in self.client.watch(
                        collection,
                        {**selector, "resourceVersion": version},
                        timeout_seconds=self.watch_timeout,
                    ):
                        meta = event.object.get("metadata") or {}
                        version = str(meta.get("resourceVersion") or version)
                        if event.type in {"ADDED", "MODIFIED"} and meta.get("name") == self.name:
                            self._publish(event.object)
                        elif event.type == "DELETED" and meta.get("name") == self.name:
                            self._publish(None)
            except GoneError:
                log.debug("watch of %s expired; listing again", self.what)
                continue
            except ApiError as error:
                self._failed(f"the API refused to list/watch {self.what}: {error}")
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                self._failed(f"cannot reach the API to follow {self.what}: {type(error).__name__}")
            await asyncio.sleep(backoff)  # reconnect backoff
            backoff = min(backoff * 2, self.max_backoff)

    def _failed(self, message: str) -> None:
        if message != self.last_error:
            log.warning("%s", message)
        self.last_error = message
        if not self._read_once:
            self._set(Gate(may_send=False, reason=GateReason.UNREADABLE, message=message))

    def _publish(self, obj: Mapping[str, Any] | None) -> None:
        self._read_once = True
        self._set(evaluate(obj, what=self.what))
        self.synced.set()

    def _set(self, gate: Gate) -> None:
        previous = self.gate
        self.gate = gate
        same = (
            previous.reason == gate.reason
            and previous.message == gate.message
            and previous.resource_version == gate.resource_version
        )
        if same:
            return
        if gate.may_send:
            log.info("%s is usable (generation %s); delivering", self.what, gate.generation)
        else:
            log.info("%s: delivery held: %s: %s", self.what, gate.reason, gate.message)
        if self.on_change is not None:
            self.on_change(gate)
