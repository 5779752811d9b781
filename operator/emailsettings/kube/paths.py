"""REST paths of the objects this product touches."""

from __future__ import annotations

from emailsettings.api import GROUP, PLURAL, VERSION


def emailsettings(namespace: str | None = None, name: str | None = None) -> str:
    base = f"/apis/{GROUP}/{VERSION}"
    if namespace is not None:
        base += f"/namespaces/{namespace}"
    base += f"/{PLURAL}"
    return f"{base}/{name}" if name else base


def emailsettings_status(namespace: str, name: str) -> str:
    return emailsettings(namespace, name) + "/status"


def core(kind_plural: str, namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/{kind_plural}"
    return f"{base}/{name}" if name else base


def secret(namespace: str, name: str) -> str:
    return core("secrets", namespace, name)


def configmap(namespace: str, name: str) -> str:
    return core("configmaps", namespace, name)


def events(namespace: str) -> str:
    return core("events", namespace)
