"""A thin runner for the real kubectl against a given kubeconfig."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from emailsettings.devstack import binaries


class KubectlError(RuntimeError):
    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(argv)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class Kubectl:
    kubeconfig: Path

    @property
    def binary(self) -> Path:
        return binaries.find_on_path_or_cache("kubectl")

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(  # noqa: S603 - trusted binary, list argv
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(list(args), result.returncode, result.stderr)
        return result

    def apply(self, *documents: dict[str, Any], extra: tuple[str, ...] = ()) -> str:
        text = yaml.safe_dump_all(documents)
        return self.run("apply", "-f", "-", *extra, stdin=text).stdout

    def get_json(self, *args: str) -> Any:
        return json.loads(self.run("get", *args, "-o", "json").stdout)
