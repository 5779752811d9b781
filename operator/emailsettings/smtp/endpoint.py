"""Where and how to reach an SMTP server, and with which login.

These are plain frozen values: the operator builds them from an EmailSettings spec
(plus the resolved Secret), the sidecar from the settings it follows.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass, field

TLS_VERSIONS: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
AUTH_MECHANISMS: tuple[str, ...] = ("PLAIN", "LOGIN")

# Keys the credential part of Endpoint.key(): a per-process secret, so the key
# can be logged or compared freely without offering an offline guessing target.
_KEY_SECRET = secrets.token_bytes(32)


class Encryption(enum.StrEnum):
    NONE = "None"  # plaintext
    STARTTLS = "STARTTLS"  # mandatory upgrade; never falls back to plaintext
    TLS = "TLS"  # implicit TLS from the first byte, usually port 465


def _check_token(value: str, what: str) -> None:
    if not value or any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError(f"{what} must be non-empty, without whitespace or control characters")


@dataclass(frozen=True)
class TLSSettings:
    # PEM text of the CA certificate(s) to trust instead of the system store.
    ca_bundle_pem: str | None = field(default=None, repr=False)
    # Name to send as SNI and to check the certificate against, instead of the host.
    server_name: str | None = None
    min_version: str = "TLSv1.2"

    def __post_init__(self) -> None:
        if self.min_version not in TLS_VERSIONS:
            raise ValueError(f"min_version must be one of {', '.join(TLS_VERSIONS)}")
        if self.server_name == "":
            object.__setattr__(self, "server_name", None)
        if self.server_name is not None:
            _check_token(self.server_name, "server_name")


@dataclass(frozen=True, repr=False)
class Login:
    username: str
    password: str

    def __post_init__(self) -> None:
        if not self.username:
            raise ValueError("username must not be empty")

    def __repr__(self) -> str:
        return f"Login(username={self.username!r}, password=<redacted>)"

    __str__ = __repr__


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    encryption: Encryption
    tls: TLSSettings = field(default_factory=TLSSettings)
    # AUTH over an unencrypted connection is refused unless this is set.
    allow_plaintext_auth: bool = False
    # EHLO name; None picks a sane local name (FQDN hostname, else an address literal).
    helo_name: str | None = None
    timeout_seconds: float = 10.0
    # AUTH mechanisms we may use, in order of preference, among those the server offers.
    auth_mechanisms: tuple[str, ...] = AUTH_MECHANISMS

    def __post_init__(self) -> None:
        _check_token(self.host, "host")
        if not 1 <= self.port <= 65535:
            raise ValueError("port must be between 1 and 65535")
        object.__setattr__(self, "encryption", Encryption(self.encryption))
        if self.helo_name == "":
            object.__setattr__(self, "helo_name", None)
        if self.helo_name is not None:
            _check_token(self.helo_name, "helo_name")
        if not self.timeout_seconds > 0:
            raise ValueError("timeout_seconds must be positive")
        mechanisms = tuple(mechanism.upper() for mechanism in self.auth_mechanisms)
        if not mechanisms or not set(mechanisms) <= set(AUTH_MECHANISMS):
            raise ValueError(f"auth_mechanisms must be a non-empty subset of {AUTH_MECHANISMS}")
        object.__setattr__(self, "auth_mechanisms", mechanisms)

    @functools.cached_property
    def address(self) -> str:
        """host:port as people write it (IPv6 literals in brackets); computed once, since
        every SMTP log line names it."""
        try:
            is_v6 = ipaddress.ip_address(self.host).version == 6
        except ValueError:
            is_v6 = False
        return f"[{self.host}]:{self.port}" if is_v6 else f"{self.host}:{self.port}"

    @property
    def sni_name(self) -> str:
        """The name the TLS certificate is checked against (and sent as SNI)."""
        return self.tls.server_name or self.host

    def key(self, login: Login | None = None) -> str:
        """A key equal for equal endpoint + credentials, to share verifications.

        Everything that can change a verification's outcome is in it (the timeout is
        not). The credentials enter only as a keyed hash; the key is stable for the
        lifetime of the process, not across processes, so do not persist it.
        """
        material = json.dumps(
            [
                self.host.lower(),
                self.port,
                str(self.encryption),
                self.tls.ca_bundle_pem,
                self.tls.server_name,
                self.tls.min_version,
                self.allow_plaintext_auth,
                self.helo_name,
                list(self.auth_mechanisms),
            ]
        ).encode()
        digest = hashlib.sha256(material)
        if login is not None:
            credential = hmac.new(
                _KEY_SECRET,
                login.username.encode() + b"\0" + login.password.encode(),
                hashlib.sha256,
            )
            digest.update(credential.digest())
        else:
            digest.update(b"\0anonymous")
        return f"{self.encryption}://{self.address.lower()}#{digest.hexdigest()[:32]}"
