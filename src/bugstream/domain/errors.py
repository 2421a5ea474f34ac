"""The one error-code catalog, shared by REST, the WebSocket gateway and the SDK.

Every error bugstream reports carries one of these codes. `docs/errors.md` documents each: what
causes it and what a client should do. Exception tree::

    BugstreamError                 (code, message, details)
    ├── ValidationFailed           validation_failed, with the failing fields
    ├── NotFound                   not_found
    ├── Forbidden                  forbidden
    ├── Conflict                   conflict
    ├── ResyncRequired             resync_required, with the positions
    └── AuthError                  invalid_token, token_expired
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    # Authentication
    INVALID_TOKEN = "invalid_token"
    TOKEN_EXPIRED = "token_expired"
    INVALID_CREDENTIALS = "invalid_credentials"
    # Authorization and lookup
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    # Input
    VALIDATION_FAILED = "validation_failed"
    MISSING_REQUIRED_FIELDS = "missing_required_fields"
    INVALID_MESSAGE_FORMAT = "invalid_message_format"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    MESSAGE_TOO_LARGE = "message_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    # Limits
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    BLOCKED = "blocked"
    # Streams
    RESYNC_REQUIRED = "resync_required"
    # Server
    INTERNAL_ERROR = "internal_error"
    SERVICE_UNAVAILABLE = "service_unavailable"


#: The HTTP status REST answers with for each code.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_TOKEN: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.INVALID_CREDENTIALS: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.VALIDATION_FAILED: 422,
    ErrorCode.MISSING_REQUIRED_FIELDS: 422,
    ErrorCode.INVALID_MESSAGE_FORMAT: 400,
    ErrorCode.UNKNOWN_EVENT_TYPE: 400,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_CONNECTIONS: 429,
    ErrorCode.BLOCKED: 429,
    ErrorCode.RESYNC_REQUIRED: 409,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
}


class BugstreamError(Exception):
    """Root of every error bugstream reports to a client."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(
        self, message: str, *, code: ErrorCode | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details or {}

    def to_payload(self) -> dict[str, Any]:
        """The `payload` of the spec's error message: code, message and any details."""
        return {"code": self.code.value, "message": self.message, **self.details}


class FieldError(dict[str, str]):
    """One failing field: `{"field": "title", "rule": "min_length", "message": "..."}`."""

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(field=field, rule=rule, message=message)


class ValidationFailed(BugstreamError):
    code = ErrorCode.VALIDATION_FAILED

    def __init__(self, fields: list[FieldError], message: str | None = None) -> None:
        names = ", ".join(f["field"] for f in fields)
        super().__init__(message or f"invalid value for: {names}", details={"fields": fields})
        self.fields = fields


class NotFound(BugstreamError):
    code = ErrorCode.NOT_FOUND


class Forbidden(BugstreamError):
    code = ErrorCode.FORBIDDEN


class Conflict(BugstreamError):
    code = ErrorCode.CONFLICT


def field_conflict(field: str, rule: str, message: str) -> Conflict:
    """A well-formed field that the current state refuses (a name taken, a user who does not
    exist or may not be assigned): `409 conflict` naming it, where `validation_failed` (422)
    is for input that breaks a rule of its own, whatever the state (docs/errors.md)."""
    return Conflict(f"{field}: {message}", details={"fields": [FieldError(field, rule, message)]})


class AuthError(BugstreamError):
    """The token or credentials are not acceptable; `code` says which way."""

    code = ErrorCode.INVALID_TOKEN


class ResyncRequired(BugstreamError):
    """Events after `last_event_id` are no longer kept: the reader must refetch state over REST,
    then go on from `latest_event_id` (the same fields as /ws's `resync_required` message)."""

    code = ErrorCode.RESYNC_REQUIRED

    def __init__(self, last_event_id: int, oldest_event_id: int, latest_event_id: int) -> None:
        super().__init__(
            "events after last_event_id are no longer kept; "
            "refetch state over REST, then follow from latest_event_id",
            details={
                "last_event_id": last_event_id,
                "oldest_event_id": oldest_event_id,
                "latest_event_id": latest_event_id,
            },
        )
