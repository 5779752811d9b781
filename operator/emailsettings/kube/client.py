"""A small asyncio client for the Kubernetes API: the verbs this product uses, nothing more.

The sidecar must stay within a small memory budget, so this is plain aiohttp
rather than a generated client library.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

import aiohttp

from emailsettings.kube.config import KubeConfig
from emailsettings.kube.errors import ApiError, GoneError

PatchType = Literal["merge", "json", "strategic", "apply"]
_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]


class KubeClient:
    def __init__(
        self, config: KubeConfig, *, user_agent: str = "emailsettings", limit: int = 32
    ) -> None:
        self.config = config
        self._user_agent = user_agent
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(ssl=self.config.ssl_context(), limit=self._limit)
        self._session = aiohttp.ClientSession(
            base_url=self.config.server,
            connector=connector,
            headers={"User-Agent": self._user_agent},
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self.config.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if extra:
            headers.update(extra)
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,  # noqa: ASYNC109 - a per-request bound handed to aiohttp
    ) -> Any:
        if self._session is None:
            raise RuntimeError("KubeClient used outside 'async with'")
        data = None if body is None else json.dumps(body)
        headers = self._headers({"Content-Type": content_type} if data is not None else None)
        async with self._session.request(
            method,
            path,
            params=params,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            payload = await response.json(content_type=None) if response.content_length != 0 else {}
            if response.status >= 400:
                raise ApiError.from_response(response.status, payload)
            return payload

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", path, params=params)
        return result

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", path, body=body)
        return result

    async def delete(self, path: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("DELETE", path)
        return result

    async def patch(
        self,
        path: str,
        body: Any,
        *,
        patch_type: PatchType = "merge",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PATCH", path, body=body, params=params, content_type=_PATCH_CONTENT_TYPES[patch_type]
        )
        return result

    async def watch(
        self, path: str, params: Mapping[str, str] | None = None, *, timeout_seconds: int = 300
    ) -> AsyncIterator[WatchEvent]:
        """One watch stream; ends when the server closes it. Raises GoneError on 410."""
        if self._session is None:
            raise RuntimeError("KubeClient used outside 'async with'")
        query = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
            **(params or {}),
        }
        async with self._session.get(
            path,
            params=query,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=30, sock_read=timeout_seconds + 30
            ),
        ) as response:
            if response.status >= 400:
                raise ApiError.from_response(
                    response.status, await response.json(content_type=None)
                )
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object", {})
                    if status.get("code") == 410:
                        raise GoneError(410, "Expired", status.get("message", ""))
                    raise ApiError.from_response(int(status.get("code", 500)), status)
                yield WatchEvent(event["type"], event["object"])
