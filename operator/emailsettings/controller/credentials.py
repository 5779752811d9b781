"""Resolve the password and the CA bundle an EmailSettings references."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from emailsettings.api.conditions import Reason
from emailsettings.api.models import EmailSettingsSpec
from emailsettings.controller.logs import SecretRedactor
from emailsettings.controller.objectcache import ObjectCache, ObjectKey
from emailsettings.controller.status import Problem
from emailsettings.smtp import Login


@dataclass(frozen=True)
class Resolved:
    login: Login | None = field(default=None, repr=False)
    secret_resource_version: str | None = None
    ca_bundle_pem: str | None = field(default=None, repr=False)
    ca_resource_version: str | None = None


def referenced_objects(namespace: str, spec: EmailSettingsSpec) -> set[ObjectKey]:
    keys: set[ObjectKey] = set()
    ref = spec.smtp.password_secret_ref
    if ref is not None:
        keys.add(("Secret", namespace, ref.name))
    tls = spec.smtp.tls
    if tls is not None and tls.ca_bundle_ref is not None:
        keys.add((str(tls.ca_bundle_ref.kind), namespace, tls.ca_bundle_ref.name))
    return keys


async def resolve(
    namespace: str, spec: EmailSettingsSpec, cache: ObjectCache
) -> Resolved | Problem:
    login: Login | None = None
    secret_rv: str | None = None
    ref = spec.smtp.password_secret_ref
    if ref is not None and spec.smtp.username:
        secret = await cache.get(("Secret", namespace, ref.name))
        if secret is None:
            return Problem(
                Reason.SECRET_NOT_FOUND,
                f"spec.smtp.passwordSecretRef: Secret {namespace}/{ref.name} was not found.",
            )
        encoded = secret["data"].get(ref.key)
        if encoded is None:
            return Problem(
                Reason.SECRET_KEY_MISSING,
                f"spec.smtp.passwordSecretRef: Secret {namespace}/{ref.name} "
                f"has no key {ref.key!r}.",
            )
        try:
            password = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return Problem(
                Reason.SECRET_KEY_MISSING,
                f"spec.smtp.passwordSecretRef: key {ref.key!r} of Secret {namespace}/{ref.name} "
                "is not UTF-8 text.",
            )
        login = Login(spec.smtp.username, password.rstrip("\r\n"))
        SecretRedactor.register(login.password)
        secret_rv = secret["resourceVersion"]

    ca_pem: str | None = None
    ca_rv: str | None = None
    tls = spec.smtp.tls
    if tls is not None and tls.ca_bundle_ref is not None:
        ca_ref = tls.ca_bundle_ref
        kind = str(ca_ref.kind)
        source = await cache.get((kind, namespace, ca_ref.name))
        value = None if source is None else source["data"].get(ca_ref.key)
        if value is None:
            return Problem(
                Reason.CA_BUNDLE_NOT_FOUND,
                f"spec.smtp.tls.caBundleRef: {kind} {namespace}/{ca_ref.name} with key "
                f"{ca_ref.key!r} was not found.",
            )
        ca_pem = base64.b64decode(value).decode() if kind == "Secret" else str(value)
        ca_rv = source["resourceVersion"] if source else None
    return Resolved(login, secret_rv, ca_pem, ca_rv)
