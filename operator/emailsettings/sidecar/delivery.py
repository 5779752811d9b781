"""The delivery worker: spool -> SMTP, with reuse, rate, backoff and dead letters.

One loop. While the settings gate is closed it waits (notifications keep being
accepted and spooled). Otherwise it takes the notifications that are due, opens
one SMTP session and sends up to `batch_size` of them over it, paced by a token
bucket per server. Each outcome is committed to the spool right after the
server answered, so a crash can repeat at most the message in flight; such a
repeat carries the same Message-ID.

What happens on failure:

- the connection, TLS or login fails: every notification in the batch waits
  (capped exponential backoff for the server as a whole); after an
  authentication failure the password is read again;
- a recipient gets a 4xx: that recipient is retried with capped exponential
  backoff; a 5xx: that recipient's delivery is dead-lettered;
- the server refuses the message itself with a 5xx (size, content): the
  notification is dead-lettered; a refused sender is a settings problem and is
  retried until the settings are fixed or the notification is too old;
- a notification older than `max_age` is dead-lettered by the maintenance loop.

Messages taken by the SMTP intake ("relayed") go the same way; only their bytes
differ: the stored message with its From rewritten (see relay.py), sent to the
recipient lists of its categories and the addresses it is relayed to.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emailsettings.api.conditions import Reason
from emailsettings.api.models import Category, EmailSettingsSpec
from emailsettings.sidecar import relay
from emailsettings.sidecar.compose import ComposeError, Envelope, compose, message_id
from emailsettings.sidecar.credentials import CredentialError, Credentials
from emailsettings.sidecar.metrics import Metrics
from emailsettings.sidecar.settings_gate import Gate
from emailsettings.sidecar.spool import (
    Due,
    Outcome,
    RecipientResult,
    Spool,
    SpoolError,
    State,
)
from emailsettings.sidecar.templates import RenderContext, Renderer
from emailsettings.smtp import (
    Encryption,
    Endpoint,
    Login,
    SMTPDeliveryError,
    TLSSettings,
    open_session,
)
from emailsettings.smtp.session import DeliverySession

log = logging.getLogger(__name__)

# Refusals that say "this message cannot be delivered", not "the settings are wrong".
MESSAGE_LEVEL = frozenset(
    {Reason.MESSAGE_REJECTED, Reason.SMTPUTF8_NOT_OFFERED, Reason.RECIPIENT_REJECTED}
)
HELD_RECHECK_SECONDS = 1.0  # re-read a missing password file this often
IDLE_WAKE_SECONDS = 30.0


@dataclass(frozen=True)
class DeliverySettings:
    batch_size: int = 50
    rate_per_second: float = 5.0
    rate_burst: int = 10
    retry_base: float = 2.0
    retry_max: float = 300.0
    max_age: float = 86400.0
    retention: float = 7 * 86400.0
    message_id_domain: str = ""
    rewrite_from: bool = True  # relayed messages: From becomes spec.sender


class TokenBucket:
    """At most `rate` messages a second on average, `burst` back to back."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._stamp = clock()

    async def acquire(self) -> None:
        while True:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / self.rate)  # pacing, by design


@dataclass
class DeliveryStatus:
    state: str = "starting"  # held | idle | delivering | backing-off | spool-unavailable
    server: str | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    backoff_until: float | None = None
    credential_problem: CredentialError | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "server": self.server,
            "lastSuccessAt": self.last_success_at,
            "lastError": self.last_error,
            "lastErrorAt": self.last_error_at,
            "backoffUntil": self.backoff_until,
        }


def _categories(item: Due) -> tuple[str, ...]:
    return item.categories if item.relayed else (item.category,)


def _first_recipients(spec: EmailSettingsSpec, item: Due) -> list[str]:
    """Who gets it at the first attempt: the current recipient lists of its categories,
    then (relayed messages) the addresses it was sent to as addressed."""
    result: list[str] = []
    for category in _categories(item):
        for address in spec.recipients.for_category(Category(category)):
            if address not in result:
                result.append(address)
    for address in item.relay_to:
        if address not in result:
            result.append(address)
    return result


def endpoint_for(spec: EmailSettingsSpec, ca_bundle: str | None) -> Endpoint:
    smtp = spec.smtp
    tls = smtp.effective_tls
    return Endpoint(
        host=smtp.host,
        port=smtp.port,
        encryption=Encryption(smtp.encryption.value),
        tls=TLSSettings(
            ca_bundle_pem=ca_bundle,
            server_name=tls.server_name or None,
            min_version=tls.min_version.value,
        ),
        allow_plaintext_auth=smtp.allow_plaintext_auth,
        helo_name=smtp.helo_name or None,
        timeout_seconds=float(smtp.connect_timeout_seconds),
    )


class Deliverer:
    def __init__(
        self,
        *,
        spool: Spool,
        gate: Callable[[], Gate],
        credentials: Credentials,
        renderer: Renderer,
        metrics: Metrics,
        settings: DeliverySettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self._gate = gate
        self.credentials = credentials
        self.renderer = renderer
        self.metrics = metrics
        self.settings = settings
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._buckets: dict[str, TokenBucket] = {}
        self._session_failures = 0
        self._random = random.Random()  # noqa: S311 - jitter, not cryptography
        self.status = DeliveryStatus()

    # control -----------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def effective_gate(self) -> Gate:
        """The settings gate, closed also while the password or CA cannot be read."""
        gate = self._gate()
        problem = self.status.credential_problem
        if gate.may_send and problem is not None:
            return gate.held(problem.reason, problem.message)
        return gate

    async def _wait(self, seconds: float | None) -> None:
        self._wake.clear()
        if self._stopping:
            return
        timeout = IDLE_WAKE_SECONDS if seconds is None else max(0.0, min(seconds, 300.0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    # the loop ----------------------------------------------------------------

    async def run(self) -> None:
        while not self._stopping:
            try:
                await self._step()
            except Exception:
                # Never let one bad notification or a bug stop delivery for good.
                log.exception("delivery step failed; trying again shortly")
                self._note_error("internal error in delivery; see the sidecar's log")
                await self._wait(HELD_RECHECK_SECONDS)

    async def _step(self) -> None:
        gate = self._gate()
        if not gate.may_send or gate.spec is None:
            self.status.state = "held"
            await self._wait(None)
            return
        now = self._clock()
        if self.status.backoff_until is not None and self.status.backoff_until > now:
            self.status.state = "backing-off"
            await self._wait(self.status.backoff_until - now)
            return
        try:
            due = await self.spool.due(now, self.settings.batch_size)
            if not due:
                self.status.state = "idle"
                next_at = await self.spool.next_due_at()
                await self._wait(None if next_at is None else next_at - now)
                return
        except SpoolError as error:
            self.status.state = "spool-unavailable"
            log.warning("cannot read the spool: %s", error)
            await self._wait(HELD_RECHECK_SECONDS)
            return
        try:
            endpoint, login = await self._connection_settings(gate.spec)
        except CredentialError as error:
            self._credential_problem(error)
            await self._wait(HELD_RECHECK_SECONDS)
            return
        self.status.state = "delivering"
        self.status.server = endpoint.address
        try:
            await self._deliver_batch(gate, endpoint, login, due)
        except SpoolError as error:
            log.warning("cannot record delivery results: %s", error)
            await self._wait(HELD_RECHECK_SECONDS)

    async def _connection_settings(self, spec: EmailSettingsSpec) -> tuple[Endpoint, Login | None]:
        password = await self.credentials.password(spec)
        ca_bundle = await self.credentials.ca_bundle(spec)
        if self.status.credential_problem is not None:
            log.info("credentials readable again")
        self.status.credential_problem = None
        login = None
        if spec.smtp.username:
            login = Login(spec.smtp.username, password or "")
        return endpoint_for(spec, ca_bundle), login

    def _credential_problem(self, error: CredentialError) -> None:
        previous = self.status.credential_problem
        if previous is None or previous.message != error.message:
            log.warning("delivery held: %s", error.message)
        self.status.credential_problem = error
        self.status.state = "held"

    async def _deliver_batch(
        self, gate: Gate, endpoint: Endpoint, login: Login | None, due: list[Due]
    ) -> None:
        stack = contextlib.AsyncExitStack()
        try:
            session: DeliverySession = await stack.enter_async_context(
                open_session(endpoint, login)
            )
        except SMTPDeliveryError as error:
            await self._session_failed(error, due)
            return
        self.metrics.sessions.labels(result="ok").inc()
        self._session_failures = 0
        self.status.backoff_until = None
        try:
            for item in due:
                current = self._gate()
                if (
                    self._stopping
                    or not current.may_send
                    or current.resource_version != gate.resource_version
                ):
                    break  # settings changed: start over with the new ones
                keep_going = await self._send_one(session, gate, item)
                if not keep_going:
                    break
        finally:
            with contextlib.suppress(Exception):
                await stack.aclose()

    async def _session_failed(self, error: SMTPDeliveryError, due: list[Due]) -> None:
        self.metrics.sessions.labels(result=str(error.reason)).inc()
        self._session_failures += 1
        delay = self._backoff(self._session_failures - 1)
        now = self._clock()
        self.status.backoff_until = now + delay
        self._note_error(f"{error.reason}: {error.message}")
        log.warning(
            "cannot open an SMTP session (%s); %d notification(s) wait, next try in %.1fs",
            error,
            len(due),
            delay,
        )
        if error.reason is Reason.AUTHENTICATION_FAILED:
            self.credentials.invalidate()  # a rotated password is read afresh
        outcomes = [
            Outcome(
                item.id,
                now=now,
                error=f"{error.reason}: {error.message}",
                next_attempt_at=now + delay,
            )
            for item in due
        ]
        await self.spool.record(outcomes)

    async def _send_one(self, session: DeliverySession, gate: Gate, item: Due) -> bool:
        """Send one notification; False when the session should not be used further."""
        spec = gate.spec
        assert spec is not None
        now = self._clock()
        recipients = (
            list(item.pending_recipients)
            if item.pending_recipients is not None
            else _first_recipients(spec, item)
        )
        if not recipients:
            lists = " and ".join(f"spec.recipients.{c}" for c in _categories(item))
            await self._finish(
                item,
                Outcome(
                    item.id,
                    now=now,
                    dead_letter_reason=f"NoRecipients: {lists or 'the recipient list'} "
                    f"{'are' if ' and ' in lists else 'is'} empty",
                ),
                cause="no_recipients",
            )
            return True
        mid = item.message_id or message_id(
            item.idempotency_key or item.id,
            self.settings.message_id_domain or spec.sender_address.rpartition("@")[2],
        )
        try:
            if item.relayed:
                data = await self._relayed_bytes(spec, item, mid)
            else:
                data = self._compose(spec, item, recipients, mid)
        except ComposeError as error:
            await self._finish(
                item,
                Outcome(item.id, now=now, dead_letter_reason=f"ComposeFailed: {error}"),
                cause="compose",
            )
            return True
        except SpoolError:
            raise
        except Exception as error:
            # A bug, not the notification's fault: retry later (max_age bounds it) without
            # blocking the notifications behind this one.
            log.exception("cannot build the message for notification %s", item.id)
            outcome = Outcome(
                item.id,
                now=now,
                error=f"InternalError: cannot build the message ({type(error).__name__})",
                next_attempt_at=now + self._backoff(item.attempts),
            )
            await self._finish(item, outcome, cause="compose")
            return True
        bucket = self._buckets.setdefault(
            session.endpoint.address,
            TokenBucket(self.settings.rate_per_second, self.settings.rate_burst),
        )
        await bucket.acquire()
        started = time.monotonic()
        try:
            result = await session.send(spec.sender_address, recipients, data)
        except SMTPDeliveryError as error:
            self.metrics.send_seconds.observe(time.monotonic() - started)
            return await self._send_failed(session, item, recipients, mid, error)
        self.metrics.send_seconds.observe(time.monotonic() - started)
        now = self._clock()
        retry_at = now + self._backoff(item.attempts)
        dead = {r: RecipientResult(c, t) for r, (c, t) in result.rejected.items() if c >= 500}
        retry = {r: RecipientResult(c, t) for r, (c, t) in result.rejected.items() if c < 500}
        sent = tuple(r for r in recipients if r not in result.rejected)
        self.status.last_success_at = now
        self.metrics.messages.labels(result="partial" if result.rejected else "sent").inc()
        await self._finish(
            item,
            Outcome(
                item.id,
                now=now,
                message_id=mid,
                recipients=tuple(recipients),
                sent=sent,
                dead=dead,
                retry=retry,
                next_attempt_at=retry_at,
            ),
            cause="rejected",
        )
        return True

    def _compose(
        self, spec: EmailSettingsSpec, item: Due, recipients: list[str], mid: str
    ) -> bytes:
        return compose(
            Envelope(
                sender_address=spec.sender_address,
                sender_name=spec.sender_display_name,
                recipients=recipients,
                message_id=mid,
                category=item.category,
                event=item.event,
                occurrences=item.occurrences,
                # The notification's time, so that every attempt is the same message.
                date=dt.datetime.fromtimestamp(item.created_at, dt.UTC),
                to=item.all_recipients,
            ),
            self.renderer.render(
                RenderContext(
                    category=item.category,
                    event=item.event,
                    fields=item.fields,
                    subject=item.subject,
                    body=item.body,
                    occurrences=item.occurrences,
                    first_at=item.first_at,
                    last_at=item.last_at,
                )
            ),
        )

    async def _relayed_bytes(self, spec: EmailSettingsSpec, item: Due, mid: str) -> bytes:
        stored = await self.spool.raw_message(item.id)
        if stored is None:
            raise ComposeError("the stored message is missing")
        sender = (spec.sender_display_name, spec.sender_address)
        return relay.for_delivery(
            stored,
            sender=sender if self.settings.rewrite_from else None,
            message_id=mid,
            occurrences=item.occurrences,
        )

    async def _send_failed(
        self,
        session: DeliverySession,
        item: Due,
        recipients: list[str],
        mid: str,
        error: SMTPDeliveryError,
    ) -> bool:
        now = self._clock()
        retry_at = now + self._backoff(item.attempts)
        text = f"{error.reason}: {error.message}"
        self._note_error(text)
        if error.rejected:
            # Every recipient was refused; judge each by its own reply.
            dead = {r: RecipientResult(c, t) for r, (c, t) in error.rejected.items() if c >= 500}
            retry = {r: RecipientResult(c, t) for r, (c, t) in error.rejected.items() if c < 500}
            for r in recipients:
                if r not in error.rejected:
                    retry[r] = RecipientResult(error.reply_code, text)
            outcome = Outcome(
                item.id,
                now=now,
                message_id=mid,
                recipients=tuple(recipients),
                dead=dead,
                retry=retry,
                next_attempt_at=retry_at,
            )
            self.metrics.messages.labels(result="rejected" if not retry else "retry").inc()
            await self._finish(item, outcome, cause="rejected")
            return True
        if error.permanent and error.reason in MESSAGE_LEVEL:
            self.metrics.messages.labels(result="rejected").inc()
            outcome = Outcome(
                item.id,
                now=now,
                message_id=mid,
                recipients=tuple(recipients),
                dead={r: RecipientResult(error.reply_code, text) for r in recipients},
            )
            await self._finish(item, outcome, cause="rejected")
            return True
        # Transient, or a settings problem (sender refused, connection lost): retry.
        self.metrics.messages.labels(result="retry").inc()
        log.info("notification %s will be retried: %s", item.id, text)
        outcome = Outcome(
            item.id,
            now=now,
            message_id=mid,
            recipients=tuple(recipients),
            retry={r: RecipientResult(error.reply_code, text) for r in recipients},
            next_attempt_at=retry_at,
        )
        await self._finish(item, outcome, cause="rejected")
        return session.is_alive()

    async def _finish(self, item: Due, outcome: Outcome, *, cause: str) -> None:
        (state,) = await self.spool.record([outcome])
        if state is State.DELIVERED:
            self.metrics.delivered.labels(category=item.category).inc()
            log.info("notification %s (%s/%s) delivered", item.id, item.category, item.event)
        elif state in {State.DEAD_LETTER, State.PARTIALLY_DELIVERED}:
            self.metrics.dead_lettered.labels(category=item.category, cause=cause).inc()
            log.warning("notification %s dead-lettered (%s)", item.id, cause)

    def _note_error(self, text: str) -> None:
        self.status.last_error = text
        self.status.last_error_at = self._clock()

    def _backoff(self, attempts: int) -> float:
        growth: float = 2.0 ** min(attempts, 30)
        base = min(self.settings.retry_max, self.settings.retry_base * growth)
        return base * self._random.uniform(0.75, 1.0)

    # maintenance --------------------------------------------------------------

    async def maintain(self, interval: float | None = None) -> None:
        """Expire old notifications, purge finished ones, refresh the gauges."""
        every = interval or max(0.2, min(30.0, self.settings.max_age / 20))
        while not self._stopping:
            await self.maintain_once()
            await asyncio.sleep(every)  # a periodic job, not a wait for a condition

    async def maintain_once(self) -> None:
        now = self._clock()
        try:
            for nid, category in await self.spool.expire(now, self.settings.max_age):
                self.metrics.dead_lettered.labels(category=category, cause="expired").inc()
                log.warning("notification %s dead-lettered: not delivered in time", nid)
            await self.spool.purge(now, self.settings.retention)
            stats = await self.spool.stats()
        except SpoolError as error:
            self.metrics.spool_healthy.set(0)
            log.debug("maintenance skipped: %s", error)
            return
        self.metrics.spool_healthy.set(1 if self.spool.healthy else 0)
        self.metrics.pending.set(stats.pending)
        self.metrics.pending_bytes.set(stats.pending_bytes)
        self.metrics.dead_letter.set(stats.dead_letter)
        oldest = stats.oldest_pending_at
        self.metrics.oldest_age.set(0 if oldest is None else max(0.0, now - oldest))
