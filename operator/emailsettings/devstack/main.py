"""`emailsettings-devstack up`: the local stack behind the README's run command."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from emailsettings.devstack.stack import LocalStack


def up() -> int:
    print("Starting the local stack: etcd, kube-apiserver and a STARTTLS SMTP server...")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalStack() as stack:
        assert stack.control_plane is not None
        assert stack.smtp is not None
        print(
            f"\nControl plane: {stack.control_plane.url}\n"
            f"  export KUBECONFIG={stack.control_plane.kubeconfig}\n"
            f"  kubectl get namespaces\n"
            f"SMTP server (STARTTLS + AUTH): localhost:{stack.smtp.port}\n"
            f"  CA certificate: {stack.ca.ca_cert if stack.ca else ''}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    print("Stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emailsettings-devstack")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="run the local stack until interrupted")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up()
    return 2


if __name__ == "__main__":
    sys.exit(main())
