"""`emailsettings notify` against a running sidecar."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from emailsettings.cli.main import main as cli_main
from emailsettings.devstack.netutil import free_port
from emailsettings.devstack.smtp_server import SMTPServer
from emailsettings.sidecar.intake_http import AppState, make_app

from .helpers import SettingsObject, StartSidecar, build_state, get_json, spec_for


@pytest.fixture
async def held(tmp_path: Path) -> AsyncIterator[tuple[str, AppState]]:
    """An intake whose delivery is held (no settings), with a spool bound of 2."""
    state = build_state(tmp_path, max_pending=2)
    runner = web.AppRunner(make_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", state
    await runner.cleanup()
    state.spool.close()


async def notify(*args: str) -> int:
    return await asyncio.to_thread(cli_main, ["notify", *args])


async def test_notify_posts_and_reports(
    held: tuple[str, AppState], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base, state = held
    trace = tmp_path / "trace.txt"
    trace.write_text("line 1\n  line 2\n")
    code = await notify(
        "--url",
        base,
        "--category",
        "administrative",
        "--event",
        "exception-detected",
        "--field",
        "message=Boom = bang",
        "--field-file",
        f"stackTrace={trace}",
        "--idempotency-key",
        "cli-1",
        "-o",
        "json",
    )
    assert code == 0
    accepted = json.loads(capsys.readouterr().out)
    view = await state.spool.get(accepted["id"])
    assert view is not None
    due = [d for d in await state.spool.due(now=1e12, limit=5) if d.id == accepted["id"]]
    assert due[0].fields == {"message": "Boom = bang", "stackTrace": "line 1\n  line 2\n"}
    assert due[0].idempotency_key == "cli-1"

    # Refused by the sidecar: exit 1, the reason on stderr.
    code = await notify("--url", base, "--category", "support", "--event", "access-granted")
    assert code == 1
    assert "needs fields.user" in capsys.readouterr().err
    # Usage error: exit 2.
    args = ("--url", base, "--category", "error", "--event", "error-report")
    assert await notify(*args, "--field", "novalue") == 2
    # Still held after --wait's timeout: exit 1.
    code = await notify(*args, "--field", "message=x", "--wait", "--timeout", "0.3")
    assert code == 1
    assert "still queued" in capsys.readouterr().err
    # The spool bound (2) is reached: 503, exit 3, safe to retry.
    assert await notify(*args, "--field", "message=y") == 3
    assert "spool is full" in capsys.readouterr().err


async def test_notify_without_a_sidecar_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = await notify("--url", url, "--category", "error", "--event", "error-report")
    assert code == 3
    assert "cannot reach the sidecar" in capsys.readouterr().err


@pytest.mark.kube
@pytest.mark.smtp
async def test_notify_wait_until_delivered(
    settings: SettingsObject,
    smtp: SMTPServer,
    start_sidecar: StartSidecar,
    http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await settings.apply(spec_for(smtp.port))
    await settings.set_status(ready=True)
    sidecar = await start_sidecar()
    code = await notify(
        "--url",
        sidecar.url,
        "--category",
        "support",
        "--event",
        "maximum-scan-time-exceeded",
        "--field",
        "scanName=nightly",
        "--wait",
        "--timeout",
        "20",
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.strip().endswith(": delivered")
    (message,) = await asyncio.to_thread(smtp.mailbox.wait_for, 1)
    assert str(message.parsed()["Subject"]) == "Maximum scan time exceeded: nightly"
    _, status = await get_json(http, f"{sidecar.url}/v1/status")
    assert status["spool"]["pending"] == 0
