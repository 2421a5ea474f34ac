"""Every REST error in one shape, the same as the WebSocket's:

    {"type": "error", "payload": {"code": "...", "message": "...", ...details}}

Codes come from `bugstream.domain.errors.ErrorCode`; docs/errors.md explains each.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bugstream.domain.errors import HTTP_STATUS, BugstreamError, ErrorCode
from bugstream.domain.validation import error_from_pydantic

_log = logging.getLogger(__name__)


class ORJSONResponse(JSONResponse):
    """JSON through orjson, the project's one encoder (FastAPI's own class is deprecated)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# Clients know fields by their own names, without FastAPI's location prefix.
_LOCATIONS = frozenset({"body", "query", "path"})

_STATUS_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.INVALID_MESSAGE_FORMAT,
    401: ErrorCode.INVALID_TOKEN,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.MESSAGE_TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
}


def error_response(
    code: ErrorCode, message: str, status: int | None = None, **details: Any
) -> ORJSONResponse:
    body = {"type": "error", "payload": {"code": code.value, "message": message, **details}}
    return ORJSONResponse(body, status_code=status or HTTP_STATUS[code])


def validation_error(errors: list[dict[str, Any]]) -> BugstreamError:
    """pydantic errors -> `invalid_message_format` for a body that is not a JSON object,
    else `missing_required_fields` or `validation_failed` (domain.validation)."""
    if any(e["type"] in {"json_invalid", "model_attributes_type"} for e in errors) or any(
        e["type"] == "dict_type" and tuple(e["loc"]) == ("body",) for e in errors
    ):
        return BugstreamError(
            "the body is not a JSON object", code=ErrorCode.INVALID_MESSAGE_FORMAT
        )
    return error_from_pydantic(errors, strip=_LOCATIONS)


_AUTH_CODES = frozenset(
    {ErrorCode.INVALID_TOKEN, ErrorCode.TOKEN_EXPIRED, ErrorCode.INVALID_CREDENTIALS}
)


def _counted(request: Request, response: ORJSONResponse, code: ErrorCode) -> ORJSONResponse:
    """Report the error to the application's telemetry (`app.state.telemetry`), if any."""
    telemetry = getattr(request.app.state, "telemetry", None)
    if telemetry is not None:
        telemetry.error(code.value)
        if code in _AUTH_CODES:
            telemetry.auth_failed(code.value)
    return response


def install(app: FastAPI) -> None:
    @app.exception_handler(BugstreamError)
    async def _bugstream_error(request: Request, exc: BugstreamError) -> ORJSONResponse:
        response = error_response(exc.code, exc.message, **exc.details)
        retry_after = exc.details.get("retry_after")
        if exc.code is ErrorCode.RATE_LIMITED and isinstance(retry_after, int | float):
            response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return _counted(request, response, exc.code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> ORJSONResponse:
        error = validation_error(list(exc.errors()))
        response = error_response(error.code, error.message, **error.details)
        return _counted(request, response, error.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        code = _STATUS_CODES.get(exc.status_code, ErrorCode.INTERNAL_ERROR)
        return _counted(
            request, error_response(code, str(exc.detail), status=exc.status_code), code
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> ORJSONResponse:
        _log.exception("unhandled error", exc_info=exc)
        response = error_response(ErrorCode.INTERNAL_ERROR, "internal server error")
        return _counted(request, response, ErrorCode.INTERNAL_ERROR)
