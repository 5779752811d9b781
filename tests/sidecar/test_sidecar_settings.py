"""The sidecar against a real API server and a real SMTP server: routing and the gate."""

from __future__ import annotations

import asyncio
import base64
import re
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiohttp
import pytest

from emailsettings.devstack.pki import LocalCA
from emailsettings.devstack.smtp_server import SMTPServer
from emailsettings.kube import KubeClient, paths

from .helpers import (
    CANARY_PASSWORD,
    RECIPIENTS,
    SMTP_USER,
    Mounts,
    SettingsObject,
    StartSidecar,
    eventually,
    get_json,
    post,
    spec_for,
    wait_state,
)

pytestmark = [pytest.mark.kube, pytest.mark.smtp]

ERROR = {"category": "error", "event": "error-report", "fields": {"message": "m"}}


async def test_each_category_goes_to_its_recipients(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=True)
    sidecar = await start_sidecar()
    requests = {
        "administrative": {"event": "agent-out-of-date", "fields": {"agentName": "agent-7"}},
        "error": {"event": "error-report", "fields": {"message": "NullReferenceException"}},
        "support": {
            "event": "request-for-assistance",
            "fields": {"requester": "Jörg", "message": "Please help"},
        },
    }
    ids = {}
    for category, request in requests.items():
        status, body = await post(http, sidecar.url, {"category": category, **request})
        assert status == 202, body
        ids[category] = body["id"]
    for nid in ids.values():
        await wait_state(http, sidecar.url, nid, "delivered")
    messages = await asyncio.to_thread(smtp.mailbox.wait_for, 3)
    by_event = {m.parsed()["X-EmailSettings-Event"]: m for m in messages}
    for category, request in requests.items():
        received = by_event[request["event"]]
        assert sorted(received.rcpt_tos) == sorted(RECIPIENTS[category])
        assert received.mail_from == "notifier@example.com"
        assert received.tls
        assert received.auth_user == "notifier@example.com"
        message = received.parsed()
        assert message["X-EmailSettings-Category"] == category
        assert str(message["From"]) == "Notifier Bot <notifier@example.com>"
        assert message.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        assert parsedate_to_datetime(str(message["Date"])).tzinfo is not None
        assert re.fullmatch(r"<[0-9a-f]{40}@example\.com>", str(message["Message-ID"]))
    support = by_event["request-for-assistance"].parsed()
    assert str(support["Subject"]) == "Request for assistance from Jörg"
    state = (await get_json(http, f"{sidecar.url}/v1/notifications/{ids['administrative']}"))[1]
    assert {d["recipient"] for d in state["deliveries"]} == set(RECIPIENTS["administrative"])
    assert all(d["state"] == "sent" for d in state["deliveries"])


async def test_held_while_not_ready_then_delivered(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=False, reason="ConnectionRefused", message="nothing listens")
    sidecar = await start_sidecar()

    async def held_because(reason: str) -> dict[str, object]:
        async def probe() -> dict[str, object] | None:
            status, body = await get_json(http, f"{sidecar.url}/readyz")
            assert status == 200, body  # accepting even while delivery is held
            return body if body["deliveryReason"] == reason else None

        result: dict[str, object] = await eventually(probe, what=f"held because {reason}")
        return result

    ready = await held_because("NotReady")
    assert ready["delivering"] is False
    assert "ConnectionRefused" in str(ready["deliveryMessage"])
    status, body = await post(
        http,
        sidecar.url,
        {"category": "error", "event": "error-report", "fields": {"message": "x"}},
    )
    assert status == 202
    nid = body["id"]
    _, state = await get_json(http, f"{sidecar.url}/v1/status")
    assert state["settings"]["mayDeliver"] is False
    assert state["settings"]["reason"] == "NotReady"
    assert state["spool"]["pending"] == 1

    # A new generation that the operator has not processed: still held.
    spec = spec_for(smtp.port)
    spec["recipients"] = {**RECIPIENTS, "error": ["errors2@example.com"]}
    generation = await settings.apply(spec)
    await settings.set_status(ready=True, observed=generation - 1)
    await held_because("StatusNotCurrent")
    assert (await get_json(http, f"{sidecar.url}/v1/notifications/{nid}"))[1]["state"] == "queued"
    assert smtp.mailbox.messages == []

    await settings.set_status(ready=True)
    await wait_state(http, sidecar.url, nid, "delivered")
    (message,) = await asyncio.to_thread(smtp.mailbox.wait_for, 1)
    assert message.rcpt_tos == ("errors2@example.com",)

    # Disabled: held again, and says so.
    spec["enabled"] = False
    await settings.apply(spec)
    await settings.set_status(ready=True)
    await held_because("Disabled")


async def test_password_and_ca_from_the_api_with_get(
    settings: SettingsObject,
    smtp: SMTPServer,
    kube: KubeClient,
    sc_namespace: str,
    local_ca: LocalCA,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    secrets = paths.core("secrets", sc_namespace)
    password = base64.b64encode(CANARY_PASSWORD.encode()).decode()
    ca = base64.b64encode(local_ca.ca_pem).decode()
    await kube.create(
        secrets, {"metadata": {"name": "smtp-credentials"}, "data": {"password": password}}
    )
    await kube.create(secrets, {"metadata": {"name": "smtp-ca"}, "data": {"ca.crt": ca}})
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=True)
    nowhere = tmp_path / "not-mounted"
    sidecar = await start_sidecar(secret_source="api", secret_dir=nowhere, ca_dir=nowhere)
    status, body = await post(
        http,
        sidecar.url,
        ERROR,
    )
    assert status == 202
    await wait_state(http, sidecar.url, body["id"], "delivered")
    (message,) = await asyncio.to_thread(smtp.mailbox.wait_for, 1)
    assert message.auth_user == SMTP_USER
    assert message.tls


async def test_missing_password_file_holds_and_says_why(
    settings: SettingsObject,
    smtp: SMTPServer,
    mounts: Mounts,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    (mounts.secret_dir / "password").unlink()
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=True)
    sidecar = await start_sidecar()
    status, body = await post(
        http,
        sidecar.url,
        ERROR,
    )
    assert status == 202

    async def held() -> dict[str, object] | None:
        _, state = await get_json(http, f"{sidecar.url}/v1/status")
        settings_state = state["settings"]
        return settings_state if settings_state["reason"] == "PasswordUnavailable" else None

    reason = await eventually(held, what="PasswordUnavailable")
    assert "does not exist" in str(reason["message"])
    assert str(mounts.secret_dir / "password") in str(reason["message"])
    mounts.write_password(CANARY_PASSWORD)  # the Secret gets mounted (or created) later
    await wait_state(http, sidecar.url, body["id"], "delivered")


async def test_too_old_notifications_are_dead_lettered(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
) -> None:
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=False, reason="AuthenticationFailed")
    sidecar = await start_sidecar(max_age=0.5)
    _, body = await post(
        http,
        sidecar.url,
        ERROR,
    )
    state = await wait_state(http, sidecar.url, body["id"], "dead_letter")
    assert state["deadLetterReason"].startswith("Expired: not delivered within 0.5s")
    assert smtp.mailbox.messages == []
