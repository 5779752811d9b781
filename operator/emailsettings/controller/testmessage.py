"""Real test messages: the spec's once-per-generation one and on-demand requests.

A claim (an id or generation with no result yet) is written before sending, so a
restart between claim and result reports "outcome unknown" instead of sending twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from emailsettings.api.models import EmailSettingsSpec
from emailsettings.smtp import Endpoint, Login, SMTPDeliveryError, open_session

OUTCOME_UNKNOWN = (
    "Outcome unknown: the operator restarted while sending; not sent again to avoid a duplicate."
)


@dataclass(frozen=True)
class Outcome:
    sent: bool
    message: str

    def record(self, sent_at: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "result": "Sent" if self.sent else "Failed",
            "message": self.message,
        }
        if self.sent:
            entry["sentAt"] = sent_at
        return entry


def claimed_without_result(record: Mapping[str, Any] | None, field: str, value: object) -> bool:
    return record is not None and record.get(field) == value and not record.get("result")


def compose(
    spec: EmailSettingsSpec, recipients: Sequence[str], subject: str, text: str, message_id: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = spec.sender_mailbox.header_value()
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id
    message.set_content(text)
    return message


def generation_message(
    spec: EmailSettingsSpec,
    *,
    namespace: str,
    name: str,
    uid: str,
    generation: int,
    recipients: Sequence[str],
) -> EmailMessage:
    return compose(
        spec,
        recipients,
        f"Test message: email settings {namespace}/{name} verified",
        f"This is a test message from the emailsettings operator.\n\n"
        f"The email settings {namespace}/{name} (generation {generation}) were verified against "
        f"{spec.smtp.host}:{spec.smtp.port}; notifications will be delivered with them.\n",
        f"<{uid}.{generation}.test@emailsettings.io>",
    )


def requested_message(
    spec: EmailSettingsSpec,
    *,
    namespace: str,
    name: str,
    uid: str,
    request_id: str,
    recipients: Sequence[str],
) -> EmailMessage:
    safe_id = "".join(c for c in request_id if c.isalnum() or c in "-.")[:64]
    return compose(
        spec,
        recipients,
        f"Test message: email settings {namespace}/{name}",
        f"This is a test message requested for the email settings {namespace}/{name} "
        f"(request {request_id}).\nIf you can read it, notifications will reach you.\n",
        f"<{uid}.{safe_id}.request@emailsettings.io>",
    )


async def send(
    endpoint: Endpoint,
    login: Login | None,
    sender: str,
    recipients: Sequence[str],
    message: EmailMessage,
) -> Outcome:
    if not recipients:
        return Outcome(sent=False, message="No recipients to send the test message to.")
    try:
        async with open_session(endpoint, login) as session:
            result = await session.send(sender, list(recipients), bytes(message))
    except SMTPDeliveryError as error:
        return Outcome(sent=False, message=str(error)[:1024])
    if not result.accepted:
        return Outcome(sent=False, message="The server refused every recipient.")
    refused = f"; refused: {', '.join(result.rejected)}" if result.rejected else ""
    text = f"Accepted for {', '.join(result.accepted)}{refused}: {result.server_reply}"
    return Outcome(sent=True, message=text[:1024])
