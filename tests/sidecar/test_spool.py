"""The spool on its own: durability, idempotency, storm collapse, bounds and failures."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emailsettings.sidecar.spool import (
    DeliveryState,
    IdempotencyConflictError,
    Limits,
    Outcome,
    RecipientResult,
    Spool,
    SpoolFullError,
    SpoolUnavailableError,
    State,
    Submission,
)


def submission(n: int = 0, **overrides: object) -> Submission:
    values: dict[str, object] = {
        "category": "administrative",
        "event": "agent-out-of-date",
        "subject": None,
        "body": None,
        "fields": {"agentName": f"agent-{n}"},
        "fingerprint": f"fp-{n}",
    }
    values.update(overrides)
    return Submission(**values)  # type: ignore[arg-type]


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    s = Spool(tmp_path / "spool")
    s.open()
    yield s
    s.close()


async def test_added_notifications_survive_reopen(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.open()
    receipts = [await first.add(submission(n), now=100.0, storm_window=0) for n in range(5)]
    first.close()
    again = Spool(tmp_path)
    again.open()
    try:
        due = await again.due(now=100.0, limit=10)
        assert [d.id for d in due] == [r.id for r in receipts]
        assert due[0].fields == {"agentName": "agent-0"}
        assert due[0].pending_recipients is None
    finally:
        again.close()


async def test_files_are_private(spool: Spool) -> None:
    await spool.add(submission(), now=1.0, storm_window=0)
    for path in spool.directory.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path


async def test_concurrent_adds_share_commits(spool: Spool) -> None:
    before = spool.commits
    await asyncio.gather(*(spool.add(submission(n), now=1.0, storm_window=0) for n in range(200)))
    assert (await spool.stats()).pending == 200
    # Group commit: far fewer transactions than notifications.
    assert spool.commits - before < 100


async def test_idempotency_key_returns_the_same_id(spool: Spool) -> None:
    one = await spool.add(submission(1, idempotency_key="k1"), now=1.0, storm_window=0)
    two = await spool.add(submission(1, idempotency_key="k1"), now=2.0, storm_window=0)
    assert two.id == one.id
    assert two.duplicate
    with pytest.raises(IdempotencyConflictError):
        await spool.add(
            submission(2, idempotency_key="k1", fingerprint="other"), now=3.0, storm_window=0
        )
    assert (await spool.stats()).pending == 1


async def test_storm_collapses_while_leader_pending(spool: Spool) -> None:
    lead = await spool.add(submission(1, storm_key="s"), now=10.0, storm_window=60)
    dupes = [
        await spool.add(submission(1, storm_key="s"), now=11.0 + i, storm_window=60)
        for i in range(3)
    ]
    assert all(d.state is State.COLLAPSED and d.collapsed_into == lead.id for d in dupes)
    due = await spool.due(now=20.0, limit=10)
    assert [d.id for d in due] == [lead.id]
    assert due[0].occurrences == 4
    assert (due[0].first_at, due[0].last_at) == (10.0, 13.0)
    # Outside the window a new leader starts.
    later = await spool.add(submission(1, storm_key="s"), now=100.0, storm_window=60)
    assert later.state is State.QUEUED


async def test_storm_after_sent_leader_is_held_until_window_end(spool: Spool) -> None:
    lead = await spool.add(submission(1, storm_key="s"), now=10.0, storm_window=60)
    await spool.record(
        [Outcome(lead.id, now=11.0, recipients=("a@example.com",), sent=("a@example.com",))]
    )
    follow = await spool.add(submission(1, storm_key="s"), now=12.0, storm_window=60)
    assert follow.state is State.QUEUED
    more = await spool.add(submission(1, storm_key="s"), now=13.0, storm_window=60)
    assert more.collapsed_into == follow.id
    assert await spool.due(now=69.0, limit=10) == []
    due = await spool.due(now=70.0, limit=10)
    assert [d.id for d in due] == [follow.id]
    assert due[0].occurrences == 2


async def test_partial_rejection_and_retry(spool: Spool) -> None:
    r = await spool.add(submission(), now=1.0, storm_window=0)
    states = await spool.record(
        [
            Outcome(
                r.id,
                now=2.0,
                message_id="<m@x>",
                recipients=("a@x.example", "b@x.example", "c@x.example"),
                sent=("a@x.example",),
                dead={"b@x.example": RecipientResult(550, "550 no such user")},
                retry={"c@x.example": RecipientResult(451, "451 try later")},
                next_attempt_at=5.0,
            )
        ]
    )
    assert states == [State.RETRYING]
    assert await spool.due(now=4.0, limit=10) == []
    (due,) = await spool.due(now=5.0, limit=10)
    assert due.pending_recipients == ("c@x.example",)
    assert due.message_id == "<m@x>"
    states = await spool.record(
        [Outcome(r.id, now=6.0, recipients=("c@x.example",), sent=("c@x.example",))]
    )
    assert states == [State.PARTIALLY_DELIVERED]
    view = await spool.get(r.id)
    assert view is not None
    assert view.state is State.PARTIALLY_DELIVERED
    assert "b@x.example: 550 no such user" in (view.dead_letter_reason or "")
    by_rcpt = {d.recipient: d for d in view.deliveries}
    assert by_rcpt["b@x.example"].state is DeliveryState.DEAD_LETTER
    assert by_rcpt["b@x.example"].last_code == 550
    assert by_rcpt["c@x.example"].state is DeliveryState.SENT
    assert by_rcpt["c@x.example"].attempts == 2


async def test_expiry_dead_letters_old_notifications(spool: Spool) -> None:
    old = await spool.add(submission(1), now=1.0, storm_window=0)
    new = await spool.add(submission(2), now=100.0, storm_window=0)
    assert await spool.expire(now=101.0, max_age=50) == [(old.id, "administrative")]
    view = await spool.get(old.id)
    assert view is not None
    assert view.state is State.DEAD_LETTER
    assert (view.dead_letter_reason or "").startswith("Expired")
    assert [n.id for n in await spool.find([State.DEAD_LETTER])] == [old.id]
    assert [d.id for d in await spool.due(now=200.0, limit=10)] == [new.id]


async def test_full_spool_refuses(tmp_path: Path) -> None:
    spool = Spool(tmp_path, Limits(max_pending=3))
    spool.open()
    try:
        for n in range(3):
            await spool.add(submission(n), now=1.0, storm_window=0)
        with pytest.raises(SpoolFullError, match="limit 3"):
            await spool.add(submission(9), now=1.0, storm_window=0)
        assert spool.healthy  # a bound is not a failure
    finally:
        spool.close()


async def test_disk_full_is_unavailable_not_accepted(spool: Spool) -> None:
    await spool.add(submission(0), now=1.0, storm_window=0)

    def fill(conn: sqlite3.Connection) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages}")

    await spool.execute(fill)
    big = submission(1, body="x" * 200_000)
    with pytest.raises(SpoolUnavailableError, match="disk is full"):
        await spool.add(big, now=2.0, storm_window=0)
    # What was stored before is still there.
    assert (await spool.stats()).pending == 1


async def test_purge_removes_old_finished(spool: Spool) -> None:
    r = await spool.add(submission(), now=1.0, storm_window=0)
    await spool.record([Outcome(r.id, now=2.0, recipients=("a@x.example",), sent=("a@x.example",))])
    assert await spool.purge(now=10.0, retention=100) == 0
    assert await spool.purge(now=200.0, retention=100) == 1
    assert await spool.get(r.id) is None
