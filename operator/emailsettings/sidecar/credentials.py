"""The SMTP password and CA bundle: from mounted files, or `get` on one Secret.

Mounted files (the default) need no Secret RBAC. Kubernetes replaces a mounted
Secret's files in place when the Secret changes; every read stats the file and
re-reads it when it changed, so a rotated password is used from the next
connection on, without a restart. With `secret_source=api` the Secret named in
`spec.smtp.passwordSecretRef` is fetched with `get`, cached briefly, and fetched
again after an authentication failure.

Values never reach logs, metrics or the API: messages name files and Secrets only.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from emailsettings.api.models import EmailSettingsSpec
from emailsettings.kube import ApiError, NotFoundError, paths
from emailsettings.sidecar.settings_gate import GateReason

log = logging.getLogger(__name__)

API_CACHE_SECONDS = 60.0


class CredentialError(Exception):
    def __init__(self, reason: GateReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ObjectReader(Protocol):
    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _FileValue:
    signature: tuple[int, int, int]
    value: str


@dataclass(frozen=True)
class _ApiValue:
    fetched_at: float
    value: str


class Credentials:
    def __init__(
        self,
        *,
        source: str = "file",
        secret_dir: Path | None = None,
        password_file: Path | None = None,
        ca_dir: Path | None = None,
        namespace: str = "",
        client: ObjectReader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.secret_dir = secret_dir
        self.password_file = password_file
        self.ca_dir = ca_dir
        self.namespace = namespace
        self.client = client
        self._clock = clock
        self._files: dict[Path, _FileValue] = {}
        self._api: dict[tuple[str, str, str], _ApiValue] = {}

    # public ------------------------------------------------------------------

    async def password(self, spec: EmailSettingsSpec) -> str | None:
        """The SMTP password, or None when the settings name no username."""
        smtp = spec.smtp
        if not smtp.username:
            return None
        ref = smtp.password_secret_ref
        if ref is None:
            raise CredentialError(
                GateReason.PASSWORD_UNAVAILABLE,
                "spec.smtp.username is set but spec.smtp.passwordSecretRef is not",
            )
        if self.password_file is not None:
            return self._read_file(self.password_file, "password", GateReason.PASSWORD_UNAVAILABLE)
        if self.source == "api":
            return await self._read_api(
                "Secret", ref.name, ref.key, GateReason.PASSWORD_UNAVAILABLE
            )
        if self.secret_dir is None:
            raise CredentialError(GateReason.PASSWORD_UNAVAILABLE, "no secret directory set")
        return self._read_file(
            self.secret_dir / ref.key, "password", GateReason.PASSWORD_UNAVAILABLE
        )

    async def ca_bundle(self, spec: EmailSettingsSpec) -> str | None:
        tls = spec.smtp.tls
        ref = tls.ca_bundle_ref if tls is not None else None
        if ref is None:
            return None
        if self.source == "api":
            return await self._read_api(
                str(ref.kind), ref.name, ref.key, GateReason.CA_BUNDLE_UNAVAILABLE
            )
        if self.ca_dir is None:
            raise CredentialError(GateReason.CA_BUNDLE_UNAVAILABLE, "no CA directory set")
        return self._read_file(self.ca_dir / ref.key, "CA bundle", GateReason.CA_BUNDLE_UNAVAILABLE)

    def invalidate(self) -> None:
        """Forget cached values (after the server rejected the login)."""
        self._files.clear()
        self._api.clear()

    # files -------------------------------------------------------------------

    def _read_file(self, path: Path, what: str, reason: GateReason) -> str:
        try:
            info = path.stat()
            signature = (info.st_ino, info.st_mtime_ns, info.st_size)
            cached = self._files.get(path)
            if cached is not None and cached.signature == signature:
                return cached.value
            value = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise CredentialError(
                reason, f"the {what} file {path} does not exist (is the Secret mounted?)"
            ) from None
        except UnicodeDecodeError:
            raise CredentialError(reason, f"the {what} file {path} is not UTF-8 text") from None
        except OSError as error:
            raise CredentialError(
                reason, f"the {what} file {path} cannot be read: {os.strerror(error.errno or 0)}"
            ) from None
        if cached is not None:
            log.info("%s file %s changed; using the new value", what, path)
        self._files[path] = _FileValue(signature, value)
        return value

    # the API -----------------------------------------------------------------

    async def _read_api(self, kind: str, name: str, key: str, reason: GateReason) -> str:
        cache_key = (kind, name, key)
        cached = self._api.get(cache_key)
        now = self._clock()
        if cached is not None and now - cached.fetched_at < API_CACHE_SECONDS:
            return cached.value
        if self.client is None:
            raise CredentialError(reason, "no Kubernetes client to read the Secret with")
        where = f"{kind} {self.namespace}/{name}"
        path = (
            paths.configmap(self.namespace, name)
            if kind == "ConfigMap"
            else paths.secret(self.namespace, name)
        )
        try:
            obj = await self.client.get(path)
        except NotFoundError:
            raise CredentialError(reason, f"{where} does not exist") from None
        except ApiError as error:
            raise CredentialError(
                reason, f"cannot get {where}: {error.status} {error.reason}"
            ) from None
        except (OSError, TimeoutError) as error:
            raise CredentialError(
                reason, f"cannot reach the API to get {where}: {type(error).__name__}"
            ) from None
        value = _value_of(obj, kind, key)
        if value is None:
            raise CredentialError(reason, f"{where} has no key {key!r}")
        if cached is not None and cached.value != value:
            log.info("%s key %s changed; using the new value", where, key)
        self._api[cache_key] = _ApiValue(now, value)
        return value


def _value_of(obj: Mapping[str, Any], kind: str, key: str) -> str | None:
    if kind == "ConfigMap":
        text = (obj.get("data") or {}).get(key)
        return text if isinstance(text, str) else None
    encoded = (obj.get("data") or {}).get(key)
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
