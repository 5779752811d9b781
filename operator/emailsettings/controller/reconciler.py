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

from emailsettings.api.addresses import parse_address
from emailsettings.api.conditions import TRANSIENT, ConditionType, Reason
from emailsettings.api.models import Category, EmailSettingsSpec, VerificationMode
from emailsettings.api.requests import (
    TEST_MESSAGE_ANNOTATION,
    VERIFY_ANNOTATION,
    TestMessageRequest,
)
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
    test_request: dict[str, Any] | None = None
    # Settings proven usable in this reconcile (for test messages), else None.
    usable: tuple[EmailSettingsSpec, Resolved] | None = None
    force_verify: bool = False
    verify_answer: str | None = None


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
        annotations = body["metadata"].get("annotations") or {}
        verify_request = annotations.get(VERIFY_ANNOTATION) or None
        answered = (body["status"].get("verifyRequest") or {}).get("request")
        tracked.force_verify = verify_request is not None and verify_request != answered
        tracked.usable = None
        observation, next_check = await self._observe(key, tracked, generation)
        tracked.verify_answer = verify_request if tracked.force_verify else None
        await self._publish(key, tracked, observation)
        tracked.force_verify, tracked.verify_answer = False, None
        # Test messages go out after the verified status, so a claim never rides on a stale one.
        if await self._spec_test_message(key, tracked, generation):
            await self._publish(key, tracked, observation)
        request = annotations.get(TEST_MESSAGE_ANNOTATION)
        if request and await self._requested_test_message(key, tracked, request):
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
            tracked.usable = (spec, resolved)
            observed = Observation(
                generation, enabled=True, verify=False, has_credentials=has_credentials
            )
            return observed, None
        smtp = await self._verification(key, tracked, spec, resolved, generation)
        if smtp.problem is None:
            tracked.usable = (spec, resolved)
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
        if memo is not None and memo.fingerprint == fingerprint and not tracked.force_verify:
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
                bypass_cache=tracked.force_verify,
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
            ca_resource_version=resolved.ca_resource_version,
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
            or smtp.get("caBundleResourceVersion") != fingerprint[2]
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
            ca_resource_version=smtp.get("caBundleResourceVersion"),
            generation=int(smtp["verifiedGeneration"]),
            tls_version=smtp.get("tlsVersion"),
            auth_mechanism=smtp.get("authMechanism"),
        )
        return Memo(fingerprint, observation, time.monotonic() - age)

    async def _spec_test_message(self, key: Key, tracked: Tracked, generation: int) -> bool:
        """spec.verification.sendTestMessage: once per verified generation. True if changed."""
        if tracked.usable is None:
            return False
        spec, resolved = tracked.usable
        if (
            not spec.verification.send_test_message
            or spec.verification.mode is VerificationMode.SAVE
        ):
            return False
        record = tracked.test_message or tracked.body["status"].get("testMessage")
        if record and record.get("generation") == generation:
            if testmessage.claimed_without_result(record, "generation", generation):
                tracked.test_message = {
                    "generation": generation,
                    "result": "Failed",
                    "message": testmessage.OUTCOME_UNKNOWN,
                }
                return True
            tracked.test_message = dict(record)
            return False
        claim = {"generation": generation, "message": "Sending the test message."}
        await self._patch_status(key, tracked, {"testMessage": claim})
        tracked.test_message = claim
        recipients = spec.recipients.for_category(Category.ADMINISTRATIVE)
        meta = tracked.body["metadata"]
        message = testmessage.generation_message(
            spec,
            namespace=key[0],
            name=key[1],
            uid=str(meta.get("uid")),
            generation=generation,
            recipients=recipients,
        )
        outcome = await testmessage.send(
            endpoint_for(spec, resolved), resolved.login, spec.sender_address, recipients, message
        )
        tracked.test_message = {"generation": generation, **outcome.record(now_rfc3339())}
        return True

    async def _requested_test_message(  # noqa: PLR0911 - one return per answer
        self, key: Key, tracked: Tracked, text: str
    ) -> bool:
        """The test-message annotation: once per request id. True if the answer changed."""
        record = tracked.test_request or tracked.body["status"].get("testMessageRequest")
        try:
            request = TestMessageRequest.decode(text)
        except ValueError as error:
            request_id = text[:128]
            if record and record.get("id") == request_id:
                return False
            tracked.test_request = {"id": request_id, "result": "Failed", "message": str(error)}
            return True
        if record and record.get("id") == request.id:
            if testmessage.claimed_without_result(record, "id", request.id):
                tracked.test_request = {
                    **record,
                    "result": "Failed",
                    "message": testmessage.OUTCOME_UNKNOWN,
                }
                return True
            tracked.test_request = dict(record)
            return False
        if tracked.usable is None:
            ready = _ready(tracked.body["status"])
            tracked.test_request = {
                "id": request.id,
                "result": "Failed",
                "message": "Not sent: the settings are not usable "
                f"(Ready={ready.get('status', 'Unknown')}, "
                f"{ready.get('reason', 'no status yet')}).",
            }
            return True
        spec, resolved = tracked.usable
        recipients = (
            list(request.to) if request.to else spec.recipients.for_category(str(request.category))
        )
        bad = _invalid_addresses(recipients)
        if bad:
            tracked.test_request = {
                "id": request.id,
                "result": "Failed",
                "message": f"Not sent: not valid addresses: {', '.join(bad)}.",
            }
            return True
        claim = {"id": request.id, "to": recipients}
        await self._patch_status(key, tracked, {"testMessageRequest": claim})
        tracked.test_request = claim
        meta = tracked.body["metadata"]
        message = testmessage.requested_message(
            spec,
            namespace=key[0],
            name=key[1],
            uid=str(meta.get("uid")),
            request_id=request.id,
            recipients=recipients,
        )
        outcome = await testmessage.send(
            endpoint_for(spec, resolved), resolved.login, spec.sender_address, recipients, message
        )
        tracked.test_request = {**claim, **outcome.record(now_rfc3339())}
        return True

    async def _patch_status(self, key: Key, tracked: Tracked, fields: dict[str, Any]) -> None:
        written = await self._client.patch(paths.emailsettings_status(*key), {"status": fields})
        self._metrics.status_writes.inc()
        tracked.last_written = written.get("status") or {}
        tracked.last_written_rv = _resource_version(written)
        tracked.body = {**tracked.body, "status": tracked.last_written}

    # ------------------------------------------------------------------ writing

    async def _publish(self, key: Key, tracked: Tracked, observation: Observation) -> None:
        stored = tracked.body["status"]
        status = compute_status(observation, stored, now_rfc3339())
        status["testMessage"] = tracked.test_message or stored.get("testMessage")
        status["testMessageRequest"] = tracked.test_request or stored.get("testMessageRequest")
        status["verifyRequest"] = stored.get("verifyRequest")
        if tracked.verify_answer is not None:
            ready = _ready(status)
            status["verifyRequest"] = {
                "request": tracked.verify_answer,
                "answeredAt": now_rfc3339(),
                "ready": ready.get("status", "Unknown"),
                "reason": ready.get("reason", "Unknown"),
            }
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


def _invalid_addresses(recipients: list[str]) -> list[str]:
    bad = []
    for address in recipients:
        try:
            parse_address(address)
        except ValueError:
            bad.append(address[:100])
    return bad


def _ready(status: Mapping[str, Any]) -> Mapping[str, Any]:
    for condition in status.get("conditions") or []:
        if condition.get("type") == ConditionType.READY:
            return dict(condition)
    return {}
