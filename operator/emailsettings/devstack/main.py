"""`emailsettings-devstack up`: the local stack behind the README's run command."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading

from emailsettings.devstack import demo
from emailsettings.devstack.netutil import free_port
from emailsettings.devstack.processes import OperatorProcess, SidecarProcess
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
            secret_dir = stack.workdir / "sidecar" / "smtp-secret"
            ca_dir = stack.workdir / "sidecar" / "smtp-ca"
            secret_dir.mkdir(parents=True)
            ca_dir.mkdir(parents=True)
            # Stand-ins for the Secret and ConfigMap volumes the chart mounts.
            (secret_dir / "password").write_text(stack.smtp_credentials.password)
            (ca_dir / "ca.crt").write_bytes(stack.ca.ca_pem)
            sidecar = SidecarProcess(
                stack.workdir / "sidecar.log",
                kubeconfig=stack.control_plane.kubeconfig,
                namespace=demo.NAMESPACE,
                settings_name="good",
                spool_dir=stack.workdir / "sidecar" / "spool",
                secret_dir=secret_dir,
                ca_dir=ca_dir,
                smtp_port=free_port(),
            )
            sidecar.start()
            print(f"\nThe sidecar follows EmailSettings demo/good at {sidecar.url}; notifying:")
            demo.send_samples(sidecar.url)
            assert sidecar.smtp_port is not None
            demo.send_over_smtp(sidecar.smtp_port)
            delivered = stack.smtp.mailbox.wait_for(len(demo.SAMPLE_NOTIFICATIONS) + 1, timeout=60)
            print(f"Delivered {len(delivered)} messages; read them in {stack.workdir / 'mail'}/")
            print(
                f"\nThe stack is up. In another terminal:\n"
                f"  export KUBECONFIG={stack.control_plane.kubeconfig}\n"
                f"  kubectl get emailsettings -n {demo.NAMESPACE}\n"
                f"  kubectl describe emailsettings good -n {demo.NAMESPACE}\n"
                f"  kubectl explain emailsettings.spec.smtp\n"
                f"  kubectl wait --for=condition=Ready emailsettings/good -n {demo.NAMESPACE}\n"
                f"Fix the wrong password and watch it turn Ready:\n"
                f"  kubectl patch secret wrong-credentials -n {demo.NAMESPACE} --type=merge -p "
                f'"{{\\"data\\":{{\\"password\\":\\"$(kubectl get secret smtp-credentials '
                f"-n {demo.NAMESPACE} -o jsonpath='{{.data.password}}')\\\"}}}}\"\n"
                f"SMTP server (STARTTLS + AUTH): localhost:{stack.smtp.port}, "
                f"CA certificate {stack.ca.ca_cert}\n"
                f"Operator log: {operator_log}\n"
                f"Send more: emailsettings notify --url {sidecar.url} "
                "--category support --event request-for-assistance "
                "--field requester=You --field message=Hello\n"
                f"  or over SMTP: swaks --server 127.0.0.1:{sidecar.smtp_port} "
                "--to error@localhost --from app@example.com\n"
                "Press Ctrl-C to stop.",
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
            sidecar.stop()
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
