"""The SMTP intake's quick path for MAIL FROM / RCPT TO addresses agrees with aiosmtpd's."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from emailsettings.sidecar.smtp_intake import IntakeSMTP

PIECES = st.text(
    alphabet="abcXYZ019.-+_=!#$%&'*/?^`{|}~\"()[]\\ \t,;:<>@é",
    max_size=12,
)
TAILS = st.text(alphabet=" \t()SIZE=10BODY8BITMIMEx", max_size=12)


def outcome(parse: Callable[[str], object], arg: str) -> object:
    # The email package's parser raises (IndexError, AttributeError...) on some odd
    # input; the quick path must then hand over and fail the same way.
    try:
        return parse(arg)
    except Exception as error:  # noqa: BLE001 - compared, not handled
        return type(error)


def parsers(limit: int) -> IntakeSMTP:
    # Only the parser is exercised: no connection, no intake behind it.
    smtp = IntakeSMTP.__new__(IntakeSMTP)
    smtp.local_part_limit = limit
    return smtp


@pytest.mark.parametrize("limit", [0, 64])
@given(local=PIECES, domain=PIECES, tail=TAILS)
@example(local="a", domain="b.c", tail="")
@example(local="a.b", domain="example.com", tail=" SIZE=2280 BODY=8BITMIME")
@example(local="a", domain="b", tail="  (comment) SIZE=1")
@example(local="a", domain="b", tail="x")
@example(local="a", domain="b", tail="   ")
@example(local="a..b", domain="c", tail="")
@example(local="x" * 70, domain="c", tail="")
@settings(max_examples=400, deadline=None)
def test_same_address_and_parameters_as_aiosmtpd(
    limit: int, local: str, domain: str, tail: str
) -> None:
    smtp = parsers(limit)
    arg = f"<{local}@{domain}>{tail}"
    assert outcome(smtp._getaddr, arg) == outcome(lambda a: SMTP._getaddr(smtp, a), arg)


@given(arg=st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_any_argument_same_as_aiosmtpd(arg: str) -> None:
    smtp = parsers(64)
    assert outcome(smtp._getaddr, arg) == outcome(lambda a: SMTP._getaddr(smtp, a), arg)


def test_plain_address_takes_the_quick_path() -> None:
    smtp = parsers(0)
    assert smtp._getaddr("<administrative@localhost> SIZE=10") == (
        "administrative@localhost",
        "SIZE=10",
    )
    assert smtp._getaddr("<>") == SMTP._getaddr(smtp, "<>")
