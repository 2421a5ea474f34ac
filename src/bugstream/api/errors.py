"""Every REST error in one shape, the same as the WebSocket's:

    {"type": "error", "payload": {"code": "...", "message": "...", ...details}}

Codes come from `bugstream.domain.errors.ErrorCode`; docs/errors.md explains each.
"""

from __future__ import annotations

import logging
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


def validation_error_response(errors: list[dict[str, Any]]) -> ORJSONResponse:
    """pydantic errors -> `invalid_message_format` for a body that is not a JSON object,
    else `missing_required_fields` or `validation_failed` (domain.validation)."""
    if any(e["type"] in {"json_invalid", "model_attributes_type"} for e in errors) or any(
        e["type"] == "dict_type" and tuple(e["loc"]) == ("body",) for e in errors
    ):
        return error_response(ErrorCode.INVALID_MESSAGE_FORMAT, "the body is not a JSON object")
    error = error_from_pydantic(errors, strip=_LOCATIONS)
    return error_response(error.code, error.message, **error.details)


def install(app: FastAPI) -> None:
    @app.exception_handler(BugstreamError)
    async def _bugstream_error(_request: Request, exc: BugstreamError) -> ORJSONResponse:
        return error_response(exc.code, exc.message, **exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> ORJSONResponse:
        return validation_error_response(list(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        code = _STATUS_CODES.get(exc.status_code, ErrorCode.INTERNAL_ERROR)
        return error_response(code, str(exc.detail), status=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> ORJSONResponse:
        _log.exception("unhandled error", exc_info=exc)
        return error_response(ErrorCode.INTERNAL_ERROR, "internal server error")
