"""A small asyncio Kubernetes API client shared by the operator and the sidecar."""

from emailsettings.kube.client import KubeClient, WatchEvent
from emailsettings.kube.config import ConfigError, KubeConfig
from emailsettings.kube.errors import ApiError, ConflictError, GoneError, NotFoundError
from emailsettings.kube.follow import RELISTED, follow

__all__ = [
    "RELISTED",
    "ApiError",
    "ConfigError",
    "ConflictError",
    "GoneError",
    "KubeClient",
    "KubeConfig",
    "NotFoundError",
    "WatchEvent",
    "follow",
]
