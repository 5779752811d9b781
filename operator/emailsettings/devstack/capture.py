"""Thread-safe capture of what an SMTP test server received."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    auth_user: str | None

    def parsed(self) -> EmailMessage:
        message = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message


class Mailbox:
    """Messages in arrival order; waiters block on a condition, never a sleep."""

    def __init__(self) -> None:
        self._messages: list[ReceivedMessage] = []
        self._logins = 0
        self._cond = threading.Condition()

    def add(self, message: ReceivedMessage) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def count_login(self) -> None:
        with self._cond:
            self._logins += 1
            self._cond.notify_all()

    @property
    def logins(self) -> int:
        with self._cond:
            return self._logins

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._cond:
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
            self._logins = 0

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedMessage]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout=timeout):
                raise TimeoutError(
                    f"expected {count} message(s) within {timeout}s, got {len(self._messages)}"
                )
            return list(self._messages)
