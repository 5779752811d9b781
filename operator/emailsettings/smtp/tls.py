"""The client TLS context: verified certificates and host names, a minimum version."""

from __future__ import annotations

import functools
import ssl

from emailsettings.smtp.endpoint import TLSSettings

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


class CABundleError(ValueError):
    """The configured CA bundle holds no usable PEM certificate."""


@functools.lru_cache(maxsize=64)
def client_context(settings: TLSSettings) -> ssl.SSLContext:
    """A verifying client context; built once per settings value and shared.

    With a CA bundle only that bundle is trusted (it replaces the system store);
    certificate and host name verification are always on.
    """
    if settings.ca_bundle_pem is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        if "-----BEGIN CERTIFICATE-----" not in settings.ca_bundle_pem:
            raise CABundleError("the CA bundle contains no PEM certificate")
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cadata=settings.ca_bundle_pem
            )
        except (ssl.SSLError, ValueError):
            # The library's text names only the parse failure; keep ours generic.
            raise CABundleError("the CA bundle is not valid PEM") from None
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = _VERSIONS[settings.min_version]
    return context
