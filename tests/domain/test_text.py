"""The patterns /openapi.json states for text and email fields say what the server applies."""

from __future__ import annotations

import re
import sys

import pytest
from pydantic import TypeAdapter, ValidationError

from bugstream.domain.models import Email
from bugstream.domain.text import (
    EMAIL_NOT_RESERVED,
    VISIBLE_CHARACTER,
    clean_multi_line,
    clean_single_line,
)


@pytest.mark.parametrize("clean", [clean_single_line, clean_multi_line])
def test_the_visible_character_pattern_matches_exactly_what_sanitizing_keeps(clean: object) -> None:
    """For every code point: a text of just it is non-empty once sanitized iff the schema's
    pattern matches it (so `minLength: 1` plus the pattern is the server's rule)."""
    assert callable(clean)
    visible = re.compile(VISIBLE_CHARACTER)
    disagree = [
        hex(point)
        for point in range(sys.maxunicode + 1)
        if not 0xD800 <= point <= 0xDFFF  # lone surrogates are not valid JSON text
        and bool(visible.search(chr(point))) != bool(clean(chr(point)))
    ]
    assert disagree == []


@pytest.mark.parametrize(
    ("address", "reserved"),
    [
        ("ada@example.com", False),
        ("ada@test.example.org", False),
        ("ada@TEST.com", False),
        ("ada@lab.test", True),
        ("ada@LAB.TEST", True),
        ("ada@printer.local", True),
        ("ada@localhost", True),
        ("ada@x.onion", True),
        ("ada@10.in-addr.arpa", True),
        ("ada@nothing.invalid", True),
    ],
)
def test_the_email_pattern_refuses_what_the_validator_refuses(address: str, reserved: bool) -> None:
    matches = re.search(EMAIL_NOT_RESERVED, address) is not None
    try:
        TypeAdapter(Email).validate_python(address)
        accepted = True
    except ValidationError:
        accepted = False
    assert matches is not reserved
    assert accepted is not reserved
