"""On-demand requests carried by annotations: verify now, send a test message.

Annotations, not spec fields: a request never changes `metadata.generation`, so it
is never mistaken for a change of settings. The operator answers each request value
once and records the answer in the status, so a client can wait for exactly it.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from emailsettings.api import GROUP

VERIFY_ANNOTATION = f"{GROUP}/verify-requested-at"
TEST_MESSAGE_ANNOTATION = f"{GROUP}/test-message-request"


def new_request_id() -> str:
    """Unique and sortable: an RFC 3339 time plus a random suffix."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class TestMessageRequest:
    __test__ = False  # not a pytest test class, despite the name

    id: str
    to: tuple[str, ...] = ()
    category: str | None = None

    def encode(self) -> str:
        body: dict[str, object] = {"id": self.id}
        if self.to:
            body["to"] = list(self.to)
        if self.category:
            body["category"] = self.category
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> TestMessageRequest:
        """Raises ValueError with a message naming what is wrong."""
        try:
            body = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{TEST_MESSAGE_ANNOTATION} is not JSON: {error.msg}") from None
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
            raise ValueError(f'{TEST_MESSAGE_ANNOTATION} needs a string "id"')
        to = body.get("to") or []
        category = body.get("category")
        if not isinstance(to, list) or not all(isinstance(a, str) for a in to):
            raise ValueError(f'{TEST_MESSAGE_ANNOTATION}: "to" must be a list of addresses')
        if bool(to) == bool(category):
            raise ValueError(f'{TEST_MESSAGE_ANNOTATION} needs either "to" or "category"')
        if category is not None and category not in {"administrative", "error", "support"}:
            raise ValueError(
                f'{TEST_MESSAGE_ANNOTATION}: "category" must be administrative, error or support'
            )
        return cls(body["id"][:128], tuple(to), category)
