#!/usr/bin/env python3
"""helm test: wait until an EmailSettings is Ready for its current generation.

Runs in the chart's own image with the standard library only. It lists the one
object (field selector on its name, so the Role can be limited by resourceNames)
and then watches it, deciding on every change; it never polls on a timer.

Ready means: the Ready condition is True and status.observedGeneration equals
metadata.generation (the operator has judged the current spec), the same rule
the sidecar applies before it sends.

Environment: EMAILSETTINGS_NAME, EMAILSETTINGS_NAMESPACE, EMAILSETTINGS_TIMEOUT_SECONDS;
the in-cluster API address, token and CA as usual (KUBERNETES_SERVICE_HOST/PORT and the
service-account files; EMAILSETTINGS_TOKEN_FILE / EMAILSETTINGS_CA_FILE override the paths).
Exit status: 0 Ready, 1 not Ready in time, 2 the API refused (e.g. RBAC) or the object is gone.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def say(text: str) -> None:
    """One line to the test pod's log (what `helm test --logs` shows)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def is_ready(obj: dict[str, Any]) -> tuple[bool, str]:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get("Ready")
    if ready is None:
        return False, "no Ready condition yet (is the operator running?)"
    summary = f"Ready={ready.get('status')} reason={ready.get('reason')}: {ready.get('message')}"
    if observed != generation:
        return False, f"status is for generation {observed}, spec is {generation}; {summary}"
    return ready.get("status") == "True", summary


class Api:
    def __init__(self) -> None:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if ":" in host:
            host = f"[{host}]"
        self.base = f"https://{host}:{port}"
        token_file = os.environ.get("EMAILSETTINGS_TOKEN_FILE", f"{SERVICE_ACCOUNT}/token")
        ca_file = os.environ.get("EMAILSETTINGS_CA_FILE", f"{SERVICE_ACCOUNT}/ca.crt")
        self.token = Path(token_file).read_text(encoding="utf-8").strip()
        self.context = ssl.create_default_context(cafile=ca_file)

    def open(self, path: str, query: dict[str, str], timeout: float) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(  # noqa: S310 - https URL built from the API address
            url, headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        )
        return urllib.request.urlopen(request, timeout=timeout, context=self.context)  # noqa: S310


def main() -> int:
    name = os.environ["EMAILSETTINGS_NAME"]
    namespace = os.environ["EMAILSETTINGS_NAMESPACE"]
    deadline = time.monotonic() + float(os.environ.get("EMAILSETTINGS_TIMEOUT_SECONDS", "180"))
    path = f"/apis/emailsettings.io/v1alpha1/namespaces/{namespace}/emailsettings"
    selector = {"fieldSelector": f"metadata.name={name}"}
    api = Api()
    last = "not read yet"
    try:
        while time.monotonic() < deadline:
            with api.open(path, selector, timeout=30) as response:
                listing = json.load(response)
            items = listing.get("items") or []
            if not items:
                say(f"EmailSettings {namespace}/{name} does not exist")
                return 2
            ready, last = is_ready(items[0])
            say(f"EmailSettings {namespace}/{name}: {last}")
            if ready:
                return 0
            version = listing["metadata"]["resourceVersion"]
            remaining = max(1, int(deadline - time.monotonic()))
            query = {
                **selector,
                "watch": "true",
                "resourceVersion": version,
                "timeoutSeconds": str(remaining),
                "allowWatchBookmarks": "false",
            }
            with api.open(path, query, timeout=remaining + 10) as stream:
                for line in stream:
                    event = json.loads(line)
                    if event.get("type") == "DELETED":
                        say(f"EmailSettings {namespace}/{name} was deleted")
                        return 2
                    if event.get("type") == "ERROR":
                        break  # e.g. 410 Gone: list again
                    ready, now = is_ready(event["object"])
                    if now != last:
                        say(f"EmailSettings {namespace}/{name}: {now}")
                    last = now
                    if ready:
                        return 0
    except urllib.error.HTTPError as error:
        say(f"the API refused: {error.code} {error.read().decode(errors='replace')}")
        return 2
    say(f"EmailSettings {namespace}/{name} not Ready in time; last: {last}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
