"""Level-based reconcile of EmailSettings: observe -> compute whole status -> patch once.

kopf delivers raw watch events (no kopf state is written); this module owns what
happens next: a keyed work queue, the Secret/ConfigMap reference index, shared SMTP
verification, retries with capped backoff, periodic re-verification from one timer
heap, and a status write only when the computed status differs from the stored one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from emailsettings.api.conditions import TRANSIENT, ConditionType, Reason
from emailsettings.api.models import EmailSettingsSpec, VerificationMode
from emailsettings.api.validation import validate_spec
from emailsettings.controller import testmessage
from emailsettings.controller.credentials import Resolved, referenced_objects, resolve
from emailsettings.controller.events import EventRecorder
from emailsettings.controller.metrics import OperatorMetrics
from emailsettings.controller.objectcache import ObjectCache, ObjectKey
from emailsettings.controller.observe import all_recipients, endpoint_for
from emailsettings.controller.status import (
    Observation,
    Problem,
    SMTPObservation,
    compute_status,
    status_equal,
)
from emailsettings.controller.verifier import SharedVerifier
from emailsettings.controller.workqueue import WorkQueue
from emailsettings.kube import ApiError, ConflictError, KubeClient, NotFoundError, paths

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)

# A verification slower than this first publishes Reconciling=True, then the result.
PROGRESS_AFTER_SECONDS = 2.0
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 300.0


def now_rfc3339(at: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(at if at is not None else time.time(), dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> float | None:
    try:
        return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    except (TypeError, ValueError):
        return None


def _resource_version(body: Mapping[str, Any]) -> int | None:
    try:
        return int(body["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class Memo:
    """The last verification of one resource, and what it was verified with."""

    fingerprint: tuple[Any, ...]
    observation: SMTPObservation
    at_monotonic: float


@dataclass
class Tracked:
    body: dict[str, Any]
    refs: set[ObjectKey] = field(default_factory=set)
    last_written: dict[str, Any] | None = None
    last_written_rv: int | None = None
    memo: Memo | None = None
    failures: int = 0
    test_message: dict[str, Any] | None = None
    pending_test_message: tuple[EmailSettingsSpec, Resolved] | None = None


@dataclass(frozen=True)
class ReconcilerConfig:
    workers: int = 16
    progress_after_seconds: float = PROGRESS_AFTER_SECONDS


class Reconciler:
    def __init__(
        self,
        client: KubeClient,
        verifier: SharedVerifier,
        metrics: OperatorMetrics,
        config: ReconcilerConfig | None = None,
    ) -> None:
        self._client = client
        self._verifier = verifier
        self._metrics = metrics
        self._config = config or ReconcilerConfig()
        self._cache = ObjectCache(client)
        self._events = EventRecorder(client)
        self._queue: WorkQueue[Key] = WorkQueue()
        self._tracked: dict[Key, Tracked] = {}
        self._referrers: dict[ObjectKey, set[Key]] = defaultdict(set)

    # ------------------------------------------------------------------ intake

    def observe(self, body: Mapping[str, Any]) -> None:
        """An EmailSettings was added or modified (also the echo of our own writes)."""
        meta = body["metadata"]
        key: Key = (meta["namespace"], meta["name"])
        slim = {
            "metadata": {
                k: meta.get(k)
                for k in (
                    "name",
                    "namespace",
                    "uid",
                    "generation",
                    "resourceVersion",
                    "annotations",
                )
            },
            "spec": body.get("spec") or {},
            "status": body.get("status") or {},
        }
        tracked = self._tracked.get(key)
        if tracked is None:
            self._tracked[key] = Tracked(slim)
            self._metrics.resources.set(len(self._tracked))
            self._queue.add(key)
            return
        version = _resource_version(slim)
        if (
            tracked.last_written_rv is not None
            and version is not None
            and version < tracked.last_written_rv
        ):
            return  # an event older than our own last write: nothing new in it
        previous = tracked.body
        tracked.body = slim
        if (
            previous["metadata"].get("generation") != meta.get("generation")
            or previous["metadata"].get("annotations") != meta.get("annotations")
            or not status_equal(slim["status"], tracked.last_written)
        ):
            self._queue.add(key)

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        tracked = self._tracked.pop(key, None)
        if tracked is not None:
            self._index(key, tracked, set())
        self._queue.forget(key)
        self._metrics.resources.set(len(self._tracked))

    def is_referenced(self, kind: str, namespace: str, name: str) -> bool:
        return bool(self._referrers.get((kind, namespace, name)))

    def object_changed(
        self, kind: str, namespace: str, name: str, body: Mapping[str, Any] | None
    ) -> None:
        """A referenced Secret or ConfigMap was created, changed or deleted."""
        object_key: ObjectKey = (kind, namespace, name)
        if not self.is_referenced(kind, namespace, name):
            return  # keep only referenced objects in memory
        if not self._cache.update(object_key, body):
            return
        for key in list(self._referrers.get(object_key, ())):
            self._queue.add(key)

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._worker()) for _ in range(self._config.workers)]
        tasks.append(asyncio.create_task(self._queue.run_timers()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            self._metrics.queue_depth.set(len(self._queue))
            try:
                await self._reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - one resource must not stop the rest
                self._metrics.reconciles.labels("error").inc()
                self._retry_later(key, f"{type(error).__name__}")
            finally:
                self._queue.done(key)

    def _retry_later(self, key: Key, why: str) -> None:
        tracked = self._tracked.get(key)
        failures = tracked.failures + 1 if tracked else 1
        if tracked:
            tracked.failures = failures
        delay = min(BACKOFF_BASE_SECONDS * 2 ** (failures - 1), BACKOFF_MAX_SECONDS)
        log.warning("reconcile of %s/%s failed (%s); retrying in %.0fs", *key, why, delay)
        self._queue.add_after(key, delay)

    def _index(self, key: Key, tracked: Tracked, refs: set[ObjectKey]) -> None:
        for gone in tracked.refs - refs:
            referrers = self._referrers.get(gone)
            if referrers is not None:
                referrers.discard(key)
                if not referrers:
                    del self._referrers[gone]
                    self._cache.drop(gone)
        for new in refs - tracked.refs:
            self._referrers[new].add(key)
        tracked.refs = refs

    # ------------------------------------------------------------------ reconcile

    async def _reconcile(self, key: Key) -> None:
        tracked = self._tracked.get(key)
        if tracked is None:
            return
        body = tracked.body
        generation = int(body["metadata"].get("generation") or 0)
        tracked.pending_test_message = None
        observation, next_check = await self._observe(key, tracked, generation)
        await self._publish(key, tracked, observation)
        pending = _take_pending(tracked)
        if pending is not None:
            # After the verified status is out, so the claim never rides on a stale one.
            spec, resolved = pending
            if await self._send_test_message(key, tracked, spec, resolved, generation):
                await self._publish(key, tracked, observation)
        self._queue.cancel_timer(key)
        if next_check is not None:
            self._queue.add_after(key, next_check)

    async def _observe(
        self, key: Key, tracked: Tracked, generation: int
    ) -> tuple[Observation, float | None]:
        """What is true now, and in how many seconds to look again (None: on change only)."""
        namespace = key[0]
        raw_spec = tracked.body["spec"]
        errors = validate_spec(raw_spec)
        if errors:
            self._index(key, tracked, set())
            first = errors[0]
            more = f" ({len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
            problem = Problem(Reason(first.reason), f"{first.path}: {first.message}{more}")
            return Observation(generation, enabled=True, verify=True, spec_problem=problem), None
        spec = EmailSettingsSpec.model_validate(raw_spec)
        self._index(key, tracked, referenced_objects(namespace, spec))
        verify = spec.verification.mode is VerificationMode.VERIFY_AND_SAVE
        if not spec.enabled:
            return Observation(generation, enabled=False, verify=verify), None
        resolved = await resolve(namespace, spec, self._cache)
        has_credentials = spec.smtp.password_secret_ref is not None
        if isinstance(resolved, Problem):
            # A Secret change re-triggers at once; the timer only covers missed events.
            observed = Observation(
                generation, enabled=True, verify=verify, credentials_problem=resolved
            )
            return observed, self._backoff(tracked)
        if not verify:
            tracked.failures = 0
            observed = Observation(
                generation, enabled=True, verify=False, has_credentials=has_credentials
            )
            return observed, None
        smtp = await self._verification(key, tracked, spec, resolved, generation)
        if smtp.problem is None and spec.verification.send_test_message:
            tracked.pending_test_message = (spec, resolved)
        interval = float(spec.verification.interval_seconds)
        if smtp.problem is None:
            tracked.failures = 0
            age = time.monotonic() - tracked.memo.at_monotonic if tracked.memo else 0.0
            next_check: float | None = max(interval - age, 1.0)
        elif smtp.problem.reason in TRANSIENT:
            next_check = self._backoff(tracked)
        else:
            tracked.failures = 0
            next_check = interval
        observed = Observation(
            generation, enabled=True, verify=True, smtp=smtp, has_credentials=has_credentials
        )
        return observed, next_check

    def _backoff(self, tracked: Tracked) -> float:
        tracked.failures += 1
        delay: float = BACKOFF_BASE_SECONDS * 2 ** (tracked.failures - 1)
        return min(delay, BACKOFF_MAX_SECONDS)

    async def _verification(
        self,
        key: Key,
        tracked: Tracked,
        spec: EmailSettingsSpec,
        resolved: Resolved,
        generation: int,
    ) -> SMTPObservation:
        fingerprint = (generation, resolved.secret_resource_version, resolved.ca_resource_version)
        interval = float(spec.verification.interval_seconds)
        memo = tracked.memo
        if memo is None:
            memo = tracked.memo = self._memo_from_status(tracked, fingerprint, interval)
        if memo is not None and memo.fingerprint == fingerprint:
            age = time.monotonic() - memo.at_monotonic
            limit = interval if memo.observation.problem is None else self._retry_window(memo)
            if age < limit:
                return memo.observation
        endpoint = endpoint_for(spec, resolved)
        task = asyncio.create_task(
            self._verifier.verify(
                endpoint,
                resolved.login,
                spec.sender_address,
                all_recipients(spec),
                max_age=interval,
            )
        )
        done, _ = await asyncio.wait({task}, timeout=self._config.progress_after_seconds)
        if not done:
            progress = Observation(generation, enabled=True, verify=True, in_progress=True)
            await self._publish(key, tracked, progress)
        shared = await task
        result = shared.result
        if shared.shared:
            self._metrics.shared_hits.inc()
        else:
            self._metrics.verifications.labels(str(result.reason)).inc()
            self._metrics.verification_seconds.observe(result.latency_seconds)
        observation = SMTPObservation(
            endpoint=endpoint.address,
            verified_at=now_rfc3339(shared.at_wall),
            latency_ms=round(result.latency_seconds * 1000),
            secret_resource_version=resolved.secret_resource_version,
            generation=generation,
            tls_version=result.tls_version,
            auth_mechanism=result.auth_mechanism,
            problem=None if result.ok else Problem(Reason(result.reason), result.message),
        )
        tracked.memo = Memo(fingerprint, observation, shared.at_monotonic)
        return observation

    @staticmethod
    def _retry_window(memo: Memo) -> float:
        # Failed verifications are looked at again when their retry timer fires.
        return 0.0 if memo.observation.problem else float("inf")

    @staticmethod
    def _memo_from_status(
        tracked: Tracked, fingerprint: tuple[Any, ...], interval: float
    ) -> Memo | None:
        """After a restart, trust a still-fresh successful verification in the status."""
        status = tracked.body["status"]
        smtp = status.get("smtp") or {}
        ready: Mapping[str, Any] = _ready(status)
        verified_at = parse_rfc3339(smtp.get("verifiedAt") or "")
        if (
            verified_at is None
            or ready.get("reason") != Reason.VERIFIED
            or ready.get("status") != "True"
            or smtp.get("verifiedGeneration") != fingerprint[0]
            or smtp.get("secretResourceVersion") != fingerprint[1]
            or fingerprint[2] is not None  # a CA bundle's version is not recorded
        ):
            return None
        age = time.time() - verified_at
        if not 0 <= age < interval:
            return None
        observation = SMTPObservation(
            endpoint=smtp.get("endpoint") or "",
            verified_at=smtp["verifiedAt"],
            latency_ms=int(smtp.get("latencyMilliseconds") or 0),
            secret_resource_version=smtp.get("secretResourceVersion"),
            generation=int(smtp["verifiedGeneration"]),
            tls_version=smtp.get("tlsVersion"),
            auth_mechanism=smtp.get("authMechanism"),
        )
        return Memo(fingerprint, observation, time.monotonic() - age)

    async def _send_test_message(
        self,
        key: Key,
        tracked: Tracked,
        spec: EmailSettingsSpec,
        resolved: Resolved,
        generation: int,
    ) -> bool:
        """True when the test-message record changed and needs publishing."""
        record = tracked.test_message
        if record is None:
            record = tracked.body["status"].get("testMessage")
        if record and record.get("generation") == generation:
            if testmessage.is_claimed_without_result(record, generation):
                # Claimed by an earlier run that died before recording the outcome.
                tracked.test_message = {
                    "generation": generation,
                    "result": "Failed",
                    "message": "Outcome unknown: the operator restarted while sending; "
                    "not sent again to avoid a duplicate.",
                }
                return True
            tracked.test_message = record
            return False
        claim = testmessage.claim(generation)
        written = await self._client.patch(
            paths.emailsettings_status(*key), {"status": {"testMessage": claim}}
        )
        self._metrics.status_writes.inc()
        tracked.last_written_rv = _resource_version(written)
        tracked.body = {**tracked.body, "status": written.get("status") or {}}
        tracked.test_message = claim
        meta = tracked.body["metadata"]
        message = testmessage.compose(spec, key[0], key[1], str(meta.get("uid")), generation)
        tracked.test_message = await testmessage.send(
            endpoint_for(spec, resolved), resolved.login, spec, message, generation, now_rfc3339()
        )
        return True

    # ------------------------------------------------------------------ writing

    async def _publish(self, key: Key, tracked: Tracked, observation: Observation) -> None:
        stored = tracked.body["status"]
        status = compute_status(observation, stored, now_rfc3339())
        status["testMessage"] = tracked.test_message or stored.get("testMessage")
        if status_equal(status, stored) or status_equal(status, tracked.last_written):
            self._metrics.reconciles.labels("unchanged").inc()
            return
        patch = {"status": {**status, "conditions": status["conditions"]}}
        path = paths.emailsettings_status(*key)
        try:
            written = await self._client.patch(path, patch)
        except NotFoundError:
            return  # deleted meanwhile; the DELETED event forgets it
        except ConflictError:
            self._queue.add(key)
            return
        except ApiError:
            raise
        self._metrics.status_writes.inc()
        self._metrics.reconciles.labels("written").inc()
        tracked.last_written = written.get("status") or status
        tracked.last_written_rv = _resource_version(written)
        previous_body = tracked.body
        tracked.body = {**previous_body, "status": tracked.last_written}
        await self._announce(previous_body, stored, status)

    async def _announce(
        self, body: Mapping[str, Any], before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> None:
        old = _ready(before)
        new = _ready(after)
        if new.get("status") == "Unknown":
            return
        if (old.get("status"), old.get("reason")) == (new.get("status"), new.get("reason")):
            return
        failed = new.get("status") != "True"
        if failed or old.get("status") == "False":  # first success is no news
            await self._events.record(
                body, warning=failed, reason=str(new.get("reason")), message=str(new.get("message"))
            )


def _take_pending(tracked: Tracked) -> tuple[EmailSettingsSpec, Resolved] | None:
    pending, tracked.pending_test_message = tracked.pending_test_message, None
    return pending


def _ready(status: Mapping[str, Any]) -> Mapping[str, Any]:
    for condition in status.get("conditions") or []:
        if condition.get("type") == ConditionType.READY:
            return dict(condition)
    return {}
