"""The whole local stack in one object: control plane, local CA, SMTP server."""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from emailsettings.devstack.controlplane import ControlPlane
from emailsettings.devstack.kubectl import Kubectl
from emailsettings.devstack.pki import LocalCA
from emailsettings.devstack.smtp_server import Credentials, Security, SMTPServer


@dataclass
class LocalStack:
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="emailsettings-")))
    smtp_credentials: Credentials = field(
        default_factory=lambda: Credentials("notifier@example.com", secrets.token_urlsafe(12))
    )
    control_plane: ControlPlane | None = None
    smtp: SMTPServer | None = None
    ca: LocalCA | None = None

    @property
    def kubectl(self) -> Kubectl:
        assert self.control_plane is not None
        return Kubectl(self.control_plane.kubeconfig)

    def start(self) -> Self:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Self:
        self.ca = LocalCA(self.workdir / "smtp-pki", name="emailsettings-devstack-smtp-ca")
        cert = self.ca.issue("smtp", "localhost", "127.0.0.1")
        self.smtp = SMTPServer(
            Security.STARTTLS,
            cert=cert,
            credentials=self.smtp_credentials,
            maildir=self.workdir / "mail",
        )
        self.smtp.start()
        self.control_plane = ControlPlane(self.workdir / "controlplane", keep_workdir=True)
        self.control_plane.start()
        return self

    def stop(self) -> None:
        if self.control_plane is not None:
            self.control_plane.stop()
        if self.smtp is not None:
            self.smtp.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
