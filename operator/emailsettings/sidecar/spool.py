"""The durable notification spool: SQLite in WAL mode with synchronous=FULL.

One writer thread owns the connection. Callers submit small operations; the
thread runs every operation waiting at that moment inside one transaction and
commits once (group commit), so a burst of notifications costs one fsync, and a
caller hears "stored" only after the commit that holds its row returned.

States of a notification:

    queued  --attempt fails-->  retrying  --all recipients done-->  delivered
       |                           |                                partially_delivered
       |                           +--permanent / too old------->  dead_letter
       +--identical within the storm window-->  collapsed (counted in another)

Each recipient of a notification has its own delivery row (pending, sent or
dead_letter), created when the message is first handed to the SMTP server.

A row is either a notification (category, event, fields: rendered at delivery) or
a relayed message from the SMTP intake (`raw`: the message as accepted, and
`targets`: the categories whose recipient lists it goes to and the addresses it is
relayed to as addressed, resolved at the first attempt). Both go through the same
states, bounds, storm control and delivery rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 2  # 2: raw and targets (SMTP intake); version 1 spools are upgraded
GROUP_COMMIT_MAX = 512  # operations per transaction at most


class State(enum.StrEnum):
    QUEUED = "queued"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    PARTIALLY_DELIVERED = "partially_delivered"
    DEAD_LETTER = "dead_letter"
    COLLAPSED = "collapsed"


PENDING_STATES = (State.QUEUED, State.RETRYING)
FINAL_STATES = (
    State.DELIVERED,
    State.PARTIALLY_DELIVERED,
    State.DEAD_LETTER,
    State.COLLAPSED,
)


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD_LETTER = "dead_letter"


class SpoolError(Exception):
    """Base of the errors the intake turns into HTTP answers."""


class SpoolFullError(SpoolError):
    """The configured bound is reached; the caller should retry later."""


class SpoolUnavailableError(SpoolError):
    """The disk is full, the file is broken or I/O fails: nothing can be stored."""


class IdempotencyConflictError(SpoolError):
    """The idempotency key was used before for a different notification."""

    def __init__(self, key: str, existing_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used for notification {existing_id} "
            "with different content"
        )
        self.existing_id = existing_id


@dataclass(frozen=True)
class Submission:
    category: str
    event: str
    subject: str | None
    body: str | None
    fields: Mapping[str, str]
    idempotency_key: str | None = None
    storm_key: str | None = None  # None: never collapsed
    fingerprint: str = ""  # identifies the content for idempotency conflicts
    # A relayed message (SMTP intake): the message as accepted, the categories whose
    # recipient lists get it, the addresses it is relayed to as addressed, and its
    # Message-ID when it had a usable one.
    raw: bytes | None = None
    categories: tuple[str, ...] = ()
    relay_to: tuple[str, ...] = ()
    message_id: str | None = None

    def payload_size(self) -> int:
        return (
            len((self.subject or "").encode())
            + len((self.body or "").encode())
            + len(json.dumps(dict(self.fields)).encode())
            + (len(self.raw) if self.raw is not None else 0)
        )

    def targets_json(self) -> str | None:
        if self.raw is None:
            return None
        return json.dumps({"categories": list(self.categories), "relayTo": list(self.relay_to)})


@dataclass(frozen=True)
class Receipt:
    id: str
    state: State
    duplicate: bool = False
    collapsed_into: str | None = None


@dataclass(frozen=True)
class DeliveryView:
    recipient: str
    state: DeliveryState
    attempts: int
    last_code: int | None
    last_error: str | None
    updated_at: float


@dataclass(frozen=True)
class NotificationView:
    id: str
    category: str
    event: str
    state: State
    created_at: float
    updated_at: float
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    occurrences: int
    first_at: float
    last_at: float
    collapsed_into: str | None
    idempotency_key: str | None
    message_id: str | None
    dead_letter_reason: str | None
    finished_at: float | None
    deliveries: tuple[DeliveryView, ...] = ()


@dataclass(frozen=True)
class Due:
    """A notification ready for an attempt, with what the delivery needs."""

    id: str
    seq: int
    category: str
    event: str
    subject: str | None
    body: str | None
    fields: Mapping[str, str]
    idempotency_key: str | None
    occurrences: int
    first_at: float
    last_at: float
    created_at: float
    attempts: int
    message_id: str | None
    # None until the message was first handed to a server; then the recipients
    # still waiting (envelope), and everyone it was addressed to (the To header).
    pending_recipients: tuple[str, ...] | None
    all_recipients: tuple[str, ...] = ()
    # A relayed message (load its bytes with Spool.raw_message): its targets.
    relayed: bool = False
    categories: tuple[str, ...] = ()
    relay_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecipientResult:
    code: int | None
    text: str


@dataclass(frozen=True)
class Outcome:
    """What one attempt did to one notification."""

    id: str
    now: float
    message_id: str | None = None
    recipients: tuple[str, ...] = ()  # everyone the attempt addressed
    sent: tuple[str, ...] = ()
    dead: Mapping[str, RecipientResult] = field(default_factory=dict)
    retry: Mapping[str, RecipientResult] = field(default_factory=dict)
    next_attempt_at: float | None = None  # for retry
    error: str | None = None  # a notification-wide error (no recipient reached)
    dead_letter_reason: str | None = None  # dead-letter the whole notification


@dataclass(frozen=True)
class SpoolStats:
    pending: int
    pending_bytes: int
    oldest_pending_at: float | None
    dead_letter: int
    delivered: int
    total_rows: int


@dataclass(frozen=True)
class Limits:
    max_pending: int = 10_000
    max_pending_bytes: int = 64 * 1024 * 1024
    max_rows: int = 100_000  # all rows, including finished ones kept for the API


_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  idempotency_key TEXT UNIQUE,
  fingerprint TEXT NOT NULL,
  category TEXT NOT NULL,
  event TEXT NOT NULL,
  subject TEXT,
  body TEXT,
  fields TEXT NOT NULL DEFAULT '{}',
  storm_key TEXT,
  occurrences INTEGER NOT NULL DEFAULT 1,
  first_at REAL NOT NULL,
  last_at REAL NOT NULL,
  collapsed_into TEXT,
  size INTEGER NOT NULL,
  state TEXT NOT NULL,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL,
  next_attempt_at REAL NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  message_id TEXT,
  dead_letter_reason TEXT,
  finished_at REAL,
  raw BLOB,
  targets TEXT
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications(next_attempt_at, seq)
  WHERE state IN ('queued', 'retrying');
CREATE INDEX IF NOT EXISTS notifications_storm ON notifications(storm_key, seq)
  WHERE storm_key IS NOT NULL AND collapsed_into IS NULL;
CREATE INDEX IF NOT EXISTS notifications_finished ON notifications(finished_at)
  WHERE finished_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS notifications_state ON notifications(state, seq);
CREATE TABLE IF NOT EXISTS deliveries (
  notification_id TEXT NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
  recipient TEXT NOT NULL,
  position INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_code INTEGER,
  last_error TEXT,
  updated_at REAL NOT NULL,
  PRIMARY KEY (notification_id, recipient)
) WITHOUT ROWID;
"""


def describe_sqlite_error(error: BaseException) -> str:
    text = str(error)
    lowered = text.lower()
    if "full" in lowered:
        return f"the spool's disk is full ({text})"
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        return f"the spool database is damaged ({text})"
    if "readonly" in lowered or "read-only" in lowered:
        return f"the spool is read-only ({text})"
    return f"the spool cannot be written ({text})"


@dataclass
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Bounds:
    """Upper bounds of what the limits count; kept by the writer thread.

    Only add() inserts rows. Every other operation leaves the pending count, the
    pending bytes and the row count as they are or lowers them (delivery, expiry,
    purge), and execute() forgets the bounds. So after one exact count, adding what
    add() inserts keeps these at or above the true values: within the limits by
    them means within the limits. Counting exactly scans the table, which made
    every add slower as the backlog grew; now it runs only when a bound reaches a
    limit.
    """

    pending: int
    pending_bytes: int
    rows: int


class Spool:
    """Async front of the SQLite spool; all SQL runs on the writer thread."""

    def __init__(self, directory: Path, limits: Limits | None = None) -> None:
        self.directory = directory
        self.path = directory / "spool.sqlite3"
        self.limits = limits or Limits()
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.healthy = False
        self.opened_once = False
        self.last_error: str | None = None
        self.commits = 0  # transactions committed (group-commit visibility for tests)
        self._bounds: _Bounds | None = None

    # lifecycle -----------------------------------------------------------

    def open(self) -> None:
        """Open (or create) the database; raises SpoolUnavailableError when it cannot."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Notifications may carry personal data: owner-only, and SQLite gives its
            # -wal and -shm files the same mode as the database file.
            self.path.touch(mode=0o600, exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA cache_size=-1024")  # 1 MiB page cache: a sidecar's budget
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SpoolUnavailableError(
                    f"spool schema version {version} is newer than this sidecar understands"
                )
            conn.executescript(_SCHEMA)
            _upgrade(conn)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
            if integrity != "ok":
                raise SpoolUnavailableError(f"the spool database is damaged: {integrity}")
        except (sqlite3.Error, OSError) as error:
            self.healthy = False
            self.last_error = describe_sqlite_error(error)
            raise SpoolUnavailableError(self.last_error) from error
        self._conn = conn
        self._bounds = None
        self.healthy = True
        self.opened_once = True
        self._thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(30)
            self._thread = None
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # the writer thread ---------------------------------------------------

    async def _submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if not self.running:
            raise SpoolUnavailableError(self.last_error or "the spool is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Op(fn, loop, future))
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < GROUP_COMMIT_MAX:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Op]) -> None:
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                conn.execute("SAVEPOINT op")
                try:
                    op.result = op.fn(conn)
                except (sqlite3.Error, OSError):
                    # Storage trouble (disk full, I/O): SQLite may already have rolled
                    # back the whole transaction, so the whole batch fails.
                    raise
                except Exception as error:  # noqa: BLE001 - handed to the caller
                    op.error = error
                    conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as error:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self.healthy = False
            self.last_error = describe_sqlite_error(error)
            log.error("spool transaction failed: %s", self.last_error)  # noqa: TRY400
            failure = SpoolUnavailableError(self.last_error)
            for op in batch:
                op.error = failure
        else:
            self.commits += 1
            if not self.healthy:
                log.info("spool writable again")
            self.healthy = True
            self.last_error = None
        for op in batch:
            if isinstance(op.error, sqlite3.Error):
                op.error = SpoolUnavailableError(describe_sqlite_error(op.error))
            op.loop.call_soon_threadsafe(_settle, op)

    # operations ----------------------------------------------------------

    async def add(self, submission: Submission, *, now: float, storm_window: float) -> Receipt:
        return await self._submit(lambda conn: self._add(conn, submission, now, storm_window))

    def _add(
        self, conn: sqlite3.Connection, sub: Submission, now: float, storm_window: float
    ) -> Receipt:
        if sub.idempotency_key is not None:
            row = conn.execute(
                "SELECT id, fingerprint, state, collapsed_into FROM notifications "
                "WHERE idempotency_key = ?",
                (sub.idempotency_key,),
            ).fetchone()
            if row is not None:
                if row[1] != sub.fingerprint:
                    raise IdempotencyConflictError(sub.idempotency_key, row[0])
                return Receipt(row[0], State(row[2]), duplicate=True, collapsed_into=row[3])
        self._check_limits(conn, sub.payload_size())
        new_id = secrets.token_hex(16)
        fields_json = json.dumps(dict(sub.fields), ensure_ascii=False, sort_keys=True)
        not_before = now
        if sub.storm_key is not None and storm_window > 0:
            leader = conn.execute(
                "SELECT id, state, first_at FROM notifications "
                "WHERE storm_key = ? AND collapsed_into IS NULL AND first_at >= ? "
                "ORDER BY seq DESC LIMIT 1",
                (sub.storm_key, now - storm_window),
            ).fetchone()
            if leader is not None:
                leader_id, leader_state, leader_first = leader
                untouched = (
                    leader_state in PENDING_STATES
                    and conn.execute(
                        "SELECT 1 FROM deliveries WHERE notification_id = ? AND state = 'sent'",
                        (leader_id,),
                    ).fetchone()
                    is None
                )
                if untouched:
                    conn.execute(
                        "UPDATE notifications SET occurrences = occurrences + 1, last_at = ?, "
                        "updated_at = ? WHERE id = ?",
                        (now, now, leader_id),
                    )
                    # A collapsed row keeps only what GET needs; the leader carries the text.
                    conn.execute(
                        "INSERT INTO notifications (id, idempotency_key, fingerprint, category, "
                        "event, fields, size, state, created_at, updated_at, next_attempt_at, "
                        "first_at, last_at, collapsed_into, finished_at) "
                        "VALUES (?, ?, ?, ?, ?, '{}', 0, 'collapsed', ?, ?, ?, ?, ?, ?, ?)",
                        (
                            new_id,
                            sub.idempotency_key,
                            sub.fingerprint,
                            sub.category,
                            sub.event,
                            now,
                            now,
                            now,
                            now,
                            now,
                            leader_id,
                            now,
                        ),
                    )
                    self._added(pending_bytes=None)
                    return Receipt(new_id, State.COLLAPSED, collapsed_into=leader_id)
                # The leader already went out: gather the rest of the storm into one
                # message held until the leader's window closes.
                not_before = max(now, leader_first + storm_window)
        conn.execute(
            "INSERT INTO notifications (id, idempotency_key, fingerprint, category, event, "
            "subject, body, fields, storm_key, size, state, created_at, updated_at, "
            "next_attempt_at, first_at, last_at, raw, targets, message_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                new_id,
                sub.idempotency_key,
                sub.fingerprint,
                sub.category,
                sub.event,
                sub.subject,
                sub.body,
                fields_json,
                sub.storm_key,
                sub.payload_size(),
                now,
                now,
                not_before,
                now,
                now,
                sub.raw,
                sub.targets_json(),
                sub.message_id,
            ),
        )
        self._added(pending_bytes=sub.payload_size())
        return Receipt(new_id, State.QUEUED)

    def _added(self, *, pending_bytes: int | None) -> None:
        """Count an inserted row into the bounds; None: a row that is not pending."""
        bounds = self._bounds
        if bounds is None:
            return
        bounds.rows += 1
        if pending_bytes is not None:
            bounds.pending += 1
            bounds.pending_bytes += pending_bytes

    def _check_limits(self, conn: sqlite3.Connection, size: int) -> None:
        limits, bounds = self.limits, self._bounds
        if (
            bounds is not None
            and bounds.pending < limits.max_pending
            and bounds.pending_bytes + size <= limits.max_pending_bytes
            and bounds.rows < limits.max_rows
        ):
            return
        self._bounds = None
        self._bounds = self._count_limits(conn, size)

    def _count_limits(self, conn: sqlite3.Connection, size: int) -> _Bounds:
        """Count exactly; raise SpoolFullError beyond a limit, else return the counts."""
        count, total = conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM notifications "
            "WHERE state IN ('queued', 'retrying')"
        ).fetchone()
        if count >= self.limits.max_pending:
            raise SpoolFullError(
                f"the spool is full: {count} notifications wait for delivery "
                f"(limit {self.limits.max_pending}); retry later"
            )
        if total + size > self.limits.max_pending_bytes:
            raise SpoolFullError(
                f"the spool is full: {total} bytes wait for delivery "
                f"(limit {self.limits.max_pending_bytes}); retry later"
            )
        rows = conn.execute("SELECT count(*) FROM notifications").fetchone()[0]
        if rows >= self.limits.max_rows:
            # Finished notifications are kept for the API only; make room from the oldest.
            conn.execute(
                "DELETE FROM notifications WHERE seq IN (SELECT seq FROM notifications "
                "WHERE finished_at IS NOT NULL ORDER BY finished_at LIMIT ?)",
                (max(1, self.limits.max_rows // 10),),
            )
            rows = conn.execute("SELECT count(*) FROM notifications").fetchone()[0]
            if rows >= self.limits.max_rows:
                raise SpoolFullError(
                    f"the spool is full: {rows} notifications stored (limit "
                    f"{self.limits.max_rows}); retry later"
                )
        return _Bounds(count, total, rows)

    async def get(self, notification_id: str) -> NotificationView | None:
        return await self._submit(lambda conn: _get(conn, notification_id))

    async def find(
        self, states: Sequence[State] | None = None, limit: int = 100
    ) -> list[NotificationView]:
        return await self._submit(lambda conn: _list(conn, states, limit))

    async def due(self, now: float, limit: int) -> list[Due]:
        return await self._submit(lambda conn: _due(conn, now, limit))

    async def raw_message(self, notification_id: str) -> bytes | None:
        """The stored bytes of a relayed message (loaded one at a time, not with due())."""

        def op(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT raw FROM notifications WHERE id = ?", (notification_id,)
            ).fetchone()
            return None if row is None or row[0] is None else bytes(row[0])

        return await self._submit(op)

    async def next_due_at(self) -> float | None:
        def op(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT min(next_attempt_at) FROM notifications "
                "WHERE state IN ('queued', 'retrying')"
            ).fetchone()
            return None if row[0] is None else float(row[0])

        return await self._submit(op)

    async def record(self, outcomes: Sequence[Outcome]) -> list[State | None]:
        """Apply attempt outcomes; returns each notification's state afterwards."""

        def op(conn: sqlite3.Connection) -> list[State | None]:
            return [_record(conn, outcome) for outcome in outcomes]

        return await self._submit(op)

    async def expire(self, now: float, max_age: float) -> list[tuple[str, str]]:
        """Dead-letter pending notifications older than max_age; returns (id, category)."""

        def op(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                "SELECT id, category, attempts, last_error FROM notifications "
                "WHERE state IN ('queued', 'retrying') AND created_at < ?",
                (now - max_age,),
            ).fetchall()
            for nid, _category, attempts, last_error in rows:
                reason = (
                    f"Expired: not delivered within {max_age:g}s "
                    f"({attempts} attempt(s); last error: {last_error or 'none'})"
                )
                _finish_dead(conn, nid, now, reason)
            return [(row[0], row[1]) for row in rows]

        return await self._submit(op)

    async def purge(self, now: float, retention: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM notifications WHERE finished_at IS NOT NULL AND finished_at < ?",
                (now - retention,),
            )
            return cursor.rowcount

        return await self._submit(op)

    async def stats(self) -> SpoolStats:
        def op(conn: sqlite3.Connection) -> SpoolStats:
            pending, size, oldest = conn.execute(
                "SELECT count(*), coalesce(sum(size), 0), min(created_at) "
                "FROM notifications WHERE state IN ('queued', 'retrying')"
            ).fetchone()
            counts = dict(
                conn.execute(
                    "SELECT state, count(*) FROM notifications "
                    "WHERE state IN ('dead_letter', 'delivered', 'partially_delivered') "
                    "GROUP BY state"
                ).fetchall()
            )
            total = conn.execute("SELECT count(*) FROM notifications").fetchone()[0]
            return SpoolStats(
                pending=pending,
                pending_bytes=size,
                oldest_pending_at=oldest,
                dead_letter=counts.get("dead_letter", 0) + counts.get("partially_delivered", 0),
                delivered=counts.get("delivered", 0),
                total_rows=total,
            )

        return await self._submit(op)

    async def probe(self) -> None:
        """A real write and commit, for readiness: raises SpoolUnavailableError if it fails."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA user_version")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

        await self._submit(op)

    async def execute(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn on the writer thread inside a transaction (tests and maintenance)."""

        def op(conn: sqlite3.Connection) -> T:
            self._bounds = None  # fn may insert anything: count exactly next time
            return fn(conn)

        return await self._submit(op)


def _settle(op: _Op) -> None:
    if op.future.done():
        return
    if op.error is not None:
        op.future.set_exception(op.error)
    else:
        op.future.set_result(op.result)


_VIEW_COLUMNS = (
    "id, category, event, state, created_at, updated_at, attempts, next_attempt_at, "
    "last_error, occurrences, first_at, last_at, collapsed_into, idempotency_key, message_id, "
    "dead_letter_reason, finished_at"
)


def _view(conn: sqlite3.Connection, row: tuple[Any, ...]) -> NotificationView:
    deliveries = tuple(
        DeliveryView(r[0], DeliveryState(r[1]), r[2], r[3], r[4], r[5])
        for r in conn.execute(
            "SELECT recipient, state, attempts, last_code, last_error, updated_at "
            "FROM deliveries WHERE notification_id = ? ORDER BY position, recipient",
            (row[0],),
        )
    )
    state = State(row[3])
    return NotificationView(
        id=row[0],
        category=row[1],
        event=row[2],
        state=state,
        created_at=row[4],
        updated_at=row[5],
        attempts=row[6],
        next_attempt_at=row[7] if state in PENDING_STATES else None,
        last_error=row[8],
        occurrences=row[9],
        first_at=row[10],
        last_at=row[11],
        collapsed_into=row[12],
        idempotency_key=row[13],
        message_id=row[14],
        dead_letter_reason=row[15],
        finished_at=row[16],
        deliveries=deliveries,
    )


def _get(conn: sqlite3.Connection, notification_id: str) -> NotificationView | None:
    row = conn.execute(
        f"SELECT {_VIEW_COLUMNS} FROM notifications WHERE id = ?",  # noqa: S608
        (notification_id,),
    ).fetchone()
    return None if row is None else _view(conn, row)


def _list(
    conn: sqlite3.Connection, states: Sequence[State] | None, limit: int
) -> list[NotificationView]:
    if states:
        marks = ", ".join("?" for _ in states)
        rows = conn.execute(
            f"SELECT {_VIEW_COLUMNS} FROM notifications WHERE state IN ({marks}) "  # noqa: S608
            "ORDER BY seq DESC LIMIT ?",
            (*[str(s) for s in states], limit),
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_VIEW_COLUMNS} FROM notifications ORDER BY seq DESC LIMIT ?",  # noqa: S608
            (limit,),
        ).fetchall()
    return [_view(conn, row) for row in rows]


def _due(conn: sqlite3.Connection, now: float, limit: int) -> list[Due]:
    rows = conn.execute(
        "SELECT id, seq, category, event, subject, body, fields, idempotency_key, occurrences, "
        "first_at, last_at, created_at, attempts, message_id, raw IS NOT NULL, targets "
        "FROM notifications "
        "WHERE state IN ('queued', 'retrying') AND next_attempt_at <= ? "
        "ORDER BY next_attempt_at, seq LIMIT ?",
        (now, limit),
    ).fetchall()
    result = []
    for row in rows:
        deliveries = conn.execute(
            "SELECT recipient, state FROM deliveries WHERE notification_id = ? "
            "ORDER BY position, recipient",
            (row[0],),
        ).fetchall()
        recipients = [r for r, state in deliveries if state == DeliveryState.PENDING]
        targets = json.loads(row[15]) if row[15] else {}
        result.append(
            Due(
                id=row[0],
                seq=row[1],
                category=row[2],
                event=row[3],
                subject=row[4],
                body=row[5],
                fields=json.loads(row[6]),
                idempotency_key=row[7],
                occurrences=row[8],
                first_at=row[9],
                last_at=row[10],
                created_at=row[11],
                attempts=row[12],
                message_id=row[13],
                pending_recipients=tuple(recipients) if deliveries else None,
                all_recipients=tuple(r for r, _ in deliveries),
                relayed=bool(row[14]),
                categories=tuple(targets.get("categories", ())),
                relay_to=tuple(targets.get("relayTo", ())),
            )
        )
    return result


_ADDED_COLUMNS = (("raw", "BLOB"), ("targets", "TEXT"))


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring a version 1 spool (no SMTP intake columns) to the current schema."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(notifications)")}
    for name, kind in _ADDED_COLUMNS:
        if name not in present:
            conn.execute(f"ALTER TABLE notifications ADD COLUMN {name} {kind}")


def _finish_dead(conn: sqlite3.Connection, nid: str, now: float, reason: str) -> State:
    conn.execute(
        "UPDATE deliveries SET state = 'dead_letter', last_error = ?, updated_at = ? "
        "WHERE notification_id = ? AND state = 'pending'",
        (reason, now, nid),
    )
    sent = conn.execute(
        "SELECT count(*) FROM deliveries WHERE notification_id = ? AND state = 'sent'", (nid,)
    ).fetchone()[0]
    state = State.PARTIALLY_DELIVERED if sent else State.DEAD_LETTER
    conn.execute(
        "UPDATE notifications SET state = ?, dead_letter_reason = ?, updated_at = ?, "
        "finished_at = ? WHERE id = ?",
        (str(state), reason, now, now, nid),
    )
    return state


def _record(conn: sqlite3.Connection, outcome: Outcome) -> State | None:
    nid, now = outcome.id, outcome.now
    row = conn.execute("SELECT state FROM notifications WHERE id = ?", (nid,)).fetchone()
    if row is None or row[0] not in PENDING_STATES:
        return None  # expired or purged meanwhile
    if outcome.message_id is not None:
        conn.execute(
            "UPDATE notifications SET message_id = ? WHERE id = ? AND message_id IS NULL",
            (outcome.message_id, nid),
        )
    for position, recipient in enumerate(outcome.recipients):
        conn.execute(
            "INSERT OR IGNORE INTO deliveries "
            "(notification_id, recipient, position, state, updated_at) "
            "VALUES (?, ?, ?, 'pending', ?)",
            (nid, recipient, position, now),
        )
    for recipient in outcome.sent:
        conn.execute(
            "UPDATE deliveries SET state = 'sent', attempts = attempts + 1, last_code = 250, "
            "last_error = NULL, updated_at = ? WHERE notification_id = ? AND recipient = ?",
            (now, nid, recipient),
        )
    for target, results in (("dead_letter", outcome.dead), ("pending", outcome.retry)):
        for recipient, result in results.items():
            conn.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_code = ?, "
                "last_error = ?, updated_at = ? WHERE notification_id = ? AND recipient = ?",
                (target, result.code, result.text, now, nid, recipient),
            )
    conn.execute(
        "UPDATE notifications SET attempts = attempts + 1, updated_at = ?, "
        "last_error = coalesce(?, last_error) WHERE id = ?",
        (now, outcome.error or _first_error(outcome), nid),
    )
    if outcome.dead_letter_reason is not None:
        return _finish_dead(conn, nid, now, outcome.dead_letter_reason)
    counts = dict(
        conn.execute(
            "SELECT state, count(*) FROM deliveries WHERE notification_id = ? GROUP BY state",
            (nid,),
        ).fetchall()
    )
    pending = counts.get("pending", 0)
    if pending or not counts:
        conn.execute(
            "UPDATE notifications SET state = 'retrying', next_attempt_at = ? WHERE id = ?",
            (outcome.next_attempt_at if outcome.next_attempt_at is not None else now, nid),
        )
        return State.RETRYING
    if counts.get("dead_letter", 0):
        dead = conn.execute(
            "SELECT recipient, last_error FROM deliveries "
            "WHERE notification_id = ? AND state = 'dead_letter' ORDER BY recipient",
            (nid,),
        ).fetchall()
        reason = "Rejected: " + "; ".join(f"{r}: {e}" for r, e in dead)
        return _finish_dead(conn, nid, now, reason[:2000])
    conn.execute(
        "UPDATE notifications SET state = 'delivered', updated_at = ?, finished_at = ?, "
        "last_error = NULL WHERE id = ?",
        (now, now, nid),
    )
    return State.DELIVERED


def _first_error(outcome: Outcome) -> str | None:
    for recipient, result in [*outcome.retry.items(), *outcome.dead.items()]:
        return f"{recipient}: {result.text}"
    return None


def wall_clock() -> float:
    return time.time()
