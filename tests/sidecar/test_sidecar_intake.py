"""The HTTP intake on its own (no API server): precise 4xx answers, 202 only when stored.

The app runs on a real loopback socket with a spool on disk; delivery is held by a
fixed gate, so what is tested is intake alone. The same server is the target of
the schemathesis run against the sidecar's own OpenAPI document.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from emailsettings.sidecar.intake_http import AppState, make_app
from emailsettings.sidecar.spool import SpoolUnavailableError

from .helpers import build_state


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[tuple[str, AppState]]:
    state = build_state(tmp_path)
    runner = web.AppRunner(make_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", state
    await runner.cleanup()
    state.spool.close()


async def send(
    base: str, payload: Any, *, raw: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else json.dumps(payload).encode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/v1/notifications",
            data=data,
            headers={"Content-Type": "application/json", **(headers or {})},
        ) as response,
    ):
        body = await response.json(content_type=None)
        if response.status >= 400:
            assert response.content_type == "application/problem+json"
        return response.status, body


GOOD = {"category": "administrative", "event": "agent-out-of-date", "fields": {"agentName": "a"}}

REFUSALS: list[tuple[Any, int, str, str | None]] = [
    ([], 422, "must be a JSON object", None),
    ({**GOOD, "extra": 1}, 422, "unknown field 'extra'", "extra"),
    ({**GOOD, "category": "ops"}, 422, "category must be one of", "category"),
    ({**GOOD, "category": "administrative\r\nBcc: x@example.net"}, 422, "category", "category"),
    ({**GOOD, "event": "Agent Out"}, 422, "event must be", "event"),
    ({**GOOD, "event": "x\r\nBcc: e@example.net"}, 422, "event must be", "event"),
    ({**GOOD, "category": "support"}, 422, "belongs to category 'administrative'", "category"),
    ({**GOOD, "fields": {}}, 422, "needs fields.agentName (agent)", "fields.agentName"),
    ({**GOOD, "fields": {"agentName": "a\x00b"}}, 422, "NUL", "fields.agentName"),
    (
        {**GOOD, "fields": {"agentName": ["a"]}},
        422,
        "string, number or boolean",
        "fields.agentName",
    ),
    ({**GOOD, "fields": {"bad name": "x"}}, 422, "field name 'bad name' is invalid", "fields"),
    ({**GOOD, "fields": {"a\r\nBcc": "x"}}, 422, "is invalid", "fields"),
    ({**GOOD, "fields": "agentName=a"}, 422, "fields must be an object", "fields"),
    ({**GOOD, "subject": "hi\r\nBcc: e@example.net"}, 422, "control character (CR)", "subject"),
    ({**GOOD, "subject": "hi\nthere"}, 422, "control character (LF)", "subject"),
    ({**GOOD, "subject": "hi\x00"}, 422, "(NUL)", "subject"),
    ({**GOOD, "subject": "hi\u2028there"}, 422, "(U+2028)", "subject"),
    ({**GOOD, "subject": "hi\x85there"}, 422, "(U+0085)", "subject"),
    ({**GOOD, "subject": "  "}, 422, "non-empty", "subject"),
    ({**GOOD, "body": "a\x00"}, 422, "NUL", "body"),
    ({**GOOD, "idempotencyKey": "k\r\nBcc: e"}, 422, "printable ASCII", "idempotencyKey"),
    ({**GOOD, "idempotencyKey": ""}, 422, "printable ASCII", "idempotencyKey"),
    ({"category": "support", "event": "my-event"}, 422, "send a subject", "subject"),
    ({"category": "support", "event": "my-event", "subject": "s"}, 422, "send a body", "body"),
]


@pytest.mark.parametrize(("payload", "status", "detail", "field"), REFUSALS)
async def test_bad_requests_get_precise_answers(
    intake: tuple[str, AppState], payload: Any, status: int, detail: str, field: str | None
) -> None:
    base, state = intake
    got, body = await send(base, payload)
    assert (got, body["status"]) == (status, status)
    assert detail in body["detail"]
    assert body["field"] == field
    assert (await state.spool.stats()).pending == 0


async def test_malformed_bodies(intake: tuple[str, AppState]) -> None:
    base, _ = intake
    assert (await send(base, None, raw=b"{"))[0] == 400
    assert (await send(base, None, raw=b'{"a": NaN}'))[0] == 400
    assert (await send(base, None, raw=b"\xff\xfe"))[0] == 400
    assert (await send(base, None, raw=b"[" * 100_000))[0] in {400, 413}
    assert (await send(base, None, raw=b'"' + b"x" * 70_000 + b'"'))[0] == 413
    status, body = await send(base, GOOD, headers={"Idempotency-Key": "a b"})
    assert (status, body["field"]) == (400, "Idempotency-Key")
    status, _ = await send(
        base, {**GOOD, "idempotencyKey": "one"}, headers={"Idempotency-Key": "two"}
    )
    assert status == 422
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/v1/notifications", data="x", headers={"Content-Type": "text/plain"}
        ) as r,
    ):
        assert r.status == 415


async def test_accepted_is_stored_and_idempotent(intake: tuple[str, AppState]) -> None:
    base, state = intake
    status, body = await send(base, {**GOOD, "idempotencyKey": "k-1"})
    assert status == 202
    assert body["state"] == "queued"
    assert body["location"] == f"/v1/notifications/{body['id']}"
    again = await send(base, GOOD, headers={"Idempotency-Key": "k-1"})
    assert again == (202, {**body, "duplicate": True})
    conflict = await send(base, {**GOOD, "fields": {"agentName": "b"}, "idempotencyKey": "k-1"})
    assert conflict[0] == 409
    view = await state.spool.get(body["id"])
    assert view is not None
    assert view.idempotency_key == "k-1"
    custom = {"category": "support", "event": "deploy-done", "subject": "S", "body": "line\n2"}
    assert (await send(base, custom))[0] == 202
    numbers = {**GOOD, "fields": {"agentName": 7, "agentVersion": 1.5, "extra": True}}
    status, body = await send(base, numbers)
    assert status == 202
    due = [d for d in await state.spool.due(now=1e12, limit=10) if d.id == body["id"]]
    assert due[0].fields == {"agentName": "7", "agentVersion": "1.5", "extra": "true"}


async def test_get_and_list(intake: tuple[str, AppState]) -> None:
    base, _ = intake
    _, created = await send(base, GOOD)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/v1/notifications/{created['id']}") as r:
            body = await r.json()
            assert (r.status, body["state"], body["deliveries"]) == (200, "queued", [])
        async with http.get(f"{base}/v1/notifications/{'0' * 32}") as r:
            assert r.status == 404
        async with http.get(f"{base}/v1/notifications/nope") as r:
            assert r.status == 404
        async with http.get(f"{base}/v1/notifications?state=queued&limit=5") as r:
            assert [n["id"] for n in (await r.json())["items"]] == [created["id"]]
        async with http.get(f"{base}/v1/notifications?state=lost") as r:
            assert r.status == 400
        async with http.get(f"{base}/v1/notifications?limit=0") as r:
            assert r.status == 400
        async with http.get(f"{base}/v1/status") as r:
            status = await r.json()
        assert status["settings"]["mayDeliver"] is False
        assert status["settings"]["reason"] == "WaitingForSettings"
        assert status["spool"]["pending"] == 1
        async with http.get(f"{base}/readyz") as r:
            ready = await r.json()
        assert (r.status, ready["ready"], ready["delivering"]) == (200, True, False)
        async with http.get(f"{base}/metrics") as r:
            text = await r.text()
        assert 'emailsettings_sidecar_notifications_accepted_total{category="administrative"}' in (
            text
        )


# --- schemathesis: the sidecar's own OpenAPI document against the live server ---------


@pytest.fixture(scope="module")
def live_intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The intake in a thread of its own, so schemathesis can call it synchronously."""
    directory = tmp_path_factory.mktemp("schemathesis")
    loop = asyncio.new_event_loop()
    started = threading.Event()
    address: list[str] = []
    runners: list[web.AppRunner] = []
    states: list[AppState] = []

    async def serve() -> None:
        state = build_state(directory, storm_window=60.0)
        runner = web.AppRunner(make_app(state), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        address.append(f"http://{host}:{port}")
        runners.append(runner)
        states.append(state)

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    yield address[0]
    asyncio.run_coroutine_threadsafe(runners[0].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    states[0].spool.close()
    loop.close()


NO_INPUT = {"GET /v1/status", "GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode))
def test_openapi_document_holds(live_intake: str, mode: schemathesis.GenerationMode) -> None:
    """Every operation, positive and negative data: no 5xx, nothing the document denies."""
    schema = schemathesis.openapi.from_url(f"{live_intake}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every operation in the document loads
        operations.append(result.ok())
    labels = {operation.label for operation in operations}
    assert {"POST /v1/notifications", "GET /v1/notifications/{id}", "GET /readyz"} <= labels

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call_and_validate(checks=CHECKS)
            if mode is schemathesis.GenerationMode.NEGATIVE:
                # Data the document forbids is refused (413 counts: too large is invalid).
                assert 400 <= response.status_code < 500, (case.operation.label, case.query)

        try:
            check()
        except Unsatisfiable:
            # Nothing to make invalid: the operation takes no input at all.
            assert mode is schemathesis.GenerationMode.NEGATIVE
            assert operation.label in NO_INPUT


async def test_broken_spool_answers_503_never_202(tmp_path: Path) -> None:
    """A spool that cannot be opened (here: a damaged file) refuses with 503 and says why."""
    directory = tmp_path / "broken"
    (directory / "spool").mkdir(parents=True)
    (directory / "spool" / "spool.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(SpoolUnavailableError, match="damaged"):
        build_state(directory)
    state = build_state(tmp_path / "fine")
    state.spool.close()  # a spool that stopped: the writer is gone
    runner = web.AppRunner(make_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    try:
        status, body = await send(base, GOOD)
        assert status == 503
        assert "not stored" in body["detail"]
        async with aiohttp.ClientSession() as http, http.get(f"{base}/readyz") as response:
            ready = await response.json()
            assert (response.status, ready["reason"]) == (503, "SpoolUnavailable")
        async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as response:
            assert response.status == 503
    finally:
        await runner.cleanup()
