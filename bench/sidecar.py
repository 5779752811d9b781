"""Sidecar: HTTP intake with durability on, delivery to a fast SMTP sink, and its memory.

    .venv/bin/python -m bench.sidecar --n 5000 --concurrency 32

One run, on the same machine and the same `smtp-sink`:

1. the sidecar (the real entry point, a child process, `PYTHONOPTIMIZE=2` as in the
   documented pod) follows an EmailSettings that points at `smtp-sink` (encryption
   None, no AUTH) and is not Ready yet, so delivery is held; RSS at idle;
2. intake: N `POST /v1/notifications` from `--concurrency` clients; each 202 means
   the row is committed (SQLite WAL, synchronous=FULL); accepted/s and accept
   latency p50/p99; RSS under load;
3. delivery: the status is set Ready by hand (as the operator would) and the N
   queued notifications drain to the sink over the sidecar's one connection;
   delivered/s, counted by the sink;
4. mixed: N more notifications posted while delivery runs; accepted/s, latency and
   end-to-end delivered/s (first POST to the last message at the sink);
5. floor: Postfix's `smtp-source` sending the same message (composed by the sidecar's
   own code, same size) to the same sink over one reused session (the sidecar's
   delivery concurrency), and over `--concurrency` sessions for context.

The sidecar runs with a rate limit high enough not to pace (the shipped default is
5 messages/s per server, on purpose); everything else is default.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp

from bench import postfix
from bench import stack as benchstack
from bench.common import Report, cpu_seconds, percentile, rss_mb
from emailsettings.api import API_VERSION, KIND
from emailsettings.devstack.processes import SidecarProcess
from emailsettings.devstack.stack import LocalStack
from emailsettings.kube import KubeClient, paths
from emailsettings.sidecar.compose import Envelope, compose, message_id
from emailsettings.sidecar.templates import RenderContext, Renderer
from emailsettings.smtp import Encryption, Endpoint, open_session

NAMESPACE = "bench-sidecar"
SETTINGS = "default"
SENDER = "bench@example.com"
RECIPIENT = "admin@example.com"
EVENT = "agent-out-of-date"


def payload(index: int) -> dict[str, Any]:
    # Distinct agents: nothing collapses under storm control (which stays on, as shipped).
    return {
        "category": "administrative",
        "event": EVENT,
        "fields": {"agentName": f"agent-{index}", "agentVersion": "1.2", "requiredVersion": "1.4"},
    }


def representative_message(index: int = 0, renderer: Renderer | None = None) -> bytes:
    """The bytes the sidecar sends for payload(index), built by the sidecar's own code."""
    fields = payload(index)["fields"]
    now = time.time()
    renderer = renderer or Renderer()
    return compose(
        Envelope(
            sender_address=SENDER,
            sender_name="Bench",
            recipients=[RECIPIENT],
            message_id=message_id(f"{index:032x}", "example.com"),
            category="administrative",
            event=EVENT,
            date=dt.datetime.fromtimestamp(now, dt.UTC),
        ),
        renderer.render(
            RenderContext(
                category="administrative",
                event=EVENT,
                fields=fields,
                subject=None,
                body=None,
                occurrences=1,
                first_at=now,
                last_at=now,
            )
        ),
    )


def source_file(directory: Path, data: bytes) -> Path:
    """smtp-source -F adds CRLF after each line: give it LF lines."""
    path = directory / "message.eml"
    path.write_bytes(data.replace(b"\r\n", b"\n"))
    return path


def spec(sink_port: int) -> dict[str, Any]:
    return {
        "enabled": True,
        "smtp": {"host": "127.0.0.1", "port": sink_port, "encryption": "None"},
        "sender": f"Bench <{SENDER}>",
        "recipients": {"administrative": [RECIPIENT]},
        "verification": {"mode": "Save"},
    }


async def create_settings(client: KubeClient, sink_port: int) -> None:
    await client.create("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    await client.create(
        paths.emailsettings(NAMESPACE),
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": SETTINGS},
            "spec": spec(sink_port),
        },
    )


async def set_ready(client: KubeClient) -> None:
    """What the operator writes after a successful verification (no operator runs here)."""
    body = await client.get(paths.emailsettings(NAMESPACE, SETTINGS))
    generation = body["metadata"]["generation"]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Verified",
                "message": "set by the benchmark",
                "observedGeneration": generation,
                "lastTransitionTime": now,
            }
        ],
    }
    await client.patch(paths.emailsettings_status(NAMESPACE, SETTINGS), {"status": status})


@dataclass
class RSSSampler:
    """The sidecar's resident memory, sampled every 50 ms while a phase runs."""

    pid: int
    samples: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.samples.append(rss_mb(self.pid))
            await asyncio.sleep(0.05)  # sampling period

    def __enter__(self) -> Self:
        self.samples = []
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.samples.append(rss_mb(self.pid))

    @property
    def peak(self) -> float:
        return max(self.samples)


@dataclass(frozen=True)
class Intake:
    seconds: float
    latencies: list[float]
    refused: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def ms(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1000


async def intake(url: str, first: int, count: int, concurrency: int) -> Intake:
    """POST `count` notifications, at most `concurrency` in flight; bounded in time."""
    latencies: list[float] = []
    refused = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def post(index: int) -> None:
            nonlocal refused
            started = time.perf_counter()
            async with http.post(f"{url}/v1/notifications", json=payload(first + index)) as answer:
                await answer.read()
                if answer.status != 202:
                    refused += 1
                    return
            latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.wait_for(
            benchstack.bounded(post, count, concurrency), timeout=max(60, count / 20)
        )
        seconds = time.monotonic() - started
    return Intake(seconds, latencies, refused)


async def spool_figures(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/v1/status") as answer:
        body: dict[str, Any] = await answer.json()
    return body


async def wait_sink(sink: postfix.Sink, count: int, limit: float) -> float:
    """Seconds until the sink has `count` messages; raises on timeout."""
    started = time.monotonic()
    if not await asyncio.to_thread(sink.wait_for, count, limit):
        raise TimeoutError(f"the sink has {sink.messages} of {count} messages after {limit}s")
    return time.monotonic() - started


def compose_ms(count: int = 500) -> float:
    """Milliseconds to render and compose one message with the sidecar's code, warm."""
    renderer = Renderer()
    for index in range(50):
        representative_message(index, renderer)
    started = time.perf_counter()
    for index in range(count):
        representative_message(index, renderer)
    return (time.perf_counter() - started) / count * 1000


async def python_smtp_floor(port: int, data: bytes, count: int, batch: int = 50) -> float:
    """The sidecar's own SMTP layer sending pre-built bytes, `batch` per connection."""
    endpoint = Endpoint("127.0.0.1", port, Encryption.NONE)
    started = time.monotonic()
    sent = 0
    while sent < count:
        async with open_session(endpoint) as session:
            for _ in range(min(batch, count - sent)):
                await session.send(SENDER, [RECIPIENT], data)
                sent += 1
    return count / (time.monotonic() - started)


def fsync_floor(directory: Path, commits: int = 200) -> float:
    """One-row SQLite commits per second (WAL, synchronous=FULL) on the spool's disk."""
    path = directory / "fsync-probe.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (x BLOB)")
        started = time.perf_counter()
        for _ in range(commits):
            conn.execute("INSERT INTO t VALUES (zeroblob(600))")
        return commits / (time.perf_counter() - started)
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


async def settle(pid: int, seconds: float = 3.0) -> float:
    """RSS after a quiet moment (a window to measure, not a wait for a condition)."""
    await asyncio.sleep(seconds)
    return rss_mb(pid)


def cpu_delta(pid: int) -> Callable[[], float]:
    before = cpu_seconds(pid)
    return lambda: cpu_seconds(pid) - before


async def measure(n: int, concurrency: int) -> Report:
    report = Report(
        "sidecar", f".venv/bin/python -m bench.sidecar --n {n} --concurrency {concurrency}"
    )
    report.data["load average at start"] = os.getloadavg()
    data = representative_message()
    with LocalStack() as local, postfix.Sink() as sink:
        assert local.control_plane is not None
        await benchstack.install_crd(local)
        workdir = local.workdir
        async with benchstack.client_for(local) as client:
            await create_settings(client, sink.port)
            (workdir / "secret").mkdir()
            sidecar = SidecarProcess(
                workdir / "sidecar.log",
                kubeconfig=local.control_plane.kubeconfig,
                namespace=NAMESPACE,
                settings_name=SETTINGS,
                spool_dir=workdir / "spool",
                secret_dir=workdir / "secret",
                extra_env={
                    "PYTHONOPTIMIZE": "2",
                    # Do not pace: measure what the sidecar can do, not the configured rate.
                    "EMAILSETTINGS_RATE_PER_SECOND": "1000000",
                    "EMAILSETTINGS_RATE_BURST": "1000000",
                },
            )
            with sidecar:
                pid = sidecar.pid
                idle_start = await settle(pid)

                # 2. intake, delivery held
                cpu = cpu_delta(pid)
                with RSSSampler(pid) as load_rss:
                    held = await intake(sidecar.url, 0, n, concurrency)
                intake_cpu = cpu()
                status = await spool_figures(sidecar.url)
                assert status["settings"]["mayDeliver"] is False, status["settings"]
                assert status["spool"]["pending"] == n, status["spool"]

                # 3. delivery of what is queued
                cpu = cpu_delta(pid)
                with RSSSampler(pid) as drain_rss:
                    started = time.monotonic()
                    await set_ready(client)
                    await wait_sink(sink, n, limit=max(60, n / 10))
                    drain_seconds = time.monotonic() - started
                drain_cpu = cpu()

                # 4. intake while delivering
                with RSSSampler(pid) as mixed_rss:
                    started = time.monotonic()
                    mixed = await intake(sidecar.url, n, n, concurrency)
                    await wait_sink(sink, 2 * n, limit=max(60, n / 10))
                    mixed_seconds = time.monotonic() - started
                idle_end = await settle(pid, 5.0)
                final = await spool_figures(sidecar.url)
            sidecar_log = sidecar.logs()

        # 5. the floor: smtp-source, same message, same sink
        with tempfile.TemporaryDirectory() as scratch:
            message_file = source_file(Path(scratch), data)
            one = await asyncio.to_thread(
                postfix.smtp_source, sink.port, messages=n, sessions=1, message_file=message_file
            )
            many = await asyncio.to_thread(
                postfix.smtp_source,
                sink.port,
                messages=n,
                sessions=concurrency,
                message_file=message_file,
            )
        python_rate = await python_smtp_floor(sink.port, data, n)
        fsync_rate = fsync_floor(workdir)
        assert sink.wait_for(5 * n, 30), sink.messages
    compose_cost = compose_ms()

    errors = sum("ERROR" in line for line in sidecar_log.splitlines())
    report.add("notifications per phase", n)
    report.add("HTTP clients (concurrency)", concurrency)
    report.add("message size (bytes)", len(data))
    report.add("sidecar RSS idle after start (MB)", idle_start, "MB")
    report.add("intake, delivery held: accepted/s", held.rate, "/s")
    report.add("intake, delivery held: accept p50 (ms)", held.ms(0.5), "ms")
    report.add("intake, delivery held: accept p99 (ms)", held.ms(0.99), "ms")
    report.add("intake, delivery held: refused", held.refused)
    report.add("intake, delivery held: sidecar CPU per 1000 (s)", intake_cpu / n * 1000, "s")
    report.add("sidecar RSS peak during intake (MB)", load_rss.peak, "MB")
    report.add("floor: one-row SQLite commits/s (WAL, FULL) on the spool disk", fsync_rate, "/s")
    report.add("delivery of the queue: delivered/s", n / drain_seconds, "/s")
    report.add("delivery: sidecar CPU per 1000 (s)", drain_cpu / n * 1000, "s")
    report.add("sidecar RSS peak during delivery (MB)", drain_rss.peak, "MB")
    report.add("floor: smtp-source 1 session (-d) -> smtp-sink msg/s", one.rate, "/s")
    report.add("delivery ratio to floor (target >= 0.5)", n / drain_seconds / one.rate, "x")
    report.add(f"context: smtp-source {concurrency} sessions -> smtp-sink msg/s", many.rate, "/s")
    report.add("why: render + compose one message (ms, in process)", compose_cost, "ms")
    report.add("why: the sidecar's SMTP layer, pre-built bytes, 50 per session", python_rate, "/s")
    report.add("why: one-row durable commit (ms)", 1000 / fsync_rate, "ms")
    report.add(
        "why: sum of the three (ms per message)",
        compose_cost + 1000 / python_rate + 1000 / fsync_rate,
        "ms",
    )
    report.add("mixed: accepted/s while delivering", mixed.rate, "/s")
    report.add("mixed: accept p50 (ms)", mixed.ms(0.5), "ms")
    report.add("mixed: accept p99 (ms)", mixed.ms(0.99), "ms")
    report.add(
        "mixed: end to end delivered/s (first POST -> last at sink)", n / mixed_seconds, "/s"
    )
    report.add("sidecar RSS peak while mixed (MB)", mixed_rss.peak, "MB")
    report.add("sidecar RSS idle after load (MB)", idle_end, "MB")
    report.add("RSS target (< 60 MB) met", max(load_rss.peak, drain_rss.peak, mixed_rss.peak) < 60)
    report.add("delivered (spool) / at sink", f"{final['spool']['delivered']} / {2 * n}")
    report.add("sidecar log ERROR lines", errors)
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000, help="notifications per phase")
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP clients, smtp-source -s")
    args = parser.parse_args()
    try:
        postfix.tool("smtp-source")
        postfix.tool("smtp-sink")
    except postfix.ToolMissingError as error:
        raise SystemExit(f"bench.sidecar: {error}") from None
    asyncio.run(measure(args.n, args.concurrency)).emit()


if __name__ == "__main__":
    main()
