"""A keyed work queue: one reconcile per key at a time, changes coalesced.

A key enqueued while it is being reconciled is run once more afterwards; a key
enqueued several times while waiting runs once. A timer heap re-enqueues keys at
a due time (re-verification, backoff) without a task per resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._waiting: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._counter = itertools.count()
        self._timer_changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, key: K) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._queue.put_nowait(key)

    async def get(self) -> K:
        while True:
            key = await self._queue.get()
            if key in self._waiting:  # skip keys forgotten while waiting
                self._waiting.discard(key)
                self._active.add(key)
                return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def forget(self, key: K) -> None:
        self._waiting.discard(key)
        self._dirty.discard(key)
        self._due.pop(key, None)

    def add_after(self, key: K, delay: float) -> None:
        """Enqueue at now + delay; an earlier pending due time wins."""
        due = time.monotonic() + max(delay, 0.0)
        current = self._due.get(key)
        if current is not None and current <= due:
            return
        self._due[key] = due
        heapq.heappush(self._timers, (due, next(self._counter), key))
        self._timer_changed.set()

    def cancel_timer(self, key: K) -> None:
        self._due.pop(key, None)

    async def run_timers(self) -> None:
        """Move due keys into the queue; waits on the earliest due time or a new timer."""
        while True:
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                due, _, key = heapq.heappop(self._timers)
                if self._due.get(key) == due:
                    del self._due[key]
                    self.add(key)
            timeout = self._timers[0][0] - now if self._timers else None
            self._timer_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_changed.wait(), timeout)
