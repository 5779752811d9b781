"""SMTP verification shared between resources that point at the same server.

Servers rate-limit logins, so resources with the same endpoint, credentials, TLS
settings, sender and recipients share one verification within their interval;
concurrent requests for the same key wait on the one in flight; the number of
SMTP sessions at once is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from emailsettings.smtp import Endpoint, Login, VerifyResult, verify

# A failure is shared only briefly: enough to collapse a burst, not to delay a retry.
FAILURE_SHARE_SECONDS = 5.0

VerifyFunction = Callable[[Endpoint, Login | None, str, Sequence[str]], Awaitable[VerifyResult]]
_Key = tuple[str, str, tuple[str, ...]]


@dataclass(frozen=True)
class SharedResult:
    result: VerifyResult
    at_monotonic: float
    at_wall: float
    shared: bool  # answered from another resource's verification


class SharedVerifier:
    def __init__(
        self,
        max_concurrent: int,
        verify_function: VerifyFunction = verify,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verify = verify_function
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrent)
        self._done: dict[_Key, SharedResult] = {}
        self._in_flight: dict[_Key, asyncio.Future[SharedResult]] = {}

    async def verify(
        self,
        endpoint: Endpoint,
        login: Login | None,
        sender: str,
        recipients: Sequence[str],
        *,
        max_age: float,
        bypass_cache: bool = False,
    ) -> SharedResult:
        key: _Key = (endpoint.key(login), sender, tuple(sorted(set(recipients))))
        if not bypass_cache:
            cached = self._fresh(key, max_age)
            if cached is not None:
                return SharedResult(cached.result, cached.at_monotonic, cached.at_wall, shared=True)
            pending = self._in_flight.get(key)
            if pending is not None:
                done = await asyncio.shield(pending)
                return SharedResult(done.result, done.at_monotonic, done.at_wall, shared=True)
        future: asyncio.Future[SharedResult] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            async with self._slots:
                result = await self._verify(endpoint, login, sender, recipients)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        else:
            outcome = SharedResult(result, self._clock(), time.time(), shared=False)
            self._done[key] = outcome
            future.set_result(outcome)
            return outcome
        finally:
            if self._in_flight.get(key) is future:
                del self._in_flight[key]

    def _fresh(self, key: _Key, max_age: float) -> SharedResult | None:
        entry = self._done.get(key)
        if entry is None:
            return None
        limit = max_age if entry.result.ok else min(max_age, FAILURE_SHARE_SECONDS)
        if self._clock() - entry.at_monotonic < limit:
            return entry
        del self._done[key]
        return None
