"""SMTP intake: smtp-source into the sidecar's SMTP listener, against smtp-sink and Postfix.

    .venv/bin/python -m bench.smtp_intake --n 5000 --sessions 8

The same message (`--size` bytes of body, one recipient), the same count and the same
number of parallel `smtp-source` sessions (`-d`: each session reuses its connection)
against three receivers, in one run:

1. `smtp-sink` directly: the ceiling (takes each message, keeps nothing);
2. the sidecar's SMTP listener (`EMAILSETTINGS_SMTP_LISTEN`, durable: the 250 after
   DATA follows the SQLite commit, concurrent completions share one commit), to the
   `administrative@localhost` alias; delivery to a second `smtp-sink` over the
   sidecar's one connection. Measured held (the EmailSettings is not Ready yet: pure
   acceptance), then the drain, then with delivery running;
3. the peer a user would pick instead: Postfix itself, a private instance
   (`bench/postfix.py`) relaying to a third `smtp-sink`, which fsyncs every
   queue file before its 250 and delivers while it accepts.

End to end: every message accepted must arrive at its sink (counted by the sink);
the run fails otherwise. Needs Postfix's tools (`hack/install-system-packages.sh`),
and root for the Postfix peer (its master runs as root); without root that row is
skipped and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench import postfix
from bench import stack as benchstack
from bench.common import Report, cpu_seconds
from bench.sidecar import (
    NAMESPACE,
    SETTINGS,
    RSSSampler,
    create_settings,
    set_ready,
    spool_figures,
    wait_sink,
)
from emailsettings.devstack.netutil import free_port
from emailsettings.devstack.processes import SidecarProcess
from emailsettings.devstack.stack import LocalStack

SENDER = "app@example.com"
ALIAS = "administrative@localhost"


def message_file(directory: Path, size: int) -> Path:
    """A plain text message of about `size` bytes, LF lines (smtp-source adds CRLF)."""
    line = "The quick brown fox jumps over the lazy dog; notification text line.\n"
    body = (line * (size // len(line) + 1))[:size].rstrip("\n") + "\n"
    headers = (
        f"From: Application <{SENDER}>\n"
        f"To: {ALIAS}\n"
        "Subject: Scan finished: 3 findings\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "Content-Transfer-Encoding: 7bit\n"
    )
    path = directory / "message.eml"
    path.write_text(headers + "\n" + body)
    return path


@contextlib.contextmanager
def optional_postfix(sink_port: int) -> Iterator[postfix.PrivatePostfix | str]:
    """A private Postfix, or the reason there is none (no root, not installed)."""
    try:
        instance = postfix.PrivatePostfix(sink_port).start()
    except postfix.ToolMissingError as error:
        yield str(error)
        return
    try:
        yield instance
    finally:
        instance.stop()


async def source(port: int, n: int, sessions: int, path: Path) -> postfix.SourceRun:
    return await asyncio.to_thread(
        postfix.smtp_source,
        port,
        messages=n,
        sessions=sessions,
        message_file=path,
        sender=SENDER,
        recipient=ALIAS,
    )


async def measure(n: int, sessions: int, size: int) -> Report:
    report = Report(
        "smtp-intake",
        f".venv/bin/python -m bench.smtp_intake --n {n} --sessions {sessions} --size {size}",
    )
    report.data["load average at start"] = os.getloadavg()
    limit = max(120.0, n / 10)
    with tempfile.TemporaryDirectory() as scratch:
        path = message_file(Path(scratch), size)
        wire_bytes = len(path.read_bytes().replace(b"\n", b"\r\n"))

        # 1. the ceiling
        with postfix.Sink() as sink:
            direct = await source(sink.port, n, sessions, path)
            await wait_sink(sink, n, limit)

        # 2. the sidecar
        with LocalStack() as local, postfix.Sink() as sink:
            assert local.control_plane is not None
            await benchstack.install_crd(local)
            workdir = local.workdir
            (workdir / "secret").mkdir()
            smtp_port = free_port()
            async with benchstack.client_for(local) as client:
                await create_settings(client, sink.port)
                sidecar = SidecarProcess(
                    workdir / "sidecar.log",
                    kubeconfig=local.control_plane.kubeconfig,
                    namespace=NAMESPACE,
                    settings_name=SETTINGS,
                    spool_dir=workdir / "spool",
                    secret_dir=workdir / "secret",
                    extra_env={
                        "PYTHONOPTIMIZE": "2",
                        "EMAILSETTINGS_SMTP_LISTEN": f"127.0.0.1:{smtp_port}",
                        "EMAILSETTINGS_SMTP_MAX_CONNECTIONS": str(max(8, sessions)),
                        # smtp-source sends one message N times; storm control would
                        # rightly collapse them into one. Postfix delivers every copy.
                        "EMAILSETTINGS_STORM_WINDOW": "0",
                        # Do not pace: measure the sidecar, not the configured rate.
                        "EMAILSETTINGS_RATE_PER_SECOND": "1000000",
                        "EMAILSETTINGS_RATE_BURST": "1000000",
                    },
                )
                with sidecar:
                    pid = sidecar.pid
                    cpu_before = cpu_seconds(pid)
                    with RSSSampler(pid) as held_rss:
                        held = await source(smtp_port, n, sessions, path)
                    held_cpu = cpu_seconds(pid) - cpu_before
                    status = await spool_figures(sidecar.url)
                    assert status["spool"]["pending"] == n, status["spool"]

                    cpu_before = cpu_seconds(pid)
                    with RSSSampler(pid) as drain_rss:
                        started = time.monotonic()
                        await set_ready(client)
                        await wait_sink(sink, n, limit)
                        drain_seconds = time.monotonic() - started
                    drain_cpu = cpu_seconds(pid) - cpu_before

                    with RSSSampler(pid) as mixed_rss:
                        started = time.monotonic()
                        mixed = await source(smtp_port, n, sessions, path)
                        await wait_sink(sink, 2 * n, limit)
                        mixed_seconds = time.monotonic() - started
                    final = await spool_figures(sidecar.url)
                errors = sum("ERROR" in line for line in sidecar.logs().splitlines())

        # 3. the peer: Postfix as a local relay to its own sink
        with postfix.Sink() as sink, optional_postfix(sink.port) as relay:
            if isinstance(relay, str):
                peer: postfix.SourceRun | None = None
                peer_seconds = float("nan")
                skipped = relay
            else:
                started = time.monotonic()
                peer = await source(relay.port, n, sessions, path)
                await wait_sink(sink, n, limit)
                peer_seconds = time.monotonic() - started
                skipped = ""

    report.add("messages per run", n)
    report.add("smtp-source sessions (-s, -d)", sessions)
    report.add("message size on the wire (bytes)", wire_bytes)
    report.add("ceiling: smtp-source -> smtp-sink msg/s", direct.rate, "/s")
    report.add("sidecar, delivery held: accepted/s (durable)", held.rate, "/s")
    report.add("sidecar held: ratio to smtp-sink", held.rate / direct.rate, "x")
    report.add("sidecar held: CPU per 1000 accepted (s)", held_cpu / n * 1000, "s")
    report.add("sidecar: delivery of the queue, delivered/s", n / drain_seconds, "/s")
    report.add("sidecar delivery: CPU per 1000 (s)", drain_cpu / n * 1000, "s")
    report.add("sidecar, delivering: accepted/s (durable)", mixed.rate, "/s")
    report.add("sidecar delivering: ratio to smtp-sink", mixed.rate / direct.rate, "x")
    report.add("sidecar delivering: end to end msg/s (first -> last at sink)", n / mixed_seconds)
    if peer is not None:
        report.add("peer: Postfix relay accepted/s (fsync per message)", peer.rate, "/s")
        report.add("peer: Postfix ratio to smtp-sink", peer.rate / direct.rate, "x")
        report.add("peer: Postfix end to end msg/s (first -> last at sink)", n / peer_seconds)
        report.add("sidecar delivering / Postfix accepted (target >= 1)", mixed.rate / peer.rate)
        report.add("sidecar held / Postfix accepted", held.rate / peer.rate, "x")
    else:
        report.add("peer: Postfix relay", f"skipped: {skipped}")
    report.add("sidecar RSS peak (MB)", max(held_rss.peak, drain_rss.peak, mixed_rss.peak), "MB")
    report.add("delivered (spool) / at sink", f"{final['spool']['delivered']} / {2 * n}")
    report.add("sidecar log ERROR lines", errors)
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000, help="messages per run")
    parser.add_argument("--sessions", type=int, default=8, help="parallel smtp-source sessions")
    parser.add_argument("--size", type=int, default=2048, help="message body bytes")
    args = parser.parse_args()
    try:
        postfix.tool("smtp-source")
        postfix.tool("smtp-sink")
    except postfix.ToolMissingError as error:
        raise SystemExit(f"bench.smtp_intake: {error}") from None
    asyncio.run(measure(args.n, args.sessions, args.size)).emit()


if __name__ == "__main__":
    main()
