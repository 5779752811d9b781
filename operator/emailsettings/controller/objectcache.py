"""Referenced Secrets and ConfigMaps, kept fresh by the watch, fetched on a miss.

Only objects some EmailSettings references are kept, so memory follows the number of
references, not the number of Secrets in the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emailsettings.kube import KubeClient, NotFoundError, paths

ObjectKey = tuple[str, str, str]  # (kind, namespace, name); kind is "Secret" or "ConfigMap"


class ObjectCache:
    def __init__(self, client: KubeClient) -> None:
        self._client = client
        self._objects: dict[ObjectKey, dict[str, Any] | None] = {}  # None: known absent

    def update(self, key: ObjectKey, body: Mapping[str, Any] | None) -> bool:
        """Record a watch event; True when the content changed."""
        slim = _slim(body) if body is not None else None
        changed = self._objects.get(key, "unset") != slim
        self._objects[key] = slim
        return changed

    def drop(self, key: ObjectKey) -> None:
        self._objects.pop(key, None)

    async def get(self, key: ObjectKey) -> dict[str, Any] | None:
        if key in self._objects:
            return self._objects[key]
        kind, namespace, name = key
        path = (
            paths.secret(namespace, name) if kind == "Secret" else paths.configmap(namespace, name)
        )
        try:
            body: dict[str, Any] | None = _slim(await self._client.get(path))
        except NotFoundError:
            body = None
        self._objects[key] = body
        return body


def _slim(body: Mapping[str, Any]) -> dict[str, Any]:
    # Keep only what reconcile reads; managedFields and the like are dead weight.
    return {
        "resourceVersion": body.get("metadata", {}).get("resourceVersion"),
        "data": dict(body.get("data") or {}),
    }
