"""A scripted, misbehaving SMTP server for fault tests.

Each behaviour is one a real client meets in the wild: a server that never
greets, drops the line, hides STARTTLS, answers an error code at a chosen step,
or smuggles a response after its STARTTLS reply (the buffered-response
injection of the "NO STARTTLS" study).
"""

from __future__ import annotations

import asyncio
import base64
import enum
import ssl
import threading
from dataclasses import dataclass, field
from typing import Self

from emailsettings.devstack.capture import Mailbox, ReceivedMessage
from emailsettings.devstack.netutil import free_port
from emailsettings.devstack.pki import KeyPair


class Fault(enum.StrEnum):
    NONE = "none"
    NEVER_GREET = "never-greet"
    DROP_AFTER = "drop-after"  # close the connection when `step` arrives
    NO_STARTTLS = "no-starttls"  # EHLO without STARTTLS
    REPLY_AT = "reply-at"  # answer `reply` at `step` instead of the normal reply
    STARTTLS_INJECTION = "starttls-injection"


@dataclass
class FaultySMTPServer:
    fault: Fault
    cert: KeyPair | None = None
    step: str = ""  # GREETING, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA
    reply: str = ""
    username: str = "user"
    password: str = "secret"  # noqa: S105 - a test server's fixed credential
    port: int = field(default_factory=free_port)
    mailbox: Mailbox = field(default_factory=Mailbox)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Self:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._session, "127.0.0.1", self.port)
            )
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"faulty-smtp-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("faulty SMTP server did not start")
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def shutdown() -> None:
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _override(self, step: str) -> str | None:
        if self.fault is Fault.REPLY_AT and self.step == step:
            return self.reply
        return None

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._dialogue(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _dialogue(  # noqa: C901, PLR0912, PLR0915 - a protocol state machine reads best flat
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self.fault is Fault.NEVER_GREET:
            await reader.read()  # hold the connection open, silent, until the client gives up
            return
        if not await self._send(writer, self._override("GREETING") or "220 faulty ESMTP ready"):
            return
        tls = False
        mail_from = ""
        rcpts: list[str] = []
        authed: str | None = None
        while True:
            line = await reader.readline()
            if not line:
                return
            command = line.decode(errors="replace").strip()
            verb = command.split(" ", 1)[0].upper()
            step = {"HELO": "EHLO"}.get(verb, verb)
            if self.fault is Fault.DROP_AFTER and self.step == step:
                writer.transport.abort()
                return
            override = self._override(step)
            if override is not None:
                await self._send(writer, override)
                if override.startswith("421"):
                    return
                continue
            if verb in {"EHLO", "HELO"}:
                caps = ["250-faulty.local", "250-AUTH PLAIN LOGIN", "250-8BITMIME"]
                if not tls and self.fault is not Fault.NO_STARTTLS and self.cert is not None:
                    caps.append("250-STARTTLS")
                caps.append("250 SIZE 10240000")
                await self._send(writer, "\r\n".join(caps))
            elif verb == "STARTTLS":
                if self.cert is None or self.fault is Fault.NO_STARTTLS:
                    await self._send(writer, "502 5.5.1 STARTTLS not available")
                    continue
                ready = "220 2.0.0 Ready to start TLS"
                if self.fault is Fault.STARTTLS_INJECTION:
                    # The injected reply rides in the same packet as the 220.
                    ready += "\r\n250-injected.example\r\n250 AUTH PLAIN LOGIN"
                await self._send(writer, ready)
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(str(self.cert.cert), str(self.cert.key))
                await writer.start_tls(context)
                tls = True
            elif verb == "AUTH":
                authed = await self._auth(command, reader, writer)
            elif verb == "MAIL":
                mail_from, rcpts = command[10:].strip("<> "), []
                await self._send(writer, "250 2.1.0 OK")
            elif verb == "RCPT":
                rcpts.append(command[8:].strip("<> "))
                await self._send(writer, "250 2.1.5 OK")
            elif verb == "DATA":
                await self._send(writer, "354 End data with <CR><LF>.<CR><LF>")
                data = await reader.readuntil(b"\r\n.\r\n")
                self.mailbox.add(ReceivedMessage(mail_from, tuple(rcpts), data[:-5], tls, authed))
                await self._send(writer, "250 2.0.0 queued")
            elif verb == "RSET":
                mail_from, rcpts = "", []
                await self._send(writer, "250 2.0.0 OK")
            elif verb == "NOOP":
                await self._send(writer, "250 2.0.0 OK")
            elif verb == "QUIT":
                await self._send(writer, "221 2.0.0 Bye")
                return
            else:
                await self._send(writer, "502 5.5.2 Command not recognized")

    async def _auth(
        self, command: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> str | None:
        parts = command.split()
        mechanism = parts[1].upper() if len(parts) > 1 else ""
        if mechanism == "PLAIN":
            blob = parts[2] if len(parts) > 2 else ""
            if not blob:
                await self._send(writer, "334 ")
                blob = (await reader.readline()).decode().strip()
            _, user, password = base64.b64decode(blob).decode().split("\0")
        elif mechanism == "LOGIN":
            await self._send(writer, "334 VXNlcm5hbWU6")
            user = base64.b64decode((await reader.readline()).strip()).decode()
            await self._send(writer, "334 UGFzc3dvcmQ6")
            password = base64.b64decode((await reader.readline()).strip()).decode()
        else:
            await self._send(writer, "504 5.5.4 Unrecognized authentication type")
            return None
        if user == self.username and password == self.password:
            self.mailbox.count_login()
            await self._send(writer, "235 2.7.0 Authentication successful")
            return user
        await self._send(writer, "535 5.7.8 Authentication credentials invalid")
        return None

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, text: str) -> bool:
        writer.write(text.encode() + b"\r\n")
        await writer.drain()
        return True
