"""The one SMTP connection layer: the operator's verify() and the sidecar's sessions.

Same encryption modes, TLS context, auth rules and failure classification on both
sides. Imports no kopf and nothing from the controller or the sidecar.
"""

from emailsettings.smtp.client import SMTPConnection
from emailsettings.smtp.endpoint import Encryption, Endpoint, Login, TLSSettings
from emailsettings.smtp.errors import SMTPDeliveryError, SMTPFailure
from emailsettings.smtp.session import DeliverySession, SendResult, open_session
from emailsettings.smtp.verify import VerifyResult, verify

__all__ = [
    "DeliverySession",
    "Encryption",
    "Endpoint",
    "Login",
    "SMTPConnection",
    "SMTPDeliveryError",
    "SMTPFailure",
    "SendResult",
    "TLSSettings",
    "VerifyResult",
    "open_session",
    "verify",
]
