"""The application side of the SMTP intake tests: smtplib, swaks and a raw socket."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import shutil
import smtplib
import socket
import subprocess
from dataclasses import dataclass

import pytest

SWAKS_MISSING = "swaks is not installed: run hack/install-system-packages.sh (make test does)"


def swaks_path() -> str:
    found = shutil.which("swaks")
    if found is None:
        pytest.skip(SWAKS_MISSING)
    return found


def swaks(port: int, *args: str, host: str = "127.0.0.1") -> subprocess.CompletedProcess[str]:
    """Run swaks against the intake; its transcript is in stdout."""
    return subprocess.run(
        [swaks_path(), "--server", host, "--port", str(port), "--timeout", "20", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def smtp_source_path() -> str:
    """Postfix's SMTP load generator (package postfix, in /usr/sbin)."""
    found = shutil.which("smtp-source") or shutil.which("smtp-source", path="/usr/sbin")
    if found is None:
        pytest.skip("smtp-source is not installed: run hack/install-system-packages.sh")
    return found


@dataclass(frozen=True)
class Sent:
    code: int
    reply: str

    @property
    def queue_id(self) -> str:
        """The spool id in '250 2.0.0 Ok: queued as <id>'."""
        assert self.code == 250, self
        return self.reply.split("queued as ", 1)[1].split()[0]


def send(
    port: int,
    recipients: list[str],
    message: bytes,
    *,
    sender: str = "app@localhost",
    host: str = "127.0.0.1",
    mail_options: tuple[str, ...] = (),
) -> Sent:
    """One transaction with smtplib; the reply to the end of DATA (or the first refusal)."""
    with smtplib.SMTP(host, port, timeout=20) as client:
        client.ehlo("app.test")
        code, reply = client.mail(sender, list(mail_options))
        if code != 250:
            return Sent(code, reply.decode())
        for recipient in recipients:
            code, reply = client.rcpt(recipient)
            if code != 250:
                return Sent(code, reply.decode())
        code, reply = client.data(message)
        return Sent(code, reply.decode())


def message(
    subject: str = "Disk almost full",
    body: str = "97% used on /data\r\n",
    *,
    to: str = "administrative@localhost",
    extra: str = "",
) -> bytes:
    """A message as an application writes it, with a Message-ID derived from the subject."""
    mid = hashlib.sha256(subject.encode()).hexdigest()[:24]
    return (
        f"From: App <app@localhost>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{mid}@app.test>\r\n{extra}\r\n{body}"
    ).encode()


class RawSession:
    """A hand-driven SMTP session: bytes exactly as written, replies as read."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=20)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> str:
        lines = []
        while True:
            line = self.file.readline().decode()
            if not line:
                raise ConnectionError("connection closed")
            lines.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return "\n".join(lines)

    def command(self, line: bytes) -> str:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def non_loopback_ipv4() -> str | None:
    """An address of this machine that is not loopback (eth0's), if it has one."""
    candidates: list[str] = []
    try:
        shown = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "scope", "global"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout
        for line in shown.splitlines():
            parts = line.split()
            if "inet" in parts:
                candidates.append(parts[parts.index("inet") + 1].split("/")[0])
    except (OSError, subprocess.SubprocessError):
        pass
    with contextlib.suppress(OSError):
        candidates.append(socket.gethostbyname(socket.gethostname()))
    for candidate in candidates:
        if not ipaddress.ip_address(candidate).is_loopback:
            return candidate
    return None


# Sequences that some servers took for the end of DATA (the "SMTP smuggling" of 2023):
# whatever follows them would become a second message at such a server.
SMUGGLE = {
    "LF": b"\n.\nMAIL FROM:<evil@example.org>\nRCPT TO:<error@localhost>\nDATA\n"
    b"Subject: smuggled\n\nsmuggled body\n.\n",
    "CR": b"\r.\rMAIL FROM:<evil@example.org>\rRCPT TO:<error@localhost>\rDATA\r"
    b"Subject: smuggled\r\rsmuggled body\r.\r",
    "LF-CRLF": b"\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<error@localhost>\r\nDATA\r\n"
    b"Subject: smuggled\r\n\r\nsmuggled body\r\n",
    "CRLF-LF": b"\r\n.\nMAIL FROM:<evil@example.org>\nRCPT TO:<error@localhost>\nDATA\n"
    b"Subject: smuggled\n\nsmuggled body\n",
    "CRLF-CR": b"\r\n.\rMAIL FROM:<evil@example.org>\rRCPT TO:<error@localhost>\rDATA\r"
    b"Subject: smuggled\r\rsmuggled body\r",
}


def smuggle(port: int, variant: bytes) -> list[str]:
    """One DATA with a smuggling attempt inside, then the real end, then QUIT."""
    raw = RawSession(port)
    try:
        answers = [raw.command(b"EHLO app.test")]
        answers.append(raw.command(b"MAIL FROM:<app@localhost>"))
        answers.append(raw.command(b"RCPT TO:<administrative@localhost>"))
        answers.append(raw.command(b"DATA"))
        raw.send_raw(b"Subject: innocent\r\n\r\nhello" + variant + b"\r\n.\r\n")
        answers.append(raw.reply())
        answers.append(raw.command(b"QUIT"))
        return answers
    finally:
        raw.close()
