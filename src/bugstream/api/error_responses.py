"""The error answers of every operation, declared in /openapi.json with their real shape.

Every REST error is `{"type": "error", "payload": {"code", "message", ...}}` (api/errors.py).
Each operation declares the statuses it can answer with, and which codes each carries:

- the ones that follow from its signature, added by `DeclaredErrorsRoute` (every API
  router is made by `resource_router`): 401 for an operation that needs a token; 400, 413, 415
  and 422 for one that takes a JSON body; 422 for one with path or query parameters; 500
  for every one;
- the ones that follow from what it does (403, 404, 409, 429), declared by the route with
  `responses=errors(...)`.

405 is not declared per operation: it answers the methods an operation does *not* have, with
an `Allow` header (api/errors.py). Schemathesis checks every status and body against this
(tests/api/test_openapi_contract.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, JsonValue, create_model

from bugstream.api.deps import get_actor
from bugstream.domain.errors import HTTP_STATUS, ErrorCode


class FieldProblem(BaseModel):
    """One failing field of a `validation_failed` answer."""

    field: str = Field(description="The field's name, dotted for nested ones")
    rule: str = Field(description="The rule it broke: too_long, enum, exists, unique, ...")
    message: str


#: What a status's payload carries beside `code` and `message`.
_EXTRA_FIELDS: dict[int, dict[str, Any]] = {
    422: {
        "fields": (
            list[FieldProblem] | list[str],
            Field(
                description="validation_failed: every failing field; "
                "missing_required_fields: the names of the absent ones"
            ),
        )
    },
    429: {
        "retry_after": (
            float | None,
            Field(default=None, description="rate_limited: seconds to wait before trying again"),
        )
    },
    409: {
        "fields": (list[FieldProblem] | None, Field(default=None)),
        "last_event_id": (
            int | None,
            Field(default=None, description="resync_required: the `after` asked for"),
        ),
        "oldest_event_id": (
            int | None,
            Field(default=None, description="resync_required: the oldest event still kept"),
        ),
        "latest_event_id": (
            int | None,
            Field(default=None, description="resync_required: the newest event relayed"),
        ),
    },
}

_DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.INVALID_TOKEN: "no bearer token, or one that is not valid",
    ErrorCode.TOKEN_EXPIRED: "the token has expired",
    ErrorCode.INVALID_CREDENTIALS: "unknown username or wrong password",
    ErrorCode.FORBIDDEN: "the caller's role may not do this",
    ErrorCode.NOT_FOUND: "no such thing, or not visible to the caller",
    ErrorCode.CONFLICT: "contradicts the current state",
    ErrorCode.VALIDATION_FAILED: "a field breaks its rule",
    ErrorCode.MISSING_REQUIRED_FIELDS: "required fields are absent",
    ErrorCode.INVALID_MESSAGE_FORMAT: "the body is not a JSON object",
    ErrorCode.MESSAGE_TOO_LARGE: "the body is over BUGSTREAM_MAX_REQUEST_BYTES",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "the body is not declared as application/json",
    ErrorCode.RATE_LIMITED: "too many attempts; see Retry-After",
    ErrorCode.TOO_MANY_CONNECTIONS: "the user has the most streams allowed open",
    ErrorCode.BLOCKED: "too many violations: blocked for a while",
    ErrorCode.SERVICE_UNAVAILABLE: "the server is at its connection limit, or stopping",
    ErrorCode.RESYNC_REQUIRED: "events after `after` are no longer kept: refetch state",
    ErrorCode.METHOD_NOT_ALLOWED: "the path has no such method",
    ErrorCode.UNKNOWN_EVENT_TYPE: "no such message type",
    ErrorCode.INTERNAL_ERROR: "a fault in bugstream (logged)",
}

_models: dict[int, type[BaseModel]] = {}


class ErrorResponse(dict[str, Any]):
    """One status's entry of `responses=`, remembering the codes it was declared with."""

    def __init__(self, codes: tuple[ErrorCode, ...], **response: Any) -> None:
        super().__init__(**response)
        self.codes = codes


def error_model(status: int) -> type[BaseModel]:
    """The error envelope of one status, its `code` limited to that status's codes."""
    if status not in _models:
        codes: list[JsonValue] = [
            code.value
            for code in sorted(HTTP_STATUS, key=lambda c: c.value)
            if HTTP_STATUS[code] == status
        ]
        payload = create_model(
            f"ErrorPayload{status}",
            __config__=ConfigDict(extra="allow"),
            code=(str, Field(json_schema_extra={"enum": codes})),
            message=(str, Field(description="For people; may change")),
            **_EXTRA_FIELDS.get(status, {}),
        )
        _models[status] = create_model(
            f"Error{status}",
            type=(str, Field(json_schema_extra={"const": "error", "enum": ["error"]})),
            payload=(payload, ...),
        )
    return _models[status]


def errors(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the statuses of `codes`, each with its model and codes."""
    by_status: dict[int, list[ErrorCode]] = {}
    for code in codes:
        by_status.setdefault(HTTP_STATUS[code], []).append(code)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, status_codes in sorted(by_status.items()):
        response = ErrorResponse(
            tuple(status_codes),
            model=error_model(status),
            description="; ".join(f"`{c.value}`: {_DESCRIPTIONS[c]}" for c in status_codes),
        )
        if status == 429:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before trying again",
                    "schema": {"type": "integer"},
                }
            }
        responses[status] = response
    return responses


def _needs_token(dependant: Dependant) -> bool:
    return dependant.call is get_actor or any(_needs_token(d) for d in dependant.dependencies)


def _takes(dependant: Dependant, kind: str) -> bool:
    """It, or a dependency of it, has parameters of `kind` ("body_params", "path_params",
    "query_params")."""
    return bool(getattr(dependant, kind)) or any(_takes(d, kind) for d in dependant.dependencies)


def signature_errors(dependant: Dependant) -> Iterable[ErrorCode]:
    """The codes an operation can answer with because of how it is called."""
    if _needs_token(dependant):
        yield from (ErrorCode.INVALID_TOKEN, ErrorCode.TOKEN_EXPIRED)
    if _takes(dependant, "body_params"):
        yield from (
            ErrorCode.INVALID_MESSAGE_FORMAT,
            ErrorCode.MESSAGE_TOO_LARGE,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            ErrorCode.MISSING_REQUIRED_FIELDS,
            ErrorCode.VALIDATION_FAILED,
        )
    elif _takes(dependant, "path_params") or _takes(dependant, "query_params"):
        yield ErrorCode.VALIDATION_FAILED
    yield ErrorCode.INTERNAL_ERROR


class DeclaredErrorsRoute(APIRoute):
    """An API route whose `responses` hold every error it can answer with: the ones its
    decorator declares (`errors(...)`) and the ones that follow from its signature. Its
    422 replaces FastAPI's `HTTPValidationError`, a shape bugstream never sends."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        declared = kwargs.get("responses") or {}
        codes = [
            code
            for response in declared.values()
            if isinstance(response, ErrorResponse)
            for code in response.codes
        ]
        dependant = get_dependant(path=path, call=endpoint)
        codes += [code for code in signature_errors(dependant) if code not in codes]
        kwargs["responses"] = {**declared, **errors(*codes)}
        super().__init__(path, endpoint, **kwargs)


def resource_router(prefix: str, tag: str) -> APIRouter:
    """A router for one resource of the API, its routes declaring their errors."""
    return APIRouter(prefix=prefix, tags=[tag], route_class=DeclaredErrorsRoute)
