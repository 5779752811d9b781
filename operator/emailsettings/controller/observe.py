"""Build the verification inputs (Endpoint, Login, recipients) from a valid spec."""

from __future__ import annotations

from emailsettings.api.models import Category, EmailSettingsSpec
from emailsettings.controller.credentials import Resolved
from emailsettings.smtp import Encryption, Endpoint, TLSSettings


def endpoint_for(spec: EmailSettingsSpec, resolved: Resolved) -> Endpoint:
    smtp = spec.smtp
    tls = smtp.effective_tls
    return Endpoint(
        host=smtp.host,
        port=smtp.port,
        encryption=Encryption(str(smtp.encryption)),
        tls=TLSSettings(
            ca_bundle_pem=resolved.ca_bundle_pem,
            server_name=tls.server_name or None,
            min_version=str(tls.min_version),
        ),
        allow_plaintext_auth=smtp.allow_plaintext_auth,
        helo_name=smtp.helo_name or None,
        timeout_seconds=float(smtp.connect_timeout_seconds),
    )


def all_recipients(spec: EmailSettingsSpec) -> list[str]:
    seen: dict[str, None] = {}
    for category in Category:
        for address in spec.recipients.for_category(category):
            seen.setdefault(address, None)
    return list(seen)
