"""Reconcile at scale: N EmailSettings until all Ready, against a tight-client floor.

.venv/bin/python -m bench.reconcile --n 100
.venv/bin/python -m bench.reconcile --n 1000 --servers 4
"""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import ExitStack
from typing import Any

from bench import stack as benchstack
from bench.common import Report, cpu_seconds, percentile, rss_mb
from emailsettings.devstack.processes import OperatorProcess
from emailsettings.devstack.smtp_server import Security, SMTPServer
from emailsettings.devstack.stack import LocalStack
from emailsettings.kube import KubeClient, follow, paths


def _ready(body: dict[str, Any]) -> bool:
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"].get("generation"):
        return False
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )


async def floor(
    client: KubeClient, n: int, port: int, user: str, ca_pem: str, *, namespace: str
) -> float:
    """The same creates and N status patches, issued directly: the fastest possible."""
    await benchstack.prepare_namespace(client, namespace, ca_pem)
    started = time.monotonic()
    await benchstack.bounded(
        lambda i: client.create(paths.core("secrets", namespace), benchstack.secret(f"s{i}", "x")),
        n,
    )
    await benchstack.bounded(
        lambda i: client.create(
            paths.emailsettings(namespace), benchstack.settings(f"r{i}", port, f"s{i}", user)
        ),
        n,
    )
    status = {
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Verified",
                    "message": "floor",
                    "observedGeneration": 1,
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
    }
    await benchstack.bounded(
        lambda i: client.patch(paths.emailsettings_status(namespace, f"r{i}"), status), n
    )
    return time.monotonic() - started


async def measure(n: int, servers: int, rate: float) -> Report:
    paced = f" --rate {rate:g}" if rate else ""
    report = Report(
        f"reconcile-n{n}-servers{servers}" + (f"-rate{rate:g}" if rate else ""),
        f".venv/bin/python -m bench.reconcile --n {n} --servers {servers}{paced}",
    )
    with LocalStack() as local, ExitStack() as extra:
        assert local.smtp is not None and local.ca is not None and local.control_plane is not None
        cert = local.ca.issue("bench-smtp", "localhost", "127.0.0.1")
        smtp = [local.smtp] + [
            extra.enter_context(
                SMTPServer(Security.STARTTLS, cert=cert, credentials=local.smtp_credentials)
            )
            for _ in range(servers - 1)
        ]
        user, password = local.smtp_credentials.username, local.smtp_credentials.password
        ca_pem = local.ca.ca_pem.decode()
        await benchstack.install_crd(local)
        async with benchstack.client_for(local) as client:
            # Twice, keeping the faster: the first run also warms the API server up.
            floor_seconds = min(
                [
                    await floor(client, n, smtp[0].port, user, ca_pem, namespace=f"floor-{k}")
                    for k in (1, 2)
                ]
            )

            namespace = "bench"
            await benchstack.prepare_namespace(client, namespace, ca_pem)
            operator = OperatorProcess(
                local.workdir / "operator.log",
                kubeconfig=local.control_plane.kubeconfig,
                namespaces=(namespace,),
                extra_env={"EMAILSETTINGS_LOG_LEVEL": "WARNING"},
            )
            operator.start()
            pid = operator.pid
            created: dict[str, float] = {}
            ready_at: dict[str, float] = {}
            all_ready = asyncio.Event()

            async def watch() -> None:
                async for event in follow(client, paths.emailsettings(namespace)):
                    name = event.object.get("metadata", {}).get("name")
                    if name and name not in ready_at and _ready(event.object):
                        ready_at[name] = time.monotonic()
                        if len(ready_at) == n:
                            all_ready.set()

            watcher = asyncio.create_task(watch())
            before = await benchstack.request_counts(client)
            cpu_at_start = cpu_seconds(pid)
            started = time.monotonic()
            await benchstack.bounded(
                lambda i: client.create(
                    paths.core("secrets", namespace), benchstack.secret(f"s{i}", password)
                ),
                n,
            )

            create_started = time.monotonic()

            async def create(i: int) -> None:
                if rate:  # paced: a steady arrival rate instead of a burst
                    await asyncio.sleep(max(0.0, create_started + i / rate - time.monotonic()))
                body = benchstack.settings(f"r{i}", smtp[i % servers].port, f"s{i}", user)
                await client.create(paths.emailsettings(namespace), body)
                created[f"r{i}"] = time.monotonic()

            await benchstack.bounded(create, n, limit=n if rate else benchstack.CONCURRENCY)
            await asyncio.wait_for(all_ready.wait(), timeout=max(120, n * 0.5))
            total = max(ready_at.values()) - started
            busy_cpu = cpu_seconds(pid) - cpu_at_start
            latencies = [ready_at[name] - created[name] for name in created]
            after_ready = await benchstack.request_counts(client)

            # Idle: nothing changes for 10 s; measure CPU, RSS and writes.
            cpu_before = cpu_seconds(pid)
            await asyncio.sleep(10)  # an idle window to measure, not a wait for a condition
            idle_cpu = (cpu_seconds(pid) - cpu_before) / 10
            idle = benchstack.delta(await benchstack.request_counts(client), after_ready)
            rss = rss_mb(pid)

            # Restart: a new operator process must find nothing to write and log into nothing.
            logins_before_restart = sum(s.mailbox.logins for s in smtp)
            operator.stop()
            restart_before = await benchstack.request_counts(client)
            operator = OperatorProcess(
                local.workdir / "operator2.log",
                kubeconfig=local.control_plane.kubeconfig,
                namespaces=(namespace,),
                extra_env={"EMAILSETTINGS_LOG_LEVEL": "WARNING"},
            )
            operator.start()
            await asyncio.sleep(10)  # let it list and reconcile everything, then count
            restart = benchstack.delta(await benchstack.request_counts(client), restart_before)
            operator.stop()
            watcher.cancel()

            cost = benchstack.delta(after_ready, before)
            operator_requests = sum(
                v
                for (verb, resource, sub), v in cost.items()
                if (verb, resource, sub)
                in {
                    ("PATCH", "emailsettings", "status"),
                    ("GET", "secrets", ""),
                    ("GET", "configmaps", ""),
                    ("POST", "events", ""),
                }
            )
            patches = cost.get(("PATCH", "emailsettings", "status"), 0)

        report.add("resources", n)
        report.add("SMTP servers", servers)
        report.add("creation", f"paced at {rate:g}/s" if rate else "burst, 32 concurrent")
        report.add("all Ready (s)", total, "s")
        report.add("floor: same creates + N direct status patches (s)", floor_seconds, "s")
        report.add("ratio to floor", total / floor_seconds, "x")
        report.add("create->Ready p50 (s)", percentile(latencies, 0.5), "s")
        report.add("create->Ready p99 (s)", percentile(latencies, 0.99), "s")
        report.add("operator API requests per resource", operator_requests / n)
        report.add("status patches per resource", patches / n)
        report.add(
            "status patches while idle (10 s)", idle.get(("PATCH", "emailsettings", "status"), 0)
        )
        report.add(
            "status patches after a restart", restart.get(("PATCH", "emailsettings", "status"), 0)
        )
        report.add("SMTP logins (all resources)", logins_before_restart)
        report.add(
            "SMTP logins caused by the restart",
            sum(s.mailbox.logins for s in smtp) - logins_before_restart,
        )
        report.add("operator CPU per resource while converging (ms)", busy_cpu / n * 1000, "ms")
        report.add("operator RSS idle (MB)", rss, "MB")
        report.add("operator CPU idle (cores)", idle_cpu)
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="create resources at this rate per second (0: burst)",
    )
    args = parser.parse_args()
    asyncio.run(measure(args.n, args.servers, args.rate)).emit()


if __name__ == "__main__":
    main()
