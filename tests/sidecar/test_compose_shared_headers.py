"""compose() with its shared header registry writes exactly what the stock email policy writes."""

from __future__ import annotations

import datetime as dt
from email import policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emailsettings.sidecar import compose as compose_module
from emailsettings.sidecar.compose import ComposeError, Envelope, compose, message_id
from emailsettings.sidecar.templates import Rendered

ATTACKS = [
    "plain",
    "Grüße aus Köln",
    "hello\r\nBcc: evil@example.net",
    "=?utf-8?q?x=0D=0ABcc:_evil@example.net?=",
    "a " * 60,
    "",
]
TEXT = st.one_of(st.sampled_from(ATTACKS), st.text(max_size=90))


def envelope(name: str, n: int, occurrences: int, category: str) -> Envelope:
    return Envelope(
        sender_address="notifier@example.com",
        sender_name=name,
        recipients=["admin@example.com", "ops@example.com"][: 1 + n % 2],
        message_id=message_id(f"key-{n}", "example.com"),
        category=category,
        event="agent-out-of-date",
        occurrences=occurrences,
        date=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    )


def stock(env: Envelope, rendered: Rendered) -> bytes | str:
    """The same compose() on the email package's own policies (a fresh header per use)."""
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(compose_module, "SMTP_POLICY", policy.SMTP)
        patched.setattr(compose_module, "_READ_POLICY", policy.default)
        return outcome(env, rendered)


def outcome(env: Envelope, rendered: Rendered) -> bytes | str:
    try:
        return compose(env, rendered)
    except ComposeError as error:
        return f"refused: {error}"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=TEXT,
    name=TEXT,
    body=TEXT,
    n=st.integers(0, 3),
    occurrences=st.integers(1, 3),
    category=st.sampled_from(["administrative", "error", "support"]),
)
def test_same_bytes_as_the_stock_policy(
    subject: str,
    name: str,
    body: str,
    n: int,
    occurrences: int,
    category: str,
) -> None:
    env = envelope(name, n, occurrences, category)
    rendered = Rendered(subject, body, f"<p>{body}</p>")
    shared = outcome(env, rendered)
    assert shared == stock(env, rendered)
    # And again, now that its headers are shared: still the same.
    assert outcome(env, rendered) == shared


def test_many_messages_keep_the_shared_set_small() -> None:
    for n in range(400):
        compose(
            envelope("Notifier", n, 1, "error"),
            Rendered(f"subject {n}", f"text {n}", f"<p>html {n}</p>"),
        )
    info = compose_module._HEADERS._shared.cache_info()
    assert info.currsize <= compose_module._HEADERS._SHARED
    assert info.hits > info.misses  # the recurring headers are found again
