"""`emailsettings-devstack up`: the local stack behind the README's run command."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading

from emailsettings.devstack import demo
from emailsettings.devstack.processes import OperatorProcess
from emailsettings.devstack.stack import LocalStack


def up() -> int:
    # aiosmtpd warns about its own deprecated attribute on every login; noise here.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    print(
        "Starting the local stack: etcd, kube-apiserver and a STARTTLS SMTP server...", flush=True
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalStack() as stack:
        assert stack.control_plane is not None
        assert stack.smtp is not None
        assert stack.ca is not None
        kubectl = stack.kubectl
        demo.install_crd(kubectl)
        operator_log = stack.workdir / "operator.log"
        print(f"Starting the operator (log: {operator_log})...", flush=True)
        with OperatorProcess(operator_log, kubeconfig=stack.control_plane.kubeconfig):
            demo.apply_examples(
                kubectl, stack.smtp.port, stack.smtp_credentials, stack.ca.ca_pem.decode()
            )
            demo.show_convergence(kubectl)
            print(
                f"\nThe stack is up. In another terminal:\n"
                f"  export KUBECONFIG={stack.control_plane.kubeconfig}\n"
                f"  kubectl get emailsettings -n {demo.NAMESPACE}\n"
                f"  kubectl describe emailsettings good -n {demo.NAMESPACE}\n"
                f"  kubectl explain emailsettings.spec.smtp\n"
                f"  kubectl wait --for=condition=Ready emailsettings/good -n {demo.NAMESPACE}\n"
                f"Fix the wrong password and watch it turn Ready:\n"
                f"  kubectl create secret generic wrong-credentials -n {demo.NAMESPACE} "
                f"--from-literal=password='{stack.smtp_credentials.password}' "
                f"--dry-run=client -o yaml | kubectl apply -f -\n"
                f"SMTP server (STARTTLS + AUTH): localhost:{stack.smtp.port}, "
                f"CA certificate {stack.ca.ca_cert}\n"
                f"Operator log: {operator_log}\n"
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
