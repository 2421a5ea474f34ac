"""Errors the SDK raises. Exception tree::

    Exception
    ├── ClientError                     connection-level problems of the SDK
    │   ├── ConnectionRejected          the server closed with a "do not reconnect" code
    │   │   └── TokenExpired            ... 4002: the token expired and no new one was had
    │   ├── ReconnectFailed             every reconnect attempt failed
    │   ├── ResyncRequired              events were missed beyond the server's replay window
    │   ├── ConnectionLost              a command was sent, the connection closed unanswered
    │   ├── ClientClosed                the client is closed
    │   └── CommandTimeout              (also a TimeoutError) no answer within the timeout
    └── BugstreamError                  (bugstream.domain.errors) a command's error answer
        ├── ValidationFailed, NotFound, Forbidden, Conflict, AuthError
        └── CommandError                any other code, e.g. rate_limited

A command's error answer is raised as the domain's class for its code, so
`except NotFound:` reads the same in a REST client, the server and the SDK.
"""

from __future__ import annotations

from typing import Any

from bugstream.domain.errors import (
    AuthError,
    BugstreamError,
    Conflict,
    ErrorCode,
    FieldError,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from bugstream.domain.protocol import CloseCode


class ClientError(Exception):
    """Root of the SDK's own errors (connection, resume, timeouts)."""


def _code_name(code: int | None) -> str:
    if code is None:
        return "no close code"
    try:
        return f"{code} {CloseCode(code).name.lower()}"
    except ValueError:
        return str(code)


class ConnectionRejected(ClientError):
    """The server ended the connection with a close code that means "do not reconnect"
    (docs/errors.md: 4001 invalid token, 4003 forbidden, 4004 blocked, ...), or refused the
    WebSocket upgrade outright (`http_status`)."""

    def __init__(
        self,
        message: str,
        *,
        close_code: int | None = None,
        reason: str = "",
        error: dict[str, Any] | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.close_code = close_code
        self.reason = reason
        #: The `error` message's payload the server sent before closing, if any.
        self.error = error
        self.http_status = http_status


class TokenExpired(ConnectionRejected):
    """The token expired (close code 4002) and no newer one could be had: give the client a
    `token_provider` to have it refresh tokens on its own."""


class ReconnectFailed(ClientError):
    """Every reconnect attempt failed. `attempts` were made; `close_code` and `error` tell
    what ended the last one (a close code, or the exception of a failed connect)."""

    def __init__(
        self,
        attempts: int,
        *,
        close_code: int | None = None,
        reason: str = "",
        error: BaseException | None = None,
    ) -> None:
        if error is not None:
            cause = f"{type(error).__name__}: {error}"
        else:
            cause = f"closed with {_code_name(close_code)}" + (f" ({reason})" if reason else "")
        super().__init__(f"gave up after {attempts} reconnect attempts; last: {cause}")
        self.attempts = attempts
        self.close_code = close_code
        self.reason = reason
        self.error = error


class ResyncRequired(ClientError):
    """The server no longer holds every event after `last_event_id` (the oldest it keeps is
    `oldest_event_id`): refetch the state over REST. The stream goes on after
    `latest_event_id`; iterate `events()` again to follow it."""

    def __init__(self, last_event_id: int, oldest_event_id: int, latest_event_id: int) -> None:
        super().__init__(
            f"events after #{last_event_id} are no longer kept (the oldest is "
            f"#{oldest_event_id}); refetch state, the stream goes on after #{latest_event_id}"
        )
        self.last_event_id = last_event_id
        self.oldest_event_id = oldest_event_id
        self.latest_event_id = latest_event_id


class ConnectionLost(ClientError):
    """The connection closed after a command was sent and before its answer came: the
    command may or may not have been applied. Check (e.g. over REST) before sending again."""

    def __init__(self, command: str, request_id: str) -> None:
        super().__init__(
            f"the connection closed before {command!r} (request {request_id}) was answered; "
            "it may or may not have been applied"
        )
        self.command = command
        self.request_id = request_id


class ClientClosed(ClientError):
    """The client was closed (or failed for good) before the operation could complete."""


class CommandTimeout(ClientError, TimeoutError):
    """No answer to a command within its timeout (it waited for a connection, or for the
    answer). Like `ConnectionLost`, the command may have been applied."""

    def __init__(self, command: str, request_id: str, timeout: float) -> None:
        super().__init__(f"no answer to {command!r} (request {request_id}) within {timeout} s")
        self.command = command
        self.request_id = request_id
        self.timeout = timeout


class CommandError(BugstreamError):
    """An error answer whose code has no class of its own (rate_limited,
    missing_required_fields, internal_error, ...). `raw_code` is the code as sent."""

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode,
        raw_code: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.raw_code = raw_code


_BY_CODE: dict[str, type[BugstreamError]] = {
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.FORBIDDEN: Forbidden,
    ErrorCode.CONFLICT: Conflict,
}


def error_from_payload(payload: dict[str, Any]) -> BugstreamError:
    """The exception for an `error` message's payload, typed by its `code`.

    Every field besides `code` and `message` (`request_id`, `fields`, `retry_after`, ...)
    lands in `details`.
    """
    raw_code = str(payload.get("code", ErrorCode.INTERNAL_ERROR.value))
    message = str(payload.get("message", raw_code))
    details = {k: v for k, v in payload.items() if k not in ("code", "message")}
    if raw_code == ErrorCode.VALIDATION_FAILED:
        fields = [
            FieldError(str(f.get("field", "")), str(f.get("rule", "")), str(f.get("message", "")))
            for f in details.get("fields", [])
            if isinstance(f, dict)
        ]
        error: BugstreamError = ValidationFailed(fields, message)
        error.details.update(details)
        error.details["fields"] = fields
        return error
    if raw_code in (ErrorCode.INVALID_TOKEN, ErrorCode.TOKEN_EXPIRED):
        return AuthError(message, code=ErrorCode(raw_code), details=details)
    cls = _BY_CODE.get(raw_code)
    if cls is not None:
        return cls(message, details=details)
    try:
        code = ErrorCode(raw_code)
    except ValueError:
        code = ErrorCode.INTERNAL_ERROR
    return CommandError(message, code=code, raw_code=raw_code, details=details)
