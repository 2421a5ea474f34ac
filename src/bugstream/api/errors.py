"""Every REST error in one shape, the same as the WebSocket's:

    {"type": "error", "payload": {"code": "...", "message": "...", ...details}}

Codes come from `bugstream.domain.errors.ErrorCode`; docs/errors.md explains each.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
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
    code: ErrorCode,
    message: str,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    **details: Any,
) -> ORJSONResponse:
    body = {"type": "error", "payload": {"code": code.value, "message": message, **details}}
    return ORJSONResponse(body, status_code=status or HTTP_STATUS[code], headers=headers)


def _declares_json(request: Request) -> bool:
    """A body declared as JSON (`application/json`, `application/*+json`), or not declared
    at all (read as JSON, as FastAPI does)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return media_type in {"", "application/json"} or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def allowed_methods(request: Request) -> list[str]:
    """The methods of the request's path: those of every route whose path matches it, the
    most literal ones only. FastAPI makes a route per method, so one route's own 405 names
    only its own method; and `/users/me` is a resource of its own, whose methods are not
    those of `/users/{user_id}` (which its path also matches)."""
    matching: list[tuple[int, set[str]]] = []
    # FastAPI includes routers lazily: `iter_route_contexts` yields the routes as mounted.
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(request.url.path):
            matching.append((str(route.path_format).count("{"), route.methods))
    fewest = min((parameters for parameters, _ in matching), default=0)
    return sorted({m for parameters, methods in matching if parameters == fewest for m in methods})


def method_not_allowed(request: Request, allowed: list[str]) -> ORJSONResponse:
    listed = ", ".join(allowed)
    return error_response(
        ErrorCode.METHOD_NOT_ALLOWED,
        f"{request.method} is not allowed here; allowed: {listed}",
        headers={"Allow": listed},
    )


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
        allowed = allowed_methods(request)
        if request.method not in allowed:
            # PATCH /users/me reached PATCH /users/{user_id} and failed there ("me" is not an
            # id); /users/me has no PATCH.
            return _counted(
                request, method_not_allowed(request, allowed), ErrorCode.METHOD_NOT_ALLOWED
            )
        error = validation_error(list(exc.errors()))
        if error.code is ErrorCode.INVALID_MESSAGE_FORMAT and not _declares_json(request):
            declared = request.headers.get("content-type", "")[:100]
            error = BugstreamError(
                f"the body must be application/json, not {declared!r}",
                code=ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            )
        response = error_response(error.code, error.message, **error.details)
        return _counted(request, response, error.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        code = _STATUS_CODES.get(exc.status_code, ErrorCode.INTERNAL_ERROR)
        if exc.status_code == 405:
            response = method_not_allowed(request, allowed_methods(request))
        else:
            response = error_response(
                code, str(exc.detail), status=exc.status_code, headers=exc.headers
            )
        return _counted(request, response, code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> ORJSONResponse:
        _log.exception("unhandled error", exc_info=exc)
        response = error_response(ErrorCode.INTERNAL_ERROR, "internal server error")
        return _counted(request, response, ErrorCode.INTERNAL_ERROR)
