"""List-then-watch that survives expired resourceVersions and lost connections."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

import aiohttp

from emailsettings.kube.client import KubeClient, WatchEvent
from emailsettings.kube.errors import ApiError, GoneError

log = logging.getLogger(__name__)

RELISTED = "RELISTED"  # synthetic: a fresh list replaced everything seen before


async def follow(
    client: KubeClient,
    collection_path: str,
    params: Mapping[str, str] | None = None,
    *,
    max_backoff: float = 30.0,
) -> AsyncIterator[WatchEvent]:
    """Yield the current objects as ADDED, then changes, forever.

    After a relist (410 or reconnect), a RELISTED event carries
    {"items": [...]} so that consumers can drop objects that vanished meanwhile.
    """
    backoff = 0.5
    first = True
    while True:
        try:
            listing = await client.get(collection_path, params)
            items = listing.get("items", [])
            if not first:
                yield WatchEvent(RELISTED, {"items": items})
            first = False
            for item in items:
                yield WatchEvent("ADDED", item)
            version = listing["metadata"]["resourceVersion"]
            backoff = 0.5
            while True:
                async for event in client.watch(
                    collection_path, {**(params or {}), "resourceVersion": version}
                ):
                    version = event.object.get("metadata", {}).get("resourceVersion", version)
                    if event.type != "BOOKMARK":
                        yield event
        except GoneError:
            log.debug("watch of %s expired; listing again", collection_path)
        except (aiohttp.ClientError, TimeoutError, ApiError, ConnectionError) as error:
            log.warning(
                "watch of %s interrupted (%s); retrying in %.1fs",
                collection_path,
                type(error).__name__,
                backoff,
            )
            await asyncio.sleep(backoff)  # backoff between reconnects, not a test wait
            backoff = min(backoff * 2, max_backoff)
