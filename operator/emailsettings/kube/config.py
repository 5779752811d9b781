"""Where the API server is and how to authenticate: in-cluster or a kubeconfig."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigError(RuntimeError):
    pass


@dataclass(frozen=True)
class KubeConfig:
    server: str
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    token: str | None = None
    token_file: str | None = None  # re-read on every request: bound tokens rotate
    insecure_skip_tls_verify: bool = False
    namespace: str = "default"

    @classmethod
    def load(cls, kubeconfig: str | os.PathLike[str] | None = None) -> KubeConfig:
        """An explicit kubeconfig, else in-cluster, else $KUBECONFIG or ~/.kube/config."""
        in_cluster = os.environ.get("KUBERNETES_SERVICE_HOST") and (
            (SERVICE_ACCOUNT_DIR / "token").exists()
        )
        if kubeconfig is None and in_cluster:
            return cls.in_cluster()
        path = kubeconfig or os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config"
        first = str(path).split(os.pathsep)[0]
        return cls.from_kubeconfig(Path(first))

    @classmethod
    def in_cluster(cls) -> KubeConfig:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if ":" in host:
            host = f"[{host}]"
        namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
        return cls(
            server=f"https://{host}:{port}",
            ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
            token_file=str(SERVICE_ACCOUNT_DIR / "token"),
            namespace=namespace_file.read_text().strip() if namespace_file.exists() else "default",
        )

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeConfig:
        try:
            document: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        except OSError as error:
            raise ConfigError(f"cannot read kubeconfig {path}: {error.strerror}") from None
        base = path.parent
        context_name = document.get("current-context")
        context = _named(document.get("contexts", []), context_name, "context")
        cluster = _named(document.get("clusters", []), context.get("cluster"), "cluster")
        user = _named(document.get("users", []), context.get("user"), "user", optional=True)
        return cls(
            server=str(cluster["server"]).rstrip("/"),
            ca_file=_file_or_data(cluster, "certificate-authority", base),
            client_cert_file=_file_or_data(user, "client-certificate", base),
            client_key_file=_file_or_data(user, "client-key", base),
            token=user.get("token"),
            token_file=_resolve(user.get("tokenFile"), base),
            insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
            namespace=context.get("namespace") or "default",
        )

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure_skip_tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_file:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        return context

    def bearer_token(self) -> str | None:
        if self.token_file:
            return Path(self.token_file).read_text().strip()
        return self.token


def _named(
    entries: list[dict[str, Any]], name: str | None, kind: str, *, optional: bool = False
) -> dict[str, Any]:
    for entry in entries or []:
        if entry.get("name") == name:
            value: dict[str, Any] = entry.get(kind) or {}
            return value
    if optional:
        return {}
    raise ConfigError(f"kubeconfig has no {kind} named {name!r}")


def _resolve(value: str | None, base: Path) -> str | None:
    if not value:
        return None
    path = Path(value)
    return str(path if path.is_absolute() else base / path)


def _file_or_data(section: dict[str, Any], key: str, base: Path) -> str | None:
    inline = section.get(f"{key}-data")
    if inline:
        # ssl wants files; keep the decoded PEM in a private temp file.
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix="kube-", suffix=".pem", delete=False
        )
        with handle:
            handle.write(base64.b64decode(inline))
        Path(handle.name).chmod(0o600)
        return handle.name
    return _resolve(section.get(key), base)
