"""Turning pydantic validation errors into the error catalog's codes (REST and /ws alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bugstream.domain.errors import BugstreamError, ErrorCode, FieldError


def field_name(loc: Sequence[Any], *, strip: frozenset[str] = frozenset()) -> str:
    parts = list(loc)
    # Strip a location prefix ("body", "query"...) only before a field name: a missing body
    # is named "body".
    if len(parts) > 1 and parts[0] in strip:
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or "payload"


def error_from_pydantic(
    errors: Sequence[Any], *, strip: frozenset[str] = frozenset()
) -> BugstreamError:
    """`missing_required_fields` if any field is missing (naming them all), otherwise
    `validation_failed` naming each failing field and the rule it broke."""
    missing = [field_name(e["loc"], strip=strip) for e in errors if e["type"] == "missing"]
    if missing:
        return BugstreamError(
            f"missing required fields: {', '.join(missing)}",
            code=ErrorCode.MISSING_REQUIRED_FIELDS,
            details={"fields": missing},
        )
    fields = [FieldError(field_name(e["loc"], strip=strip), e["type"], e["msg"]) for e in errors]
    names = ", ".join(dict.fromkeys(f["field"] for f in fields))
    return BugstreamError(
        f"invalid value for: {names}",
        code=ErrorCode.VALIDATION_FAILED,
        details={"fields": fields},
    )
