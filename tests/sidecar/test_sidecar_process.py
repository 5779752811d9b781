"""The shipped entry point as a real process: SIGKILL mid-delivery loses nothing."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import pytest

from emailsettings.devstack.smtp_server import SMTPServer
from emailsettings.sidecar.compose import message_id

from .helpers import (
    CANARY_PASSWORD,
    Mounts,
    SettingsObject,
    SidecarProcess,
    eventually,
    get_json,
    process_env,
    spec_for,
)

pytestmark = [pytest.mark.kube, pytest.mark.smtp]

TOTAL = 100
RSS_BUDGET = 60 * 1024 * 1024


def post_sync(base: str, payload: Mapping[str, object]) -> int:
    request = urllib.request.Request(
        f"{base}/v1/notifications",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


async def test_sigkill_mid_delivery_then_restart_delivers_all(
    settings: SettingsObject,
    smtp: SMTPServer,
    mounts: Mounts,
    control_plane: Path,
    sc_namespace: str,
    tmp_path: Path,
) -> None:
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=True)
    spool_dir = tmp_path / "spool"

    def new_process(n: int) -> SidecarProcess:
        env = process_env(
            kubeconfig=control_plane,
            namespace=sc_namespace,
            spool_dir=spool_dir,
            mounts=mounts,
            # Slow enough that the kill lands mid-delivery.
            EMAILSETTINGS_RATE_PER_SECOND="60",
            EMAILSETTINGS_RATE_BURST="1",
            EMAILSETTINGS_BATCH_SIZE="20",
            PYTHONOPTIMIZE="2",
        )
        return SidecarProcess(env, tmp_path / f"sidecar-{n}.log")

    first = new_process(1)
    await asyncio.to_thread(first.start)
    try:
        for n in range(TOTAL):
            payload = {
                "category": "administrative",
                "event": "agent-out-of-date",
                "fields": {"agentName": f"agent-{n}"},
                "idempotencyKey": f"k-{n}",
            }
            assert await asyncio.to_thread(post_sync, first.url, payload) == 202
        # Every 202 was durable before it was sent; now kill while delivery is under way.
        await asyncio.to_thread(smtp.mailbox.wait_for, 10)
        await asyncio.to_thread(first.kill)
    finally:
        first.stop()
    delivered_before = len(smtp.mailbox.messages)
    assert delivered_before < TOTAL, "delivery finished before the kill; slow it down"

    second = new_process(2)
    await asyncio.to_thread(second.start)
    try:
        messages = await asyncio.to_thread(smtp.mailbox.wait_for, TOTAL, 60)

        async with aiohttp.ClientSession() as http:

            async def all_delivered() -> bool:
                _, status = await get_json(http, f"{second.url}/v1/status")
                return bool(status["spool"]["pending"] == 0)

            await eventually(all_delivered, timeout=30, what="an empty spool")
        rss = second.rss_bytes()
    finally:
        assert second.stop() == 0  # SIGTERM: a clean exit
    messages = smtp.mailbox.messages
    expected = {message_id(f"k-{n}", "example.com") for n in range(TOTAL)}
    seen = Counter(str(m.parsed()["Message-ID"]) for m in messages)
    assert set(seen) == expected  # every notification arrived
    repeats = {mid: count for mid, count in seen.items() if count > 1}
    # At most the message in flight at the kill is repeated, with the same Message-ID.
    assert sum(repeats.values()) - len(repeats) <= 1, repeats
    print(f"sidecar RSS after {TOTAL} deliveries: {rss / 2**20:.1f} MiB")
    assert rss < RSS_BUDGET, f"RSS {rss / 2**20:.1f} MiB over the sidecar budget"
    for log in (first.logs(), second.logs()):
        assert CANARY_PASSWORD not in log
