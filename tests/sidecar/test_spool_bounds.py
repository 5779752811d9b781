"""The spool's limits stay exact although add() no longer counts the table each time."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from emailsettings.sidecar.spool import Limits, Outcome, Spool, SpoolFullError, Submission


def submission(n: int, body: str | None = None, storm_key: str | None = None) -> Submission:
    return Submission(
        category="administrative",
        event="agent-out-of-date",
        subject=None,
        body=body,
        fields={"agentName": f"agent-{n}"},
        fingerprint=f"fp-{n}",
        storm_key=storm_key,
    )


def opened(path: Path, limits: Limits) -> Spool:
    spool = Spool(path, limits)
    spool.open()
    return spool


async def deliver(spool: Spool, notification_id: str, now: float = 5.0) -> None:
    await spool.record(
        [Outcome(notification_id, now=now, recipients=("a@x.example",), sent=("a@x.example",))]
    )


async def add_many(spool: Spool, numbers: range) -> None:
    for n in numbers:
        await spool.add(submission(n), now=4.0, storm_window=0)


async def test_room_made_by_delivery_is_used_up_to_the_limit_exactly(tmp_path: Path) -> None:
    spool = opened(tmp_path, Limits(max_pending=5))
    try:
        receipts = [await spool.add(submission(n), now=1.0, storm_window=0) for n in range(5)]
        with pytest.raises(SpoolFullError, match="5 notifications wait"):
            await spool.add(submission(9), now=1.0, storm_window=0)
        for receipt in receipts[:3]:
            await deliver(spool, receipt.id)
        # Three places were freed: exactly three more fit, then the limit holds again.
        for n in range(10, 13):
            await spool.add(submission(n), now=2.0, storm_window=0)
        with pytest.raises(SpoolFullError, match="5 notifications wait"):
            await spool.add(submission(13), now=2.0, storm_window=0)
        assert (await spool.stats()).pending == 5
    finally:
        spool.close()


async def test_pending_bytes_limit_holds_across_many_adds(tmp_path: Path) -> None:
    size = len(submission(0, body="x" * 100).body or "") + len('{"agentName": "agent-0"}')
    spool = opened(tmp_path, Limits(max_pending_bytes=10 * size + 5))
    try:
        for n in range(10):
            await spool.add(submission(n, body="x" * 100), now=1.0, storm_window=0)
        with pytest.raises(SpoolFullError, match="bytes wait"):
            await spool.add(submission(10, body="x" * 100), now=1.0, storm_window=0)
        stats = await spool.stats()
        assert stats.pending == 10
        assert stats.pending_bytes <= 10 * size + 5
    finally:
        spool.close()


async def test_rows_limit_purges_finished_then_refuses(tmp_path: Path) -> None:
    spool = opened(tmp_path, Limits(max_rows=10))
    try:
        receipts = [await spool.add(submission(n), now=1.0, storm_window=0) for n in range(10)]
        for receipt in receipts[:4]:
            await deliver(spool, receipt.id)
        # At the row limit the oldest finished one is purged to make room (10 % of rows).
        await spool.add(submission(20), now=2.0, storm_window=0)
        assert (await spool.stats()).total_rows == 10
        assert await spool.get(receipts[0].id) is None
        # Collapsed rows count too.
        await spool.add(submission(21, storm_key="k"), now=3.0, storm_window=60)
        await spool.add(submission(22, storm_key="k"), now=3.0, storm_window=60)
        assert (await spool.stats()).total_rows == 10
        # Finished rows (delivered, collapsed) are purged one by one; then nothing makes room.
        with pytest.raises(SpoolFullError, match="notifications stored \\(limit 10\\)"):
            await add_many(spool, range(30, 50))
        stats = await spool.stats()
        assert stats.total_rows == 10
        assert stats.pending == 10
    finally:
        spool.close()


async def test_rows_written_by_execute_are_counted(tmp_path: Path) -> None:
    spool = opened(tmp_path, Limits(max_pending=3))
    try:
        await spool.add(submission(0), now=1.0, storm_window=0)

        def copy_twice(conn: sqlite3.Connection) -> None:
            for suffix in ("b", "c"):
                conn.execute(
                    "INSERT INTO notifications (id, fingerprint, category, event, size, state, "
                    "created_at, updated_at, next_attempt_at, first_at, last_at) "
                    "SELECT id || ?, fingerprint, category, event, size, state, created_at, "
                    "updated_at, next_attempt_at, first_at, last_at FROM notifications",
                    (suffix,),
                )

        await spool.execute(copy_twice)
        assert (await spool.stats()).pending == 4
        with pytest.raises(SpoolFullError, match="4 notifications wait"):
            await spool.add(submission(1), now=1.0, storm_window=0)
    finally:
        spool.close()


async def test_reopened_spool_counts_what_is_on_disk(tmp_path: Path) -> None:
    first = opened(tmp_path, Limits(max_pending=3))
    for n in range(3):
        await first.add(submission(n), now=1.0, storm_window=0)
    first.close()
    again = opened(tmp_path, Limits(max_pending=3))
    try:
        with pytest.raises(SpoolFullError, match="limit 3"):
            await again.add(submission(3), now=time.time(), storm_window=0)
    finally:
        again.close()
