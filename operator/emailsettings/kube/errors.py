"""API errors, carrying the server's Status reason and message."""

from __future__ import annotations

from typing import Any


class ApiError(RuntimeError):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @classmethod
    def from_response(cls, status: int, body: Any) -> ApiError:
        reason = body.get("reason", "") if isinstance(body, dict) else ""
        message = body.get("message", "") if isinstance(body, dict) else str(body)[:300]
        kind = {404: NotFoundError, 409: ConflictError, 410: GoneError}.get(status, ApiError)
        return kind(status, reason, message)


class NotFoundError(ApiError):
    pass


class ConflictError(ApiError):
    pass


class GoneError(ApiError):
    """A watch's resourceVersion is too old: list again."""
