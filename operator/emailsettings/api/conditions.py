"""Condition types and reasons: the one list both the operator and the sidecar use.

Reasons are CamelCase constants (Kubernetes convention). Every failure reason has a
default message a person can act on; the operator adds the specifics (field, host).
"""

from __future__ import annotations

import enum


class ConditionType(enum.StrEnum):
    READY = "Ready"
    VALIDATED = "Validated"
    CREDENTIALS_RESOLVED = "CredentialsResolved"
    SMTP_VERIFIED = "SMTPVerified"
    RECONCILING = "Reconciling"  # kstatus: work under way
    STALLED = "Stalled"  # kstatus: stuck until the user changes something


class Reason(enum.StrEnum):
    # success and neutral
    VERIFIED = "Verified"
    VERIFICATION_SKIPPED = "VerificationSkipped"
    DISABLED = "Disabled"
    VALID = "Valid"
    RESOLVED = "Resolved"
    NO_CREDENTIALS = "NoCredentials"
    PROGRESSING = "Progressing"
    SUCCEEDED = "Succeeded"
    # spec
    INVALID_SPEC = "InvalidSpec"
    INVALID_SENDER = "InvalidSender"
    INVALID_RECIPIENT = "InvalidRecipient"
    # secret
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 - a reason name, not a password
    SECRET_KEY_MISSING = "SecretKeyMissing"  # noqa: S105 - a reason name, not a password
    CA_BUNDLE_NOT_FOUND = "CABundleNotFound"
    # connection
    CONNECTION_REFUSED = "ConnectionRefused"
    CONNECTION_TIMEOUT = "ConnectionTimeout"
    CONNECTION_LOST = "ConnectionLost"
    DNS_LOOKUP_FAILED = "DNSLookupFailed"
    SERVER_UNAVAILABLE = "ServerUnavailable"  # 421 and other transient 4xx
    PROTOCOL_ERROR = "ProtocolError"
    # TLS
    TLS_HANDSHAKE_FAILED = "TLSHandshakeFailed"
    CERTIFICATE_UNTRUSTED = "CertificateUntrusted"
    CERTIFICATE_EXPIRED = "CertificateExpired"
    CERTIFICATE_HOSTNAME_MISMATCH = "CertificateHostnameMismatch"
    STARTTLS_NOT_OFFERED = "StartTLSNotOffered"
    # auth
    AUTHENTICATION_FAILED = "AuthenticationFailed"
    AUTH_REQUIRES_TLS = "AuthRequiresTLS"
    AUTH_NOT_SUPPORTED = "AuthNotSupported"
    # envelope
    SENDER_REJECTED = "SenderRejected"
    RECIPIENT_REJECTED = "RecipientRejected"
    # message (appended: delivery needs them, verification can hit the second)
    MESSAGE_REJECTED = "MessageRejected"  # DATA refused: content, size, 8-bit data
    SMTPUTF8_NOT_OFFERED = "SMTPUTF8NotOffered"  # non-ASCII addresses, server lacks SMTPUTF8


# What a person should do about each failure; the operator prefixes specifics.
ADVICE: dict[Reason, str] = {
    Reason.INVALID_SPEC: "Fix the named field in the EmailSettings spec.",
    Reason.INVALID_SENDER: "Set spec.sender to an address like 'Name <sender@example.com>'.",
    Reason.INVALID_RECIPIENT: "Fix or remove the named recipient address.",
    Reason.SECRET_NOT_FOUND: "Create the Secret named in spec.smtp.passwordSecretRef "
    "in the same namespace.",
    Reason.SECRET_KEY_MISSING: "Add the key named in spec.smtp.passwordSecretRef.key "
    "to the Secret.",
    Reason.CA_BUNDLE_NOT_FOUND: "Create the Secret or ConfigMap named in spec.smtp.tls.caBundleRef "
    "with the named key.",
    Reason.CONNECTION_REFUSED: "Check spec.smtp.host and spec.smtp.port: nothing accepts "
    "connections there.",
    Reason.CONNECTION_TIMEOUT: "Check that the SMTP server is reachable from the cluster "
    "(firewall, NetworkPolicy, port).",
    Reason.CONNECTION_LOST: "The server closed the connection mid-dialogue; check its logs "
    "and limits.",
    Reason.DNS_LOOKUP_FAILED: "Check the spelling of spec.smtp.host and the cluster's DNS.",
    Reason.SERVER_UNAVAILABLE: "The server is temporarily refusing service; it will be retried.",
    Reason.PROTOCOL_ERROR: "The server does not speak SMTP as expected on this port; "
    "check spec.smtp.port and spec.smtp.encryption.",
    Reason.TLS_HANDSHAKE_FAILED: "Check spec.smtp.encryption (TLS for implicit TLS, usually "
    "port 465; STARTTLS usually port 587) and spec.smtp.tls.minVersion.",
    Reason.CERTIFICATE_UNTRUSTED: "Provide the server's CA in spec.smtp.tls.caBundleRef.",
    Reason.CERTIFICATE_EXPIRED: "The server's certificate has expired; renew it on the server.",
    Reason.CERTIFICATE_HOSTNAME_MISMATCH: "Use the host name the certificate was issued for, "
    "or set spec.smtp.tls.serverName.",
    Reason.STARTTLS_NOT_OFFERED: "The server does not offer STARTTLS; use encryption TLS "
    "if it supports implicit TLS, or fix the server. Plaintext is never used silently.",
    Reason.AUTHENTICATION_FAILED: "Check spec.smtp.username and the password in the "
    "referenced Secret.",
    Reason.AUTH_REQUIRES_TLS: "Use encryption STARTTLS or TLS, or set "
    "spec.smtp.allowPlaintextAuth if the network path is trusted.",
    Reason.AUTH_NOT_SUPPORTED: "The server offers no PLAIN or LOGIN authentication; "
    "remove the username or check the server.",
    Reason.SENDER_REJECTED: "The server refused spec.sender; use an address the account "
    "may send as.",
    Reason.RECIPIENT_REJECTED: "The server refused the named recipient; fix or remove it.",
    Reason.MESSAGE_REJECTED: "The server refused the message itself (content, size or "
    "encoding); see the server's reply.",
    Reason.SMTPUTF8_NOT_OFFERED: "An address or header needs SMTPUTF8, which the server does "
    "not offer; use ASCII addresses or a server that supports SMTPUTF8.",
}

# Failures a retry can cure without a spec change; the rest stall.
TRANSIENT: frozenset[Reason] = frozenset(
    {
        Reason.CONNECTION_REFUSED,
        Reason.CONNECTION_TIMEOUT,
        Reason.CONNECTION_LOST,
        Reason.DNS_LOOKUP_FAILED,
        Reason.SERVER_UNAVAILABLE,
        Reason.SECRET_NOT_FOUND,
        Reason.SECRET_KEY_MISSING,
        Reason.CA_BUNDLE_NOT_FOUND,
    }
)
