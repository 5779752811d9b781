"""The sidecar's HTTP API (aiohttp): notifications in, states, status, probes, metrics.

Two applications share the handlers: the full API, bound to localhost for the
application in the pod, and the probe application (health, readiness, metrics)
bound where the kubelet and Prometheus can reach it. Errors are RFC 9457
problem documents. A POST is answered 202 only after the spool committed the
notification; when the spool cannot store it the answer is 503, never 202.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from emailsettings.sidecar.delivery import Deliverer
from emailsettings.sidecar.intake import IntakeRules, RequestError, parse_request
from emailsettings.sidecar.metrics import Metrics
from emailsettings.sidecar.openapi import PROBLEM, document
from emailsettings.sidecar.spool import (
    IdempotencyConflictError,
    NotificationView,
    Spool,
    SpoolError,
    SpoolFullError,
    SpoolUnavailableError,
    State,
)
from emailsettings.sidecar.templates import Renderer

log = logging.getLogger(__name__)

_ID = re.compile(r"[0-9a-f]{32}")
_STATES = {str(s): s for s in State}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class AppState:
    spool: Spool
    deliverer: Deliverer
    renderer: Renderer
    metrics: Metrics
    rules: IntakeRules
    max_request_bytes: int
    settings_name: str
    namespace: str
    api_error: Callable[[], str | None] = lambda: None
    clock: Callable[[], float] = time.time
    accepting: bool = True
    openapi: dict[str, Any] = field(default_factory=dict)


STATE_KEY = web.AppKey("emailsettings_sidecar_state", AppState)


def timestamp(value: float | None) -> str | None:
    if value is None:
        return None
    moment = dt.datetime.fromtimestamp(value, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def problem(
    status: int, detail: str, *, field_name: str | None = None, retry_after: int | None = None
) -> web.Response:
    titles = {
        400: "Bad Request",
        404: "Not Found",
        405: "Method Not Allowed",
        409: "Conflict",
        413: "Content Too Large",
        415: "Unsupported Media Type",
        422: "Unprocessable Content",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }
    body = {
        "type": "about:blank",
        "title": titles.get(status, "Error"),
        "status": status,
        "detail": detail,
        "field": field_name,
    }
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response(body, status=status, content_type=PROBLEM, headers=headers)


def notification_json(view: NotificationView) -> dict[str, Any]:
    return {
        "id": view.id,
        "category": view.category,
        "event": view.event,
        "state": str(view.state),
        "createdAt": timestamp(view.created_at),
        "updatedAt": timestamp(view.updated_at),
        "attempts": view.attempts,
        "nextAttemptAt": timestamp(view.next_attempt_at),
        "lastError": view.last_error,
        "occurrences": view.occurrences,
        "firstAt": timestamp(view.first_at),
        "lastAt": timestamp(view.last_at),
        "collapsedInto": view.collapsed_into,
        "idempotencyKey": view.idempotency_key,
        "messageId": view.message_id,
        "deadLetterReason": view.dead_letter_reason,
        "finishedAt": timestamp(view.finished_at),
        "deliveries": [
            {
                "recipient": d.recipient,
                "state": str(d.state),
                "attempts": d.attempts,
                "lastCode": d.last_code,
                "lastError": d.last_error,
                "updatedAt": timestamp(d.updated_at),
            }
            for d in view.deliveries
        ],
    }


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = problem(error.status, error.reason or error.text or "error")
        if "Allow" in error.headers:  # RFC 9110: a 405 says which methods are allowed
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except Exception:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return problem(500, "unexpected error; see the sidecar's log")


def _state(request: web.Request) -> AppState:
    return request.app[STATE_KEY]


async def create_notification(request: web.Request) -> web.Response:
    state = _state(request)
    metrics = state.metrics
    response = await _create(request, state)
    if response.status >= 400:
        metrics.refused.labels(status=str(response.status)).inc()
    return response


async def _read_json(request: web.Request, state: AppState) -> Any:
    """The parsed body, or the problem response to send instead."""
    if request.content_type != "application/json":
        return problem(415, "send the notification as application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return problem(413, f"the body is larger than {state.max_request_bytes} bytes")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        return problem(400, f"the body is not valid JSON: {str(error)[:200]}")


async def _create(  # noqa: PLR0911 - one answer per outcome
    request: web.Request, state: AppState
) -> web.Response:
    if not state.accepting:
        return problem(503, "the sidecar is shutting down", retry_after=5)
    payload = await _read_json(request, state)
    if isinstance(payload, web.Response):
        return payload
    try:
        submission = parse_request(
            payload,
            header_key=request.headers.get("Idempotency-Key"),
            renderer=state.renderer,
            rules=state.rules,
        )
    except RequestError as error:
        return problem(error.status, error.detail, field_name=error.field)
    try:
        receipt = await state.spool.add(
            submission, now=state.clock(), storm_window=state.rules.storm_window
        )
    except SpoolFullError as error:
        return problem(503, str(error), retry_after=30)
    except SpoolUnavailableError as error:
        return problem(503, f"not stored: {error}", retry_after=10)
    except IdempotencyConflictError as error:
        return problem(409, str(error), field_name="idempotencyKey")
    if not receipt.duplicate:
        if receipt.state is State.COLLAPSED:
            state.metrics.collapsed.labels(category=submission.category).inc()
        else:
            state.metrics.accepted.labels(category=submission.category).inc()
            state.deliverer.wake()
    location = f"/v1/notifications/{receipt.id}"
    return web.json_response(
        {
            "id": receipt.id,
            "state": str(receipt.state),
            "duplicate": receipt.duplicate,
            "collapsedInto": receipt.collapsed_into,
            "location": location,
        },
        status=202,
        headers={"Location": location},
    )


async def get_notification(request: web.Request) -> web.Response:
    state = _state(request)
    nid = request.match_info["id"]
    if not _ID.fullmatch(nid):
        return problem(404, "no such notification: ids are 32 lower-case hex digits")
    try:
        view = await state.spool.get(nid)
    except SpoolError as error:
        return problem(503, f"the spool cannot be read: {error}", retry_after=10)
    if view is None:
        return problem(404, f"no notification {nid} (never stored, or purged after retention)")
    return web.json_response(notification_json(view))


async def list_notifications(request: web.Request) -> web.Response:
    state = _state(request)
    raw_parts = [part for part in request.rel_url.raw_query_string.split("&") if part]
    if any(part.split("=", 1)[0] == "" for part in raw_parts):
        # The query parser drops nameless parameters; they are still malformed requests.
        return problem(400, "a query parameter has no name", field_name="query")
    unknown = sorted(set(request.query) - {"state", "limit"})
    if unknown:
        return problem(
            400, f"unknown query parameter {unknown[0]!r}; use state and limit", field_name="query"
        )
    wanted = request.query.get("state")
    if wanted is not None and wanted not in _STATES:
        return problem(400, f"state must be one of {', '.join(_STATES)}", field_name="state")
    raw_limit = request.query.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        return problem(400, "limit must be an integer from 1 to 1000", field_name="limit")
    try:
        views = await state.spool.find(
            [_STATES[wanted]] if wanted is not None else None, int(raw_limit)
        )
    except SpoolError as error:
        return problem(503, f"the spool cannot be read: {error}", retry_after=10)
    return web.json_response({"items": [notification_json(v) for v in views]})


async def _spool_json(state: AppState) -> dict[str, Any]:
    spool = state.spool
    limits = spool.limits
    result: dict[str, Any] = {
        "healthy": spool.running and spool.healthy,
        "error": spool.last_error,
        "limits": {
            "maxPending": limits.max_pending,
            "maxPendingBytes": limits.max_pending_bytes,
            "maxRows": limits.max_rows,
        },
    }
    try:
        stats = await spool.stats()
    except SpoolError as error:
        result.update(healthy=False, error=str(error))
        return result
    oldest = stats.oldest_pending_at
    result.update(
        pending=stats.pending,
        pendingBytes=stats.pending_bytes,
        oldestPendingAgeSeconds=None if oldest is None else max(0.0, state.clock() - oldest),
        deadLetter=stats.dead_letter,
        delivered=stats.delivered,
    )
    return result


async def get_status(request: web.Request) -> web.Response:
    state = _state(request)
    gate = state.deliverer.effective_gate()
    delivery = state.deliverer.status
    body = {
        "settings": {
            "name": state.settings_name,
            "namespace": state.namespace,
            "mayDeliver": gate.may_send,
            "reason": str(gate.reason),
            "message": gate.message,
            "generation": gate.generation,
            "observedGeneration": gate.observed_generation,
            "readyReason": gate.ready_reason,
            "apiError": state.api_error(),
        },
        "delivery": {
            "state": delivery.state,
            "server": delivery.server,
            "lastSuccessAt": timestamp(delivery.last_success_at),
            "lastError": delivery.last_error,
            "lastErrorAt": timestamp(delivery.last_error_at),
            "backoffUntil": timestamp(delivery.backoff_until),
        },
        "spool": await _spool_json(state),
    }
    return web.json_response(body)


async def readyz(request: web.Request) -> web.Response:
    state = _state(request)
    spool = state.spool
    if spool.running and not spool.healthy:
        with contextlib.suppress(SpoolError):
            await spool.probe()  # has the disk recovered?
    gate = state.deliverer.effective_gate()
    body: dict[str, Any] = {
        "ready": True,
        "reason": "Accepting",
        "message": "notifications are accepted and stored",
        "delivering": gate.may_send,
        "deliveryReason": str(gate.reason),
        "deliveryMessage": gate.message,
    }
    if not state.accepting:
        body.update(ready=False, reason="ShuttingDown", message="the sidecar is shutting down")
    elif not (spool.running and spool.healthy):
        body.update(
            ready=False,
            reason="SpoolUnavailable",
            message=spool.last_error or "the spool is not open",
        )
    else:
        try:
            stats = await spool.stats()
        except SpoolError as error:
            body.update(ready=False, reason="SpoolUnavailable", message=str(error))
        else:
            if stats.pending >= spool.limits.max_pending:
                body.update(
                    ready=False,
                    reason="SpoolFull",
                    message=f"{stats.pending} notifications wait (limit "
                    f"{spool.limits.max_pending})",
                )
    return web.json_response(body, status=200 if body["ready"] else 503)


async def healthz(request: web.Request) -> web.Response:
    state = _state(request)
    spool = state.spool
    if spool.opened_once and not spool.running and state.accepting:
        return web.json_response(
            {"status": "failing", "detail": "the spool writer stopped"}, status=503
        )
    return web.json_response({"status": "ok", "detail": None})


async def metrics(request: web.Request) -> web.Response:
    state = _state(request)
    response = web.Response(body=state.metrics.render())
    response.headers["Content-Type"] = state.metrics.content_type
    return response


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(_state(request).openapi)


def make_app(state: AppState, *, probes_only: bool = False) -> web.Application:
    if not state.openapi:
        state.openapi = document(state.max_request_bytes)
    app = web.Application(middlewares=[_errors], client_max_size=state.max_request_bytes)
    app[STATE_KEY] = state
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    if not probes_only:
        app.router.add_post("/v1/notifications", create_notification)
        app.router.add_get("/v1/notifications", list_notifications)
        app.router.add_get("/v1/notifications/{id}", get_notification)
        app.router.add_get("/v1/status", get_status)
        app.router.add_get("/openapi.json", openapi)
    return app
