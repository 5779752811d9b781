"""Shared bits for the SMTP layer tests: the test CA as PEM text, credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emailsettings.devstack.pki import KeyPair, LocalCA
from emailsettings.devstack.smtp_server import Credentials, Security, SMTPServer
from emailsettings.smtp import Encryption, Endpoint, Login, TLSSettings

USER = Credentials("mailer", "fixture-password")


@pytest.fixture(scope="session")
def login() -> Login:
    """The login the fixture servers accept."""
    return Login(USER.username, USER.password)


@pytest.fixture(scope="session")
def ca_pem(local_ca: LocalCA) -> str:
    return local_ca.ca_pem.decode()


@pytest.fixture(scope="session")
def trusted(ca_pem: str) -> TLSSettings:
    """TLS settings that trust the test CA (and only it)."""
    return TLSSettings(ca_bundle_pem=ca_pem)


@pytest.fixture
def starttls_server(server_cert: KeyPair) -> Iterator[SMTPServer]:
    with SMTPServer(Security.STARTTLS, cert=server_cert, credentials=USER) as server:
        yield server


@pytest.fixture
def starttls_endpoint(starttls_server: SMTPServer, trusted: TLSSettings) -> Endpoint:
    return Endpoint(
        "localhost", starttls_server.port, Encryption.STARTTLS, trusted, timeout_seconds=5
    )
