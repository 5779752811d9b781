"""The optional real test message: once per verified generation, never twice.

A claim (generation set, no result yet) is written before sending, so a restart
between the claim and the result reports "outcome unknown" instead of sending again.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from emailsettings.api.models import Category, EmailSettingsSpec
from emailsettings.smtp import Endpoint, Login, SMTPDeliveryError, open_session


def claim(generation: int) -> dict[str, Any]:
    return {"generation": generation, "message": "Sending the test message."}


def is_claimed_without_result(record: dict[str, Any] | None, generation: int) -> bool:
    return (
        record is not None and record.get("generation") == generation and not record.get("result")
    )


def compose(
    spec: EmailSettingsSpec, namespace: str, name: str, uid: str, generation: int
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = spec.sender
    message["To"] = ", ".join(spec.recipients.for_category(Category.ADMINISTRATIVE))
    message["Subject"] = f"Test message: email settings {namespace}/{name} verified"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{uid}.{generation}.test@emailsettings.io>"
    message.set_content(
        f"This is a test message from the emailsettings operator.\n\n"
        f"The email settings {namespace}/{name} (generation {generation}) were verified "
        f"against {spec.smtp.host}:{spec.smtp.port}; notifications will be delivered with them.\n"
    )
    return message


async def send(  # noqa: PLR0917 - each input is distinct and named at the call
    endpoint: Endpoint,
    login: Login | None,
    spec: EmailSettingsSpec,
    message: EmailMessage,
    generation: int,
    sent_at: str,
) -> dict[str, Any]:
    recipients = spec.recipients.for_category(Category.ADMINISTRATIVE)
    if not recipients:
        return {
            "generation": generation,
            "result": "Failed",
            "message": "No administrative recipients to send the test message to.",
        }
    try:
        async with open_session(endpoint, login) as session:
            result = await session.send(spec.sender_address, recipients, bytes(message))
    except SMTPDeliveryError as error:
        return {"generation": generation, "result": "Failed", "message": str(error)[:1024]}
    if not result.accepted:
        return {
            "generation": generation,
            "result": "Failed",
            "message": "All recipients were refused.",
        }
    refused = f"; refused: {', '.join(result.rejected)}" if result.rejected else ""
    return {
        "generation": generation,
        "result": "Sent",
        "sentAt": sent_at,
        "message": f"Accepted by the server for {', '.join(result.accepted)}{refused}: "
        f"{result.server_reply}"[:1024],
    }
