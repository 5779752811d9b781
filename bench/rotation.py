"""Secret rotation: time from changing a referenced Secret until the status reflects it.

    .venv/bin/python -m bench.rotation --rotations 50

Rotations alternate between a wrong and the right password, so each one flips Ready
(AuthenticationFailed <-> Verified); the clock stops when the new state is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
from typing import Any

from bench import stack as benchstack
from bench.common import Report, percentile
from emailsettings.devstack.processes import OperatorProcess
from emailsettings.devstack.stack import LocalStack
from emailsettings.kube import KubeClient, WatchEvent, follow, paths

NAMESPACE = "rotation"


def _ready(body: dict[str, Any]) -> tuple[str, str]:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return condition["status"], condition["reason"]
    return "", ""


async def _until(events: asyncio.Queue[WatchEvent], wanted: tuple[str, str]) -> None:
    while True:
        event = await events.get()
        if _ready(event.object) == wanted:
            return


async def measure(rotations: int) -> Report:
    report = Report("rotation", f".venv/bin/python -m bench.rotation --rotations {rotations}")
    with LocalStack() as local:
        assert local.smtp is not None and local.ca is not None and local.control_plane is not None
        user, password = local.smtp_credentials.username, local.smtp_credentials.password
        await benchstack.install_crd(local)
        async with benchstack.client_for(local) as client:
            await benchstack.prepare_namespace(client, NAMESPACE, local.ca.ca_pem.decode())
            await client.create(paths.core("secrets", NAMESPACE), benchstack.secret("s", password))
            await client.create(
                paths.emailsettings(NAMESPACE), benchstack.settings("r", local.smtp.port, "s", user)
            )
            operator = OperatorProcess(
                local.workdir / "operator.log",
                kubeconfig=local.control_plane.kubeconfig,
                namespaces=(NAMESPACE,),
                extra_env={"EMAILSETTINGS_LOG_LEVEL": "WARNING"},
            )
            with operator:
                events: asyncio.Queue[WatchEvent] = asyncio.Queue()

                async def watch(c: KubeClient) -> None:
                    async for event in follow(c, paths.emailsettings(NAMESPACE)):
                        events.put_nowait(event)

                watcher = asyncio.create_task(watch(client))
                await asyncio.wait_for(_until(events, ("True", "Verified")), 60)
                latencies = []
                for index in range(rotations):
                    right = index % 2 == 1
                    value = password if right else f"wrong-{index}"
                    wanted = ("True", "Verified") if right else ("False", "AuthenticationFailed")
                    started = time.monotonic()
                    await client.patch(
                        paths.secret(NAMESPACE, "s"),
                        {"data": {"password": base64.b64encode(value.encode()).decode()}},
                    )
                    await asyncio.wait_for(_until(events, wanted), 30)
                    latencies.append(time.monotonic() - started)
                watcher.cancel()
    report.add("rotations", rotations)
    report.add("Secret change -> status p50 (s)", percentile(latencies, 0.5), "s")
    report.add("Secret change -> status p99 (s)", percentile(latencies, 0.99), "s")
    report.add("Secret change -> status max (s)", max(latencies), "s")
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rotations", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(measure(args.rotations)).emit()


if __name__ == "__main__":
    main()
