"""Helpers shared by the sidecar tests: specs, the settings object, HTTP polling."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from emailsettings.api import API_VERSION, KIND
from emailsettings.devstack.netutil import free_port, wait_until
from emailsettings.kube import ConflictError, KubeClient, paths
from emailsettings.sidecar.config import SidecarConfig
from emailsettings.sidecar.credentials import Credentials
from emailsettings.sidecar.delivery import Deliverer, DeliverySettings
from emailsettings.sidecar.intake import IntakeRules
from emailsettings.sidecar.intake_http import AppState
from emailsettings.sidecar.main import Sidecar
from emailsettings.sidecar.metrics import Metrics
from emailsettings.sidecar.settings_gate import waiting
from emailsettings.sidecar.spool import Limits, Spool
from emailsettings.sidecar.templates import Renderer

CANARY_PASSWORD = "canary-Sidecar-Pw-41c0ffee-do-not-leak"
SMTP_USER = "notifier@example.com"
RECIPIENTS = {
    "administrative": ["admin@example.com", "admin2@example.com"],
    "error": ["errors@example.com"],
    "support": ["support@example.com"],
}


def spec_for(port: int, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "enabled": True,
        "smtp": {
            "host": "127.0.0.1",
            "port": port,
            "encryption": "STARTTLS",
            "username": SMTP_USER,
            "passwordSecretRef": {"name": "smtp-credentials", "key": "password"},
            "tls": {"caBundleRef": {"kind": "Secret", "name": "smtp-ca", "key": "ca.crt"}},
            "connectTimeoutSeconds": 5,
        },
        "sender": "Notifier Bot <notifier@example.com>",
        "recipients": RECIPIENTS,
        "verification": {"mode": "VerifyAndSave"},
    }
    spec.update(overrides)
    return spec


@dataclasses.dataclass
class SettingsObject:
    """One EmailSettings, its status set by hand as the operator would (no operator runs).

    Writes go through the API (the same requests `kubectl apply` and `kubectl patch
    --subresource=status --type=merge` make), without a kubectl process per step.
    """

    kube: KubeClient
    namespace: str
    name: str = "default"

    @property
    def path(self) -> str:
        return paths.emailsettings(self.namespace, self.name)

    async def apply(self, spec: dict[str, Any]) -> int:
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        try:
            result = await self.kube.create(paths.emailsettings(self.namespace), body)
        except ConflictError:
            # Replace the spec wholesale (a merge patch would merge maps).
            result = await self.kube.patch(
                self.path, [{"op": "replace", "path": "/spec", "value": spec}], patch_type="json"
            )
        return int(result["metadata"]["generation"])

    async def generation(self) -> int:
        body = await self.kube.get(self.path)
        return int(body["metadata"]["generation"])

    async def set_status(
        self,
        *,
        ready: bool,
        reason: str = "Verified",
        message: str = "verified",
        observed: int | None = None,
    ) -> None:
        generation = await self.generation() if observed is None else observed
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {
            "observedGeneration": generation,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": reason,
                    "message": message,
                    "observedGeneration": generation,
                    "lastTransitionTime": now,
                }
            ],
        }
        await self.kube.patch(self.path + "/status", {"status": status})


@dataclasses.dataclass
class Mounts:
    """Directories standing in for the mounted Secret (password) and CA bundle."""

    root: Path

    @property
    def secret_dir(self) -> Path:
        return self.root / "secret"

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    def write_password(self, password: str) -> None:
        # As the kubelet does: write aside, then swap in atomically.
        self.secret_dir.mkdir(parents=True, exist_ok=True)
        staged = self.secret_dir / ".password.new"
        staged.write_text(password)
        staged.replace(self.secret_dir / "password")


def sidecar_config(
    *, kubeconfig: Path, namespace: str, spool_dir: Path, mounts: Mounts, **overrides: Any
) -> SidecarConfig:
    values: dict[str, Any] = {
        "name": "default",
        "namespace": namespace,
        "kubeconfig": kubeconfig,
        "listen": ("127.0.0.1", 0),
        "probe_listen": "127.0.0.1:0",
        "spool_dir": spool_dir,
        "secret_dir": mounts.secret_dir,
        "ca_dir": mounts.ca_dir,
        "templates_dir": None,
        "retry_base": 0.05,
        "retry_max": 0.5,
        "rate_per_second": 1000.0,
        "rate_burst": 1000,
        "storm_window": 0.0,
        "shutdown_grace": 5.0,
    }
    values.update(overrides)
    return SidecarConfig(**values).validate()


StartSidecar = Callable[..., Awaitable[Sidecar]]


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, what: str = "condition"
) -> Any:
    """Poll an async probe until it returns something truthy (a condition, not a sleep)."""
    deadline = time.monotonic() + timeout
    interval = 0.02
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)  # poll interval while waiting on a condition
        interval = min(interval * 1.5, 0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


async def post(
    http: aiohttp.ClientSession, base: str, payload: dict[str, Any], **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{base}/v1/notifications", json=payload, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url) as response:
        return response.status, await response.json(content_type=None)


async def notification_state(http: aiohttp.ClientSession, base: str, nid: str) -> dict[str, Any]:
    status, body = await get_json(http, f"{base}/v1/notifications/{nid}")
    assert status == 200, body
    return body


async def wait_state(
    http: aiohttp.ClientSession, base: str, nid: str, *states: str, timeout: float = 20.0
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body = await notification_state(http, base, nid)
        return body if body["state"] in states else None

    result: dict[str, Any] = await eventually(
        probe, timeout=timeout, what=f"notification {nid} in {states}"
    )
    return result


def env_without_kube() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}


@dataclasses.dataclass
class SidecarProcess:
    """The sidecar as a real child process (`python -m emailsettings.sidecar.main`)."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.env['EMAILSETTINGS_LISTEN']}"

    @property
    def probe_url(self) -> str:
        return f"http://{self.env['EMAILSETTINGS_PROBE_LISTEN']}"

    def start(self, timeout: float = 30) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "emailsettings.sidecar.main"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_until(self._ready, timeout=timeout, what="sidecar /readyz", on_timeout=self.tail)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"sidecar exited with {self.process.returncode}\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"{self.probe_url}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def rss_bytes(self) -> int:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed, as in an OOM kill or node loss."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "sidecar log tail:\n" + "\n".join(self.logs().splitlines()[-lines:])


def process_env(
    *, kubeconfig: Path, namespace: str, spool_dir: Path, mounts: Mounts, **extra: str
) -> dict[str, str]:
    env = env_without_kube()
    env.update(
        {
            "EMAILSETTINGS_NAME": "default",
            "EMAILSETTINGS_NAMESPACE": namespace,
            "EMAILSETTINGS_KUBECONFIG": str(kubeconfig),
            "EMAILSETTINGS_LISTEN": f"127.0.0.1:{free_port()}",
            "EMAILSETTINGS_PROBE_LISTEN": f"127.0.0.1:{free_port()}",
            "EMAILSETTINGS_SPOOL_DIR": str(spool_dir),
            "EMAILSETTINGS_SECRET_DIR": str(mounts.secret_dir),
            "EMAILSETTINGS_CA_DIR": str(mounts.ca_dir),
            "EMAILSETTINGS_TEMPLATES_DIR": "",
            "EMAILSETTINGS_RETRY_BASE": "50ms",
            "EMAILSETTINGS_RETRY_MAX": "500ms",
            "EMAILSETTINGS_LOG_LEVEL": "INFO",
            **extra,
        }
    )
    return env


def build_state(directory: Path, *, storm_window: float = 0.0, **limits: int) -> AppState:
    spool = Spool(directory / "spool", Limits(**limits))
    spool.open()
    renderer = Renderer()
    metrics = Metrics()
    deliverer = Deliverer(
        spool=spool,
        gate=lambda: waiting("no settings in this test"),
        credentials=Credentials(),
        renderer=renderer,
        metrics=metrics,
        settings=DeliverySettings(),
    )
    return AppState(
        spool=spool,
        deliverer=deliverer,
        renderer=renderer,
        metrics=metrics,
        rules=IntakeRules(storm_window=storm_window),
        max_request_bytes=64 * 1024,
        settings_name="default",
        namespace="test",
    )
