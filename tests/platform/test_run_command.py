"""The README's run command (`make run` -> `emailsettings-devstack up`) does its whole job."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from emailsettings.devstack import binaries
from emailsettings.devstack.netutil import wait_until

pytestmark = [pytest.mark.kube, pytest.mark.smtp]


def test_run_command_converges_delivers_and_its_advice_works(tmp_path: Path) -> None:
    output = tmp_path / "up.log"
    kubectl_dir = str(binaries.find_on_path_or_cache("kubectl").parent)
    env = {**os.environ, "PATH": f"{kubectl_dir}{os.pathsep}{os.environ['PATH']}"}
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "emailsettings.devstack.main", "up"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_until(
            lambda: "Press Ctrl-C" in output.read_text() or process.poll() is not None,
            timeout=180,
            what="the run command to come up",
            on_timeout=lambda: output.read_text()[-3000:],
        )
        text = output.read_text()
        assert process.poll() is None, text
        assert "Delivered 4 messages" in text
        mail_dir = Path(re.search(r"read them in (\S+)/", text)[1])  # type: ignore[index]
        assert len(list(mail_dir.glob("*.eml"))) == 4
        kubeconfig = re.search(r"export KUBECONFIG=(\S+)", text)[1]  # type: ignore[index]
        assert "AuthenticationFailed" in text
        assert "SecretNotFound" in text

        # The printed fix for the wrong password works as printed.
        fix = next(line.strip() for line in text.splitlines() if "kubectl patch secret" in line)
        subprocess.run(["bash", "-c", fix], env={**env, "KUBECONFIG": kubeconfig}, check=True)

        def fixed() -> bool:
            got = subprocess.run(
                ["kubectl", "get", "emailsettings", "wrong-password", "-n", "demo", "-o", "json"],
                env={**env, "KUBECONFIG": kubeconfig},
                capture_output=True,
                text=True,
                check=True,
            )
            conditions = json.loads(got.stdout)["status"]["conditions"]
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_until(fixed, timeout=30, what="wrong-password to turn Ready after the fix")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    assert output.read_text().rstrip().endswith("Stopped.")
