"""Finds the kube-apiserver, etcd, kubectl, helm and kubeconform binaries.

Order: an explicit per-binary environment variable, then EMAILSETTINGS_BIN_DIR,
then the newest build in the cache that hack/build-binaries.sh fills.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TOOLS = ("kube-apiserver", "etcd", "kubectl", "helm", "kubeconform")


class BinaryNotFoundError(RuntimeError):
    pass


def cache_root() -> Path:
    explicit = os.environ.get("EMAILSETTINGS_BIN_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "emailsettings-operator"


def _env_name(tool: str) -> str:
    return "EMAILSETTINGS_" + tool.upper().replace("-", "_")


def find(tool: str) -> Path:
    explicit = os.environ.get(_env_name(tool))
    if explicit:
        return Path(explicit)
    candidates: list[Path] = []
    bin_dir = os.environ.get("EMAILSETTINGS_BIN_DIR")
    if bin_dir:
        candidates.append(Path(bin_dir) / tool)
    builds = cache_root() / "bin"
    if builds.is_dir():
        candidates.extend(
            d / tool
            for d in sorted(builds.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        )
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise BinaryNotFoundError(
        f"{tool} not found. Build the cached binaries with 'bash hack/build-binaries.sh' "
        f"(or 'make binaries'), or set {_env_name(tool)} / EMAILSETTINGS_BIN_DIR."
    )


def find_on_path_or_cache(tool: str) -> Path:
    """kubectl may come from the machine when the cache has none."""
    try:
        return find(tool)
    except BinaryNotFoundError:
        found = shutil.which(tool)
        if found:
            return Path(found)
        raise
