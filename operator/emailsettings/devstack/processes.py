"""Run the operator and the sidecar as real child processes.

Tests, benchmarks and `make run` all start them this way, so what is tested is
what ships: the console entry point, its environment and its logs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self

from emailsettings.devstack.netutil import free_port, wait_until


@dataclass
class ChildProcess:
    """A Python entry point in a child process, with its log in a file."""

    log_path: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    module: str = field(default="", init=False)  # set by subclasses
    what: str = field(default="process", init=False)

    def environment(self) -> dict[str, str]:
        raise NotImplementedError

    def ready_url(self) -> str:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, timeout: float = 60) -> Self:
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - our own entry point
            [sys.executable, "-m", self.module],
            env=self.environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_until(
            self._ready, timeout=timeout, what=f"{self.what} readiness", on_timeout=self.tail
        )
        return self

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"{self.what} exited with {self._process.returncode}\n{self.tail()}")
        return http_get(self.ready_url()) is not None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return f"{self.what} log tail:\n" + "\n".join(self.logs().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers run, as in a node failure or OOM kill."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)
        self._close_log()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass
class OperatorProcess(ChildProcess):
    kubeconfig: Path = Path()
    namespaces: tuple[str, ...] = ()
    health_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.module, self.what = "emailsettings.controller.main", "operator"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "EMAILSETTINGS_NAMESPACES": ",".join(self.namespaces),
            "EMAILSETTINGS_HEALTH_PORT": str(self.health_port),
            "EMAILSETTINGS_METRICS_PORT": str(self.metrics_port),
            "EMAILSETTINGS_BIND_ADDRESS": "127.0.0.1",
            "EMAILSETTINGS_LOG_LEVEL": "DEBUG",
            **self.extra_env,
        }

    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/healthz"

    def metrics(self) -> str:
        return http_get(f"http://127.0.0.1:{self.metrics_port}/metrics") or ""


@dataclass
class SidecarProcess(ChildProcess):
    """The sidecar following one EmailSettings, password from a directory like a mounted Secret."""

    kubeconfig: Path = Path()
    namespace: str = "default"
    settings_name: str = "default"
    spool_dir: Path = Path()
    secret_dir: Path = Path()
    ca_dir: Path | None = None
    listen_port: int = field(default_factory=free_port)
    probe_port: int = field(default_factory=free_port)
    smtp_port: int | None = None  # the SMTP intake, off unless set
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.module, self.what = "emailsettings.sidecar.main", "sidecar"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    def environment(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        return {
            **inherited,
            "EMAILSETTINGS_NAME": self.settings_name,
            "EMAILSETTINGS_NAMESPACE": self.namespace,
            "EMAILSETTINGS_KUBECONFIG": str(self.kubeconfig),
            "EMAILSETTINGS_LISTEN": f"127.0.0.1:{self.listen_port}",
            "EMAILSETTINGS_PROBE_LISTEN": f"127.0.0.1:{self.probe_port}",
            "EMAILSETTINGS_SPOOL_DIR": str(self.spool_dir),
            "EMAILSETTINGS_SECRET_DIR": str(self.secret_dir),
            "EMAILSETTINGS_CA_DIR": str(self.ca_dir or ""),
            "EMAILSETTINGS_TEMPLATES_DIR": "",
            "EMAILSETTINGS_SMTP_LISTEN": f"127.0.0.1:{self.smtp_port}" if self.smtp_port else "",
            **self.extra_env,
        }

    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.probe_port}/readyz"


def http_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return str(response.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
