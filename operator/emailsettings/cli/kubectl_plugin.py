"""`kubectl emailsettings`: verify now, send a test message, show conditions.

Exit codes: 0 success; 1 the verification or test message failed; 2 usage;
3 the EmailSettings was not found; 4 timed out waiting for the answer; 5 API error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from emailsettings.api.requests import (
    TEST_MESSAGE_ANNOTATION,
    VERIFY_ANNOTATION,
    TestMessageRequest,
    new_request_id,
)
from emailsettings.kube import ApiError, KubeClient, KubeConfig, NotFoundError, paths

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_TIMEOUT, EXIT_API = 0, 1, 2, 3, 4, 5
COLORS = {"True": "\033[32m", "False": "\033[31m", "Unknown": "\033[33m"}
RESET = "\033[0m"


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before and after the subcommand, as kubectl users type them.
    default = (lambda value: value) if top else (lambda _: argparse.SUPPRESS)
    parser.add_argument("-n", "--namespace", default=default(None), help="namespace")
    parser.add_argument("--kubeconfig", default=default(os.environ.get("KUBECONFIG")))
    parser.add_argument("-o", "--output", choices=["text", "json"], default=default("text"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl emailsettings", description=__doc__)
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="re-verify SMTP now, bypassing shared results")
    verify.add_argument("name")
    test = commands.add_parser("test", help="send one real test message")
    test.add_argument("name")
    target = test.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", action="append", metavar="ADDR", help="recipient (repeatable)")
    target.add_argument("--category", choices=["administrative", "error", "support"])
    for command in (verify, test):
        command.add_argument("--wait", action="store_true", help="wait for the operator's answer")
        command.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    status = commands.add_parser("status", help="conditions of one or all EmailSettings")
    status.add_argument("name", nargs="?")
    status.add_argument("-A", "--all-namespaces", action="store_true")
    for command in (verify, test, status):
        _common(command, top=False)
    return parser


async def _annotate(client: KubeClient, namespace: str, name: str, key: str, value: str) -> None:
    patch = {"metadata": {"annotations": {key: value}}}
    await client.patch(paths.emailsettings(namespace, name), patch)


async def _wait(
    client: KubeClient, namespace: str, name: str, *, field: str, match: str, key: str, limit: float
) -> dict[str, Any] | None:
    """Poll until status.<field>.<key> == match: the answer to exactly this request."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        body = await client.get(paths.emailsettings(namespace, name))
        answer = (body.get("status") or {}).get(field) or {}
        if answer.get(key) == match and (field != "testMessageRequest" or answer.get("result")):
            return dict(answer)
        await asyncio.sleep(0.25)  # polling the API while waiting for the answer
    return None


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload, indent=2) if args.output == "json" else text)


async def _verify(args: argparse.Namespace, client: KubeClient, namespace: str) -> int:
    request = new_request_id()
    await _annotate(client, namespace, args.name, VERIFY_ANNOTATION, request)
    if not args.wait:
        _emit(args, {"request": request}, f"verification requested ({request})")
        return EXIT_OK
    answer = await _wait(
        client,
        namespace,
        args.name,
        field="verifyRequest",
        match=request,
        key="request",
        limit=args.timeout,
    )
    if answer is None:
        _emit(args, {"request": request, "timedOut": True}, f"no answer within {args.timeout:.0f}s")
        return EXIT_TIMEOUT
    body = await client.get(paths.emailsettings(namespace, args.name))
    ready = _condition(body, "Ready")
    ok = answer.get("ready") == "True"
    _emit(
        args,
        {"request": request, **answer, "message": ready.get("message")},
        f"{'verified' if ok else 'verification failed'}: "
        f"{answer.get('reason')}: {ready.get('message', '')}",
    )
    return EXIT_OK if ok else EXIT_FAILED


async def _test(args: argparse.Namespace, client: KubeClient, namespace: str) -> int:
    request = TestMessageRequest(new_request_id(), tuple(args.to or ()), args.category)
    await _annotate(client, namespace, args.name, TEST_MESSAGE_ANNOTATION, request.encode())
    if not args.wait:
        _emit(args, {"id": request.id}, f"test message requested ({request.id})")
        return EXIT_OK
    answer = await _wait(
        client,
        namespace,
        args.name,
        field="testMessageRequest",
        match=request.id,
        key="id",
        limit=args.timeout,
    )
    if answer is None:
        _emit(args, {"id": request.id, "timedOut": True}, f"no answer within {args.timeout:.0f}s")
        return EXIT_TIMEOUT
    ok = answer.get("result") == "Sent"
    _emit(args, answer, f"{'sent' if ok else 'not sent'}: {answer.get('message', '')}")
    return EXIT_OK if ok else EXIT_FAILED


def _condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


async def _status(args: argparse.Namespace, client: KubeClient, namespace: str) -> int:
    if args.name:
        items = [await client.get(paths.emailsettings(namespace, args.name))]
    else:
        scope = None if args.all_namespaces else namespace
        items = (await client.get(paths.emailsettings(scope))).get("items", [])
    if args.output == "json":
        print(
            json.dumps(
                [
                    {
                        "namespace": i["metadata"]["namespace"],
                        "name": i["metadata"]["name"],
                        "status": i.get("status") or {},
                    }
                    for i in items
                ],
                indent=2,
            )
        )
        return EXIT_OK
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    rows = [("NAMESPACE", "NAME", "CONDITION", "STATUS", "REASON", "MESSAGE")]
    rows.extend(
        (
            item["metadata"]["namespace"],
            item["metadata"]["name"],
            condition["type"],
            condition["status"],
            condition.get("reason", ""),
            condition.get("message", ""),
        )
        for item in items
        for condition in (item.get("status") or {}).get("conditions") or []
    )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for index, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:5])]
        if color and index > 0:
            cells[3] = f"{COLORS.get(row[3], '')}{cells[3]}{RESET}"
        print("  ".join([*cells, row[5]]))
    all_ready = all(_condition(i, "Ready").get("status") == "True" for i in items)
    return EXIT_OK if all_ready else EXIT_FAILED


async def _run(args: argparse.Namespace) -> int:
    config = KubeConfig.load(args.kubeconfig)
    namespace = args.namespace or config.namespace
    handlers = {"verify": _verify, "test": _test, "status": _status}
    async with KubeClient(config, user_agent="kubectl-emailsettings") as client:
        try:
            return await handlers[args.command](args, client, namespace)
        except NotFoundError:
            print(
                f"error: emailsettings {args.name!r} not found in namespace {namespace!r}",
                file=sys.stderr,
            )
            return EXIT_NOT_FOUND
        except ApiError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_API


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
