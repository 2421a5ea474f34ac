"""Sanitizing free text: what a user types is stored as plain text, never interpreted as HTML.

Control characters (C0, C1 and DEL) are stripped, except line feeds and tabs in multi-line
fields; line endings are normalised to `\\n`; the result is Unicode NFC and trimmed. Length
limits are checked on the text as sent (what /openapi.json's `maxLength` says) and again after
sanitizing (what the database holds; NFC lengthens a few characters), so a title of only control
characters is empty and fails: the schema says so with a `pattern` that asks for one visible
character.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Annotated

import email_validator
from pydantic import AfterValidator, BeforeValidator, Field, JsonValue, StringConstraints
from pydantic_core import PydanticKnownError

_SINGLE_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MULTI_LINE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_single_line(value: str) -> str:
    """Strip every control character (newlines included) and surrounding white space."""
    return unicodedata.normalize("NFC", _SINGLE_LINE_CONTROL.sub("", value)).strip()


def clean_multi_line(value: str) -> str:
    """Strip control characters but keep line feeds and tabs; `\\r\\n` and `\\r` become `\\n`."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", _MULTI_LINE_CONTROL.sub("", value)).strip()


# Limits of every text field. They are part of the API contract (docs/api.md).
TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
COMMENT_MAX = 10_000
PROJECT_NAME_MAX = 100
PROJECT_DESCRIPTION_MAX = 2_000
USERNAME_MIN = 3
USERNAME_MAX = 32
EMAIL_MAX = 254
PASSWORD_MIN = 8
PASSWORD_MAX = 128
MESSAGE_MAX = 500

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]+$"

#: One character that sanitizing keeps and trimming does not remove (not a control character,
#: not white space as `str.strip` sees it): a text without one is empty once sanitized. In the
#: syntax both Python's `re` and JSON Schema's ECMA-262 expressions read, so /openapi.json
#: states the rule the server applies (tests/domain/test_text.py checks every code point).
VISIBLE_CHARACTER = (
    r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
_NOT_BLANK: dict[str, JsonValue] = {"pattern": VISIBLE_CHARACTER}


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


#: What email-validator refuses beyond `format: email`: a domain under a special-use name
#: (RFC 6761: .test, .local, .localhost, .invalid, .onion, .arpa), which cannot receive mail.
#: A `pattern` beside the format in /openapi.json, in syntax Python and ECMA-262 both read.
EMAIL_NOT_RESERVED = "^(?!.*@(?:.*\\.)?(?:{})$)".format(
    "|".join(_any_case(name) for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)
)


def at_most(limit: int) -> Callable[[object], object]:
    """A check of a text's length as sent, with the same error (`too_long`) as the check
    after sanitizing."""

    def check(value: object) -> object:
        if isinstance(value, str) and len(value) > limit:
            context = {"field_type": "Value", "max_length": limit, "actual_length": len(value)}
            raise PydanticKnownError("too_long", context)
        return value

    return check


Title = Annotated[
    str,
    BeforeValidator(at_most(TITLE_MAX)),  # as sent
    AfterValidator(clean_single_line),
    Field(min_length=1, max_length=TITLE_MAX, json_schema_extra=_NOT_BLANK),
]
"""A bug title: one line, 1 to 200 characters after sanitizing."""

Description = Annotated[
    str,
    BeforeValidator(at_most(DESCRIPTION_MAX)),  # as sent
    AfterValidator(clean_multi_line),
    Field(max_length=DESCRIPTION_MAX),
]
CommentContent = Annotated[
    str,
    BeforeValidator(at_most(COMMENT_MAX)),  # as sent
    AfterValidator(clean_multi_line),
    Field(min_length=1, max_length=COMMENT_MAX, json_schema_extra=_NOT_BLANK),
]
ProjectName = Annotated[
    str,
    BeforeValidator(at_most(PROJECT_NAME_MAX)),  # as sent
    AfterValidator(clean_single_line),
    Field(min_length=1, max_length=PROJECT_NAME_MAX, json_schema_extra=_NOT_BLANK),
]
ProjectDescription = Annotated[
    str,
    BeforeValidator(at_most(PROJECT_DESCRIPTION_MAX)),  # as sent
    AfterValidator(clean_multi_line),
    Field(max_length=PROJECT_DESCRIPTION_MAX),
]
Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=USERNAME_MIN,
        max_length=USERNAME_MAX,
        pattern=USERNAME_PATTERN,
    ),
]
Password = Annotated[str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
