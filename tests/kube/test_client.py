"""The shared Kubernetes client against the real API server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from emailsettings.kube import KubeClient, KubeConfig, NotFoundError, follow, paths

pytestmark = pytest.mark.kube


async def test_get_patch_and_not_found(control_plane: Path, namespace: str) -> None:
    async with KubeClient(KubeConfig.load(control_plane)) as client:
        created = await client.create(
            paths.core("configmaps", namespace),
            {"metadata": {"name": "c1"}, "data": {"a": "1"}},
        )
        assert created["data"] == {"a": "1"}
        patched = await client.patch(paths.configmap(namespace, "c1"), {"data": {"a": "2"}})
        assert patched["data"] == {"a": "2"}
        with pytest.raises(NotFoundError):
            await client.get(paths.configmap(namespace, "missing"))


async def test_follow_sees_existing_then_changes(control_plane: Path, namespace: str) -> None:
    async with KubeClient(KubeConfig.load(control_plane)) as client:
        await client.create(paths.core("configmaps", namespace), {"metadata": {"name": "first"}})
        stream = follow(
            client, paths.core("configmaps", namespace), {"fieldSelector": "metadata.name!=x"}
        )
        seen: list[tuple[str, str]] = []

        async def consume() -> None:
            async for event in stream:
                seen.append((event.type, event.object["metadata"]["name"]))
                if event.type == "ADDED" and event.object["metadata"]["name"] == "second":
                    return

        consumer = asyncio.create_task(consume())
        await client.create(paths.core("configmaps", namespace), {"metadata": {"name": "second"}})
        await asyncio.wait_for(consumer, 30)
        names = [name for _, name in seen]
        assert names.index("first") < names.index("second")
