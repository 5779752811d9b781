"""`emailsettings notify`: post a notification to a running sidecar.

    emailsettings notify --category administrative --event agent-out-of-date \\
        --field agentName=agent-7 --field agentVersion=1.2 --wait

Talks to the sidecar's local HTTP API (default http://127.0.0.1:8090, or
$EMAILSETTINGS_SIDECAR_URL). Exit status: 0 accepted (with --wait: delivered),
1 refused by the sidecar or (with --wait) not delivered, 2 usage error,
3 sidecar unreachable or unable to store it now (503): safe to retry.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
DEFAULT_URL = "http://127.0.0.1:8090"
FINAL_STATES = {"delivered", "partially_delivered", "dead_letter"}
POLL_SECONDS = 0.5


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "notify",
        help="send a notification through a running sidecar",
        description="Post one notification to the notification sidecar's local API. "
        "Exit status: 0 accepted (with --wait: delivered), 1 refused or not delivered, "
        "2 usage error, 3 sidecar unreachable or unavailable (retry later).",
    )
    parser.add_argument(
        "--category",
        required=True,
        choices=("administrative", "error", "support"),
        help="which recipient list receives it",
    )
    parser.add_argument(
        "--event",
        required=True,
        help="a catalog event (e.g. agent-out-of-date, error-report) or a custom id",
    )
    parser.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template field; repeat for more",
    )
    parser.add_argument(
        "--field-file",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a template field read from a file ('-' for standard input), e.g. a stack trace",
    )
    parser.add_argument("--subject", help="subject text (one line); overrides the template")
    body = parser.add_mutually_exclusive_group()
    body.add_argument("--body", help="plain body text")
    body.add_argument("--body-file", metavar="PATH", help="body text from a file ('-': stdin)")
    parser.add_argument(
        "--idempotency-key",
        help="repeating a request with the same key does not send twice",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("EMAILSETTINGS_SIDECAR_URL", DEFAULT_URL),
        help=f"the sidecar's API (default $EMAILSETTINGS_SIDECAR_URL or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait until it is delivered or dead-lettered",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait with --wait (default 60)"
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.set_defaults(handler=run)


class UsageError(ValueError):
    pass


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def build_payload(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, str] = {}
    for item in args.field:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--field {item!r}: use NAME=VALUE")
        fields[name] = value
    for item in args.field_file:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--field-file {item!r}: use NAME=PATH")
        fields[name] = _read(path)
    payload: dict[str, Any] = {"category": args.category, "event": args.event}
    if fields:
        payload["fields"] = fields
    if args.subject is not None:
        payload["subject"] = args.subject
    if args.body is not None:
        payload["body"] = args.body
    elif args.body_file is not None:
        payload["body"] = _read(args.body_file)
    if args.idempotency_key is not None:
        payload["idempotencyKey"] = args.idempotency_key
    return payload


def _call(method: str, url: str, payload: Any = None) -> tuple[int, dict[str, Any]]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own choice
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            body = json.loads(error.read() or b"{}")
        except ValueError:
            body = {"detail": error.reason}
        return error.code, body


def _say(args: argparse.Namespace, text: str, document: dict[str, Any]) -> None:
    if args.output == "json":
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(text)


def run(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    try:
        payload = build_payload(args)
    except UsageError as error:
        print(f"emailsettings notify: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        status, body = _call("POST", f"{base}/v1/notifications", payload)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        print(
            f"emailsettings notify: cannot reach the sidecar at {base}: {reason}", file=sys.stderr
        )
        return EXIT_UNAVAILABLE
    if status != 202:
        where = f" ({body['field']})" if body.get("field") else ""
        print(
            f"emailsettings notify: refused with {status}{where}: {body.get('detail', body)}",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE if status == 503 else EXIT_REFUSED
    nid = str(body["id"])
    note = " (duplicate of an earlier request)" if body.get("duplicate") else ""
    if not args.wait:
        _say(args, f"accepted {nid}: {body['state']}{note}", body)
        return EXIT_OK
    return _wait(args, base, str(body.get("collapsedInto") or nid))


def _wait(args: argparse.Namespace, base: str, nid: str) -> int:
    deadline = time.monotonic() + args.timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            status, state = _call("GET", f"{base}/v1/notifications/{nid}")
        except (urllib.error.URLError, OSError):
            status = 0
        if status == 200 and state.get("state") in FINAL_STATES:
            break
        time.sleep(POLL_SECONDS)  # polling the sidecar for a state change
    final = state.get("state", "unknown")
    detail = state.get("deadLetterReason") or state.get("lastError") or ""
    _say(args, f"{nid}: {final}" + (f": {detail}" if detail else ""), state)
    if final == "delivered":
        return EXIT_OK
    if final not in FINAL_STATES:
        print(f"emailsettings notify: still {final} after {args.timeout:g}s", file=sys.stderr)
    return EXIT_REFUSED
