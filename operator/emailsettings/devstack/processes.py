"""Run the operator (and later the sidecar) as real child processes.

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
class OperatorProcess:
    kubeconfig: Path
    log_path: Path
    namespaces: tuple[str, ...] = ()
    health_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self, timeout: float = 60) -> Self:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "EMAILSETTINGS_NAMESPACES": ",".join(self.namespaces),
            "EMAILSETTINGS_HEALTH_PORT": str(self.health_port),
            "EMAILSETTINGS_METRICS_PORT": str(self.metrics_port),
            "EMAILSETTINGS_BIND_ADDRESS": "127.0.0.1",
            "EMAILSETTINGS_LOG_LEVEL": "DEBUG",
            **self.extra_env,
        }
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "emailsettings.controller.main"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_until(self._healthy, timeout=timeout, what="operator /healthz", on_timeout=self.tail)
        return self

    def _healthy(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"operator exited with {self._process.returncode}\n{self.tail()}")
        return _get(f"http://127.0.0.1:{self.health_port}/healthz") is not None

    def metrics(self) -> str:
        return _get(f"http://127.0.0.1:{self.metrics_port}/metrics") or ""

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "operator log tail:\n" + "\n".join(self.logs().splitlines()[-lines:])

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


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return str(response.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
