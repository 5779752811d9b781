"""The run command's scenario: the CRD, the operator and three example EmailSettings.

One is good, one has a wrong password, one names a Secret that does not exist, so
a first look at `kubectl get emailsettings` shows success and two actionable failures.
"""

from __future__ import annotations

import base64
import json
import smtplib
import time
import urllib.request
from email.message import EmailMessage
from typing import Any

from emailsettings.api import API_VERSION, KIND
from emailsettings.api.schema_export import crd_yaml
from emailsettings.devstack.kubectl import Kubectl
from emailsettings.devstack.smtp_server import Credentials

NAMESPACE = "demo"
EXAMPLES = ("good", "wrong-password", "missing-secret")


def install_crd(kubectl: Kubectl) -> None:
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=crd_yaml())
    kubectl.run(
        "wait", "--for=condition=Established", "crd/emailsettings.emailsettings.io", "--timeout=60s"
    )


def _secret(name: str, password: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }


def _settings(name: str, port: int, secret: str, username: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "enabled": True,
            "smtp": {
                "host": "localhost",
                "port": port,
                "encryption": "STARTTLS",
                "username": username,
                "passwordSecretRef": {"name": secret, "key": "password"},
                "tls": {"caBundleRef": {"kind": "ConfigMap", "name": "smtp-ca", "key": "ca.crt"}},
            },
            "sender": "Invicti Notifications <notifier@example.com>",
            "recipients": {
                "administrative": ["admin@example.com", "admin2@example.com"],
                "error": ["admin@example.com"],
                "support": ["support@example.com"],
            },
            "verification": {"mode": "VerifyAndSave", "interval": "10m"},
        },
    }


def apply_examples(kubectl: Kubectl, smtp_port: int, login: Credentials, ca_pem: str) -> None:
    kubectl.run("create", "namespace", NAMESPACE, check=False)
    kubectl.apply(
        _secret("smtp-credentials", login.password),
        _secret("wrong-credentials", "not-the-password"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "smtp-ca", "namespace": NAMESPACE},
            "data": {"ca.crt": ca_pem},
        },
        _settings("good", smtp_port, "smtp-credentials", login.username),
        _settings("wrong-password", smtp_port, "wrong-credentials", login.username),
        _settings("missing-secret", smtp_port, "no-such-secret", login.username),
    )


def _settled(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    ready: dict[str, Any] = next(
        (c for c in status.get("conditions", []) if c["type"] == "Ready"), {}
    )
    return status.get("observedGeneration") == item["metadata"]["generation"] and ready.get(
        "status"
    ) in {"True", "False"}


def show_convergence(kubectl: Kubectl, timeout: float = 60) -> None:
    """Print the table each time it changes, until every example has settled."""
    last = ""
    deadline = time.monotonic() + timeout
    items: dict[str, Any] = {"items": []}
    while True:
        items = json.loads(
            kubectl.run("get", "emailsettings", "-n", NAMESPACE, "-o", "json").stdout
        )
        # Reprint when readiness changes, not when only the AGE column ticks.
        signature = json.dumps([(i["metadata"]["name"], i.get("status")) for i in items["items"]])
        if signature != last:
            table = kubectl.run("get", "emailsettings", "-n", NAMESPACE).stdout
            print(f"\n$ kubectl get emailsettings -n {NAMESPACE}\n{table}", end="", flush=True)
            last = signature
        settled = len(items["items"]) == len(EXAMPLES) and all(_settled(i) for i in items["items"])
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # a person is watching: refresh twice a second
    print("\nConditions:")
    for item in items["items"]:
        print(f"  {item['metadata']['name']}:")
        for condition in item.get("status", {}).get("conditions", []):
            print(
                f"    {condition['type']:<20} {condition['status']:<8} "
                f"{condition['reason']}: {condition['message']}"
            )


SAMPLE_NOTIFICATIONS: tuple[dict[str, Any], ...] = (
    {
        "category": "administrative",
        "event": "agent-out-of-date",
        "fields": {"agentName": "agent-7", "agentVersion": "1.2", "requiredVersion": "1.4"},
    },
    {
        "category": "error",
        "event": "error-report",
        "fields": {"message": "NullReferenceException in ScanScheduler", "errorId": "E-1042"},
    },
    {
        "category": "support",
        "event": "request-for-assistance",
        "fields": {"requester": "Dana", "message": "Scans on staging are stuck."},
    },
)


def send_samples(sidecar_url: str) -> list[str]:
    """POST one notification per category to the sidecar; returns their ids."""
    ids = []
    for notification in SAMPLE_NOTIFICATIONS:
        request = urllib.request.Request(  # noqa: S310 - the local sidecar
            f"{sidecar_url}/v1/notifications",
            data=json.dumps(notification).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            ids.append(json.loads(response.read())["id"])
        print(f"  {notification['category']:<15} {notification['event']:<25} accepted ({ids[-1]})")
    return ids


def send_over_smtp(port: int) -> None:
    """An application that already sends mail: plain SMTP to the sidecar, no password."""
    message = EmailMessage()
    message["From"] = "legacy-app@example.com"
    message["To"] = "support@localhost"
    message["Subject"] = "Scan running longer than expected"
    message.set_content("Scan 4711 has been running for 9 hours.")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(message)
    print(f"  over SMTP      to support@localhost        accepted (127.0.0.1:{port})")
