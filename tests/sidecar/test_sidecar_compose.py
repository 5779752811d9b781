"""MIME composition and templates: structure, escaping, and no header injection ever."""

from __future__ import annotations

import base64
import datetime as dt
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emailsettings.sidecar.compose import (
    BASE_HEADERS,
    ComposeError,
    Envelope,
    compose,
    header_text,
    message_id,
)
from emailsettings.sidecar.templates import EVENTS, RenderContext, Rendered, Renderer

INJECTED_CRLF = "=?utf-8?b?" + base64.b64encode(b"x\r\nBcc: evil@example.net").decode() + "?="
ATTACKS = [
    "hello\r\nBcc: evil@example.net",
    "hello\nBcc: evil@example.net",
    "hello\rBcc: evil@example.net",
    "hello\x00Bcc: evil@example.net",
    "hello\u2028Bcc: evil@example.net",
    "hello\x85Bcc: evil@example.net",
    INJECTED_CRLF,
    "=?utf-8?q?x=0D=0ABcc:_evil@example.net?=",
    "a =?iso-8859-1?q?=0A?= b",
    "\r\n\r\nbody smuggled",
    "Subject: twice",
]


def parse(data: bytes) -> EmailMessage:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def envelope(**overrides: object) -> Envelope:
    values: dict[str, object] = {
        "sender_address": "notifier@example.com",
        "sender_name": "Notifier",
        "recipients": ["admin@example.com"],
        "message_id": message_id("key-1", "example.com"),
        "category": "administrative",
        "event": "agent-out-of-date",
    }
    values.update(overrides)
    return Envelope(**values)  # type: ignore[arg-type]


def headers(data: bytes) -> EmailMessage:
    message = BytesHeaderParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def header_names(data: bytes) -> list[str]:
    return sorted(key.lower() for key in headers(data))


EXPECTED = sorted(h.lower() for h in BASE_HEADERS)


def test_structure_and_headers() -> None:
    rendered = Rendered("Grüße <from> the agent", "plain ü\n", "<p>html ü</p>")
    date = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    data = compose(envelope(date=date, recipients=["a@example.com", "b@example.com"]), rendered)
    message = parse(data)
    assert header_names(data) == EXPECTED
    assert str(message["Subject"]) == "Grüße <from> the agent"
    assert str(message["From"]) == "Notifier <notifier@example.com>"
    assert str(message["To"]) == "a@example.com, b@example.com"
    assert str(message["Date"]) == "Thu, 02 Jan 2025 03:04:05 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().replace("\r\n", "\n") == "plain ü\n"
    assert html.get_content().replace("\r\n", "\n") == "<p>html ü</p>\n"
    assert data.isascii()  # 7-bit clean: UTF-8 only in encoded words and quoted-printable
    assert b"\r\n" in data
    # The same inputs give the same bytes: a retry is recognizably the same message.
    assert compose(
        envelope(date=date, recipients=["a@example.com", "b@example.com"]), rendered
    ) == (data)


@pytest.mark.parametrize("attack", ATTACKS)
def test_injection_in_subject_and_display_name_is_neutralized(attack: str) -> None:
    data = compose(
        envelope(sender_name=attack),
        Rendered(f"before {attack} after", "text", "<p>html</p>"),
    )
    assert header_names(data) == EXPECTED
    message = parse(data)
    assert "bcc" not in {k.lower() for k in message}
    subject = str(message["Subject"])
    assert "\n" not in subject
    assert "\r" not in subject
    assert "\x00" not in subject
    assert subject == header_text(f"before {attack} after")
    from_header = message["From"]
    assert from_header.addresses[0].addr_spec == "notifier@example.com"


@pytest.mark.parametrize(
    "address",
    ["a@example.com\r\nBcc: e@example.net", "a@example.com, e@example.net", "<a@example.com>"],
)
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(ComposeError):
        compose(envelope(recipients=[address]), Rendered("s", "t", "h"))
    with pytest.raises(ComposeError):
        compose(envelope(sender_address=address), Rendered("s", "t", "h"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=st.text(max_size=120), name=st.text(max_size=60), body=st.text(max_size=200))
def test_no_text_ever_adds_a_header(subject: str, name: str, body: str) -> None:
    data = compose(envelope(sender_name=name), Rendered(subject, body, f"<p>{body}</p>"))
    message = headers(data)
    assert sorted(key.lower() for key in message) == EXPECTED
    expected_subject = header_text(subject) or "(no subject)"
    assert "".join(str(message["Subject"]).split()) == "".join(expected_subject.split())
    shown = message["From"].addresses[0].display_name
    assert "".join(shown.split()) == "".join(header_text(name, limit=200).split())


def test_message_id_is_stable_and_shaped() -> None:
    one = message_id("order-42", "Example.COM")
    assert one == message_id("order-42", "example.com")
    assert one != message_id("order-43", "example.com")
    assert one.startswith("<")
    assert one.endswith("@example.com>")
    assert message_id("k", "bad domain\r\n").endswith("@localhost>")


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_every_catalog_event_renders(event: str) -> None:
    spec = EVENTS[event]
    fields = {fact.name: f"<{fact.name} & co>" for fact in spec.facts}
    rendered = Renderer().render(RenderContext(spec.category, event, fields))
    assert rendered.subject
    assert "\n" not in rendered.subject.strip()
    assert spec.title in rendered.text
    for fact in spec.required:
        assert f"<{fact.name} & co>" in rendered.text
        assert f"&lt;{fact.name} &amp; co&gt;" in rendered.html  # autoescaped
        assert f"<{fact.name} & co>" not in rendered.html
    data = compose(envelope(category=spec.category, event=event), rendered)
    assert header_names(data) == EXPECTED


def test_html_escapes_everything_and_drops_unsafe_links() -> None:
    rendered = Renderer().render(
        RenderContext(
            "support",
            "access-granted",
            {"user": "<script>alert(1)</script>", "link": "javascript:alert(1)"},
            body='<img src=x onerror="alert(1)">',
        )
    )
    assert "<script>" not in rendered.html
    assert "<img" not in rendered.html
    assert "javascript:" not in rendered.html
    ok = Renderer().render(
        RenderContext("support", "access-granted", {"user": "u", "link": "https://app.example/x"})
    )
    assert '<a href="https://app.example/x">' in ok.html


def test_storm_count_shows_in_subject_and_bodies() -> None:
    rendered = Renderer().render(
        RenderContext(
            "administrative",
            "agent-out-of-date",
            {"agentName": "a1"},
            occurrences=7,
            first_at=0.0,
            last_at=60.0,
        )
    )
    assert rendered.subject == "[7x] Agent out of date: a1"
    assert "occurred 7 times between 1970-01-01 00:00:00 UTC and 1970-01-01 00:01:00 UTC" in (
        rendered.text
    )
    assert "<strong>7 times</strong>" in rendered.html


def test_overrides_win_and_broken_overrides_fall_back(tmp_path: Path) -> None:
    (tmp_path / "agent-out-of-date.subject.j2").write_text("Custom: {{ fields.agentName }}")
    (tmp_path / "agent-out-of-date.html.j2").write_text("<b>{{ fields.agentName }}</b>")
    (tmp_path / "agent-out-of-date.txt.j2").write_text("{% broken syntax")
    (tmp_path / "deploy-finished.subject.j2").write_text("Deployed {{ fields.version }}")
    renderer = Renderer(tmp_path)
    rendered = renderer.render(
        RenderContext("administrative", "agent-out-of-date", {"agentName": "<a1>"})
    )
    assert rendered.subject == "Custom: <a1>"
    assert rendered.html == "<b>&lt;a1&gt;</b>"  # overrides are autoescaped too
    assert "The scan agent <a1> is out of date" in rendered.text  # built-in fallback
    assert renderer.has_template("deploy-finished", "subject")
    custom = renderer.render(RenderContext("support", "deploy-finished", {"version": "2.1"}))
    assert custom.subject == "Deployed 2.1"
    assert "version: 2.1" in custom.text


def test_overrides_cannot_escape_the_sandbox(tmp_path: Path) -> None:
    (tmp_path / "agent-out-of-date.subject.j2").write_text(
        "{{ fields.__class__.__mro__[1].__subclasses__() }}"
    )
    rendered = Renderer(tmp_path).render(
        RenderContext("administrative", "agent-out-of-date", {"agentName": "a1"})
    )
    assert rendered.subject == "Agent out of date: a1"  # the sandbox refused; built-in used
