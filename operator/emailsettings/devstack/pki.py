"""A throwaway certificate authority for the local stack and the tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


class LocalCA:
    """Mints server and client certificates signed by one per-run CA."""

    def __init__(self, directory: Path, name: str = "emailsettings-devstack") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA(organization_name=name)
        self.ca_cert = directory / "ca.crt"
        self._ca.cert_pem.write_to_path(str(self.ca_cert))

    @property
    def ca_pem(self) -> bytes:
        return self._ca.cert_pem.bytes()

    def issue(
        self,
        name: str,
        *identities: str,
        common_name: str | None = None,
        organization: str | None = None,
        expired: bool = False,
    ) -> KeyPair:
        now = dt.datetime.now(dt.UTC)
        not_before = now - dt.timedelta(days=10) if expired else None
        not_after = now - dt.timedelta(days=1) if expired else None
        leaf = self._ca.issue_cert(
            *identities,
            common_name=common_name,
            organization_name=organization,
            not_before=not_before,
            not_after=not_after,
        )
        pair = KeyPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        pair.cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(pair.key))
        pair.key.chmod(0o600)
        return pair


def write_rsa_signing_key(directory: Path, name: str) -> KeyPair:
    """An RSA key pair for service-account token signing (public half in `.cert`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pair = KeyPair(directory / f"{name}.pub", directory / f"{name}.key")
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pair.key.chmod(0o600)
    pair.cert.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pair
