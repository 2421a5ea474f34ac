"""Sanitizing free text: what a user types is stored as plain text, never interpreted as HTML.

Control characters (C0, C1 and DEL) are stripped, except line feeds and tabs in multi-line
fields; line endings are normalised to `\\n`; the result is Unicode NFC and trimmed. Length
limits are checked *after* sanitizing, so a title of only control characters is empty and fails.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

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

Title = Annotated[
    str,
    AfterValidator(clean_single_line),
    Field(min_length=1, max_length=TITLE_MAX),
]
"""A bug title: one line, 1 to 200 characters after sanitizing."""

Description = Annotated[
    str,
    AfterValidator(clean_multi_line),
    Field(max_length=DESCRIPTION_MAX),
]
CommentContent = Annotated[
    str,
    AfterValidator(clean_multi_line),
    Field(min_length=1, max_length=COMMENT_MAX),
]
ProjectName = Annotated[
    str,
    AfterValidator(clean_single_line),
    Field(min_length=1, max_length=PROJECT_NAME_MAX),
]
ProjectDescription = Annotated[
    str,
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
