"""A real etcd + kube-apiserver on loopback, envtest-style.

RBAC authorization, a serving certificate from a per-run CA, service-account
signing keys and an admin client certificate in system:masters. No scheduler,
no controller-manager: objects are stored and validated, pods never run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self

import yaml

from emailsettings.devstack import binaries
from emailsettings.devstack.netutil import free_port, wait_until
from emailsettings.devstack.pki import KeyPair, LocalCA, write_rsa_signing_key

START_TIMEOUT = float(os.environ.get("EMAILSETTINGS_APISERVER_START_TIMEOUT", "90"))


@dataclass
class ControlPlane:
    """Owns the processes, certificates and kubeconfig of one local control plane."""

    workdir: Path
    keep_workdir: bool = False
    apiserver_port: int = field(default_factory=free_port)
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    _etcd: subprocess.Popen[bytes] | None = None
    _apiserver: subprocess.Popen[bytes] | None = None
    _logs: list[IO[bytes]] = field(default_factory=list)

    @classmethod
    def in_tempdir(cls) -> Self:
        return cls(Path(tempfile.mkdtemp(prefix="emailsettings-controlplane-")))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_cert(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def admin(self) -> KeyPair:
        return KeyPair(self.workdir / "pki" / "admin.crt", self.workdir / "pki" / "admin.key")

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start(self) -> Self:
        try:
            self._write_pki()
            self._start_etcd()
            self.start_apiserver()
            self._write_kubeconfig()
        except BaseException:
            self.stop()  # never leave a half-started etcd or API server behind
            raise
        return self

    def stop(self) -> None:
        self.stop_apiserver()
        _terminate(self._etcd)
        self._etcd = None
        for log in self._logs:
            log.close()
        self._logs.clear()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _write_pki(self) -> None:
        pki = self.workdir / "pki"
        ca = LocalCA(pki, name="emailsettings-controlplane-ca")
        ca.issue(
            "apiserver",
            "127.0.0.1",
            "localhost",
            "10.0.0.1",
            "kubernetes.default.svc",
            common_name="kube-apiserver",
        )
        # Go rejects the empty critical SAN trustme writes without identities.
        ca.issue(
            "admin", "admin.devstack.local", common_name="admin", organization="system:masters"
        )
        write_rsa_signing_key(pki, "sa")

    def _start_etcd(self) -> None:
        data = self.workdir / "etcd-data"
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        self._etcd = self._spawn(
            "etcd",
            [
                str(binaries.find("etcd")),
                f"--data-dir={data}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync=true",  # throwaway data: speed over durability
                "--log-level=warn",
            ],
        )
        wait_until(
            lambda: _http_ok(f"{client}/health"),
            timeout=START_TIMEOUT,
            what="etcd /health",
            on_timeout=lambda: self._tail("etcd"),
        )

    def start_apiserver(self) -> None:
        pki = self.workdir / "pki"
        self._apiserver = self._spawn(
            "kube-apiserver",
            [
                str(binaries.find("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                # No controller-manager runs, so nothing would create the tokens
                # this admission plugin insists on.
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--v=0",
            ],
        )
        wait_until(
            self.is_ready,
            timeout=START_TIMEOUT,
            what="kube-apiserver /readyz",
            on_timeout=lambda: self._tail("kube-apiserver"),
        )

    def stop_apiserver(self) -> None:
        _terminate(self._apiserver)
        self._apiserver = None

    def is_ready(self) -> bool:
        if self._apiserver is not None and self._apiserver.poll() is not None:
            raise RuntimeError(
                f"kube-apiserver exited with {self._apiserver.returncode}. "
                + self._tail("kube-apiserver")
            )
        return _http_ok(f"{self.url}/readyz", self._client_tls())

    def _client_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        context.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return context

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "devstack",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(self.admin.cert),
                        "client-key": str(self.admin.key),
                    },
                }
            ],
            "contexts": [{"name": "devstack", "context": {"cluster": "devstack", "user": "admin"}}],
            "current-context": "devstack",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = self.log_path(name).open("ab")
        self._logs.append(log)
        return subprocess.Popen(  # noqa: S603 - argv built from trusted paths
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def _tail(self, name: str, lines: int = 30) -> str:
        path = self.log_path(name)
        if not path.exists():
            return ""
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        return f"Last lines of {path}:\n" + "\n".join(tail)


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
        return False


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
