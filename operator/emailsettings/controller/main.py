"""`emailsettings-operator`: run the operator."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import kopf

from emailsettings.controller import config, handlers, logs


def main(argv: Sequence[str] | None = None) -> int:
    settings = config.load(argv)
    logs.configure(settings.log_level, settings.log_format)
    handlers.CONFIG = settings
    liveness = (
        f"http://{settings.bind_address}:{settings.health_port}/healthz"
        if settings.health_port
        else None
    )
    kopf.run(
        clusterwide=settings.clusterwide,
        namespaces=list(settings.namespaces),
        standalone=not settings.peering,
        priority=settings.priority,
        peering_name=settings.peering or None,
        liveness_endpoint=liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
