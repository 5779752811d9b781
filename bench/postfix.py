"""Postfix's test tools and a private Postfix instance, for the SMTP floors and peers.

    .venv/bin/python -m bench.postfix        # self-check: source -> postfix relay -> sink

- `Sink`: `smtp-sink` on 127.0.0.1, a fast SMTP server that throws mail away and
  counts it (`-c`); the counter is read from its output.
- `smtp_source(...)`: `smtp-source` sending a bounded number of messages.
- `PrivatePostfix`: a Postfix of its own (config, queue and data directories under a
  temporary directory, `postfix -c DIR`), listening on one loopback port, relaying
  everything to `[127.0.0.1]:SINKPORT`, with no DNS, no local delivery and nothing
  shared with the machine's default instance (which is never started, stopped or
  read). Starting it needs root, as Postfix's master does.

Benchmarks install nothing: when a tool is missing they say how to install it
(`hack/install-system-packages.sh`, Debian's `postfix` package).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from emailsettings.devstack.netutil import free_port, wait_until

SBIN = Path("/usr/sbin")
INSTALL_HINT = (
    "install Postfix and its test tools first: sudo bash hack/install-system-packages.sh "
    "(Debian/Ubuntu: apt-get install -y --no-install-recommends postfix)"
)
_COUNTER = re.compile(rb"mesg=(\d+)")


class ToolMissingError(RuntimeError):
    pass


def tool(name: str) -> Path:
    """The path of a Postfix program, or ToolMissingError saying how to install it."""
    for candidate in (SBIN / name, Path("/usr/lib/postfix/sbin") / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ToolMissingError(f"{name} not found; {INSTALL_HINT}")


def _drop_privileges() -> list[str]:
    # smtp-sink refuses to run as root without -u; "nobody" owns nothing it needs.
    return ["-u", "nobody"] if os.geteuid() == 0 else []


@dataclass
class Sink:
    """`smtp-sink` on 127.0.0.1: takes every message, keeps none, counts them."""

    port: int = field(default_factory=free_port)
    backlog: int = 1024
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _reader: threading.Thread | None = field(default=None, init=False)
    _count: int = field(default=0, init=False)
    _changed: threading.Condition = field(default_factory=threading.Condition, init=False)

    @property
    def messages(self) -> int:
        """Messages received so far (each '.' the sink answered)."""
        return self._count

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> Self:
        command = [
            str(tool("smtp-sink")),
            "-c",  # print counters after each message
            *_drop_privileges(),
            f"127.0.0.1:{self.port}",
            str(self.backlog),
        ]
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self._reader = threading.Thread(target=self._read, name="smtp-sink-counter", daemon=True)
        self._reader.start()
        wait_until(self._listening, timeout=10, what="smtp-sink listening")
        return self

    def _listening(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise RuntimeError(f"smtp-sink exited with {self._process.returncode}")
        with contextlib.suppress(OSError), smtplib.SMTP("127.0.0.1", self.port, timeout=2) as probe:
            probe.noop()
            return True
        return False

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        pending = b""
        while chunk := os.read(stream.fileno(), 65536):
            pending += chunk
            # Counter lines end in CR; keep the last (maybe partial) piece.
            *complete, pending = re.split(rb"[\r\n]", pending)
            for line in reversed(complete):
                match = _COUNTER.search(line)
                if match:
                    with self._changed:
                        self._count = int(match.group(1))
                        self._changed.notify_all()
                    break

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until the sink has received `count` messages; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._count < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
        return True

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        if self._reader is not None:
            self._reader.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass(frozen=True)
class SourceRun:
    messages: int
    sessions: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def smtp_source(
    port: int,
    *,
    messages: int,
    sessions: int,
    message_file: Path,
    sender: str = "bench@example.com",
    recipient: str = "admin@example.com",
    reuse: bool = True,
    timeout: float = 600,
) -> SourceRun:
    """Send `messages` copies of message_file to 127.0.0.1:port over `sessions` sessions.

    smtp-source exits non-zero when the server refuses anything, so a returned
    run means every message got its 250.
    """
    command = [
        str(tool("smtp-source")),
        "-s",
        str(sessions),
        "-m",
        str(messages),
        "-f",
        sender,
        "-t",
        recipient,
        "-F",
        str(message_file),
        "-M",
        "bench.localdomain",
        *(["-d"] if reuse else []),
        f"127.0.0.1:{port}",
    ]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(
            f"smtp-source failed ({result.returncode}): "
            f"{(result.stdout + result.stderr).decode(errors='replace')[-2000:]}"
        )
    return SourceRun(messages, sessions, seconds)


_MAIN_CF = """\
# A private Postfix for benchmarks: loopback only, relays everything to the sink.
compatibility_level = 3.6
config_directory = {root}/etc
queue_directory = {root}/queue
data_directory = {root}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is disabled in this instance
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{sink_port}
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtputf8_enable = no
biff = no
notify_classes =
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
"""

# chroot "n" everywhere: nothing to copy into a jail. Only what an SMTP relay needs.
_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@dataclass
class PrivatePostfix:
    """A Postfix instance of our own, relaying 127.0.0.1:port to the sink."""

    sink_port: int
    port: int = field(default_factory=free_port)
    root: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="emailsettings-postfix-"))
    )
    keep: bool = False
    _master_pid: int | None = field(default=None, init=False)

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def maillog(self) -> Path:
        return self.root / "maillog"

    def _postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # Only ever with -c: the default instance is never addressed.
        return subprocess.run(
            [str(tool("postfix")), "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def start(self) -> Self:
        tool("postfix")
        if os.geteuid() != 0:
            raise ToolMissingError("the Postfix peer needs root (Postfix's master runs as root)")
        self.root.chmod(0o755)  # the postfix user reaches its data directory through it
        self.config_dir.mkdir(exist_ok=True)
        (self.config_dir / "main.cf").write_text(
            _MAIN_CF.format(root=self.root, sink_port=self.sink_port)
        )
        (self.config_dir / "master.cf").write_text(_MASTER_CF.format(port=self.port))
        (self.root / "queue").mkdir(mode=0o755, exist_ok=True)  # root-owned, as Postfix wants
        try:
            # "check" creates the queue and data directories with Postfix's own owners and
            # modes; "start" waits until the master reports that it runs.
            self._postfix("check")
            self._postfix("start")
        except subprocess.CalledProcessError as error:
            self.stop()
            raise RuntimeError(
                f"private postfix did not start: {error.stdout}{error.stderr}\n{self.log_tail()}"
            ) from None
        self._master_pid = self._read_master_pid()
        wait_until(self._listening, timeout=30, what="postfix smtpd", on_timeout=self.log_tail)
        return self

    def _read_master_pid(self) -> int | None:
        pid_file = self.root / "queue" / "pid" / "master.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(pid_file.read_text().strip())
        return None

    def _listening(self) -> bool:
        with contextlib.suppress(OSError), smtplib.SMTP("127.0.0.1", self.port, timeout=2) as probe:
            return probe.noop()[0] == 250
        return False

    def queue_size(self) -> int:
        """Messages still in the queue (incoming, active, deferred), by their files."""
        total = 0
        for name in ("maildrop", "incoming", "active", "deferred", "hold"):
            directory = self.root / "queue" / name
            if directory.is_dir():
                total += sum(1 for p in directory.rglob("*") if p.is_file())
        return total

    def log_tail(self, lines: int = 30) -> str:
        if not self.maillog.exists():
            return "(no postfix log)"
        return "postfix log tail:\n" + "\n".join(
            self.maillog.read_text(errors="replace").splitlines()[-lines:]
        )

    def stop(self) -> None:
        if (self.config_dir / "main.cf").exists():
            self._postfix("stop", check=False)
        pid = self._master_pid
        if pid is not None:
            # "postfix stop" signals the master; wait for it, then end it ourselves.
            deadline = time.monotonic() + 20
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                self._postfix("abort", check=False)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._master_pid = None
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our child that nobody reaped) counts as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return False


def self_check(messages: int = 200) -> None:
    """Source -> private Postfix -> sink: everything accepted arrives."""
    with tempfile.TemporaryDirectory() as scratch, Sink() as sink:
        message = Path(scratch) / "message.eml"
        message.write_text("Subject: self-check\n\nhello\n")
        direct = smtp_source(sink.port, messages=messages, sessions=4, message_file=message)
        assert sink.wait_for(messages, 30), sink.messages
        with PrivatePostfix(sink.port) as postfix:
            relayed = smtp_source(postfix.port, messages=messages, sessions=4, message_file=message)
            arrived = sink.wait_for(2 * messages, 60)
            queued = postfix.queue_size()
        print(f"smtp-source -> smtp-sink: {direct.rate:.0f} msg/s")
        print(f"smtp-source -> postfix:   {relayed.rate:.0f} msg/s accepted")
        print(f"sink received {sink.messages} (want {2 * messages}); postfix queue left {queued}")
        if not arrived:
            raise SystemExit("not everything relayed by postfix arrived at the sink")


if __name__ == "__main__":
    self_check()
