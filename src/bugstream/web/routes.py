"""The live board at `/` and the browser files under `/static/` (no build step).

The files ship inside the package and are read once. The board page carries a strict
Content-Security-Policy: only its own scripts and styles run, and it talks only to its own
origin (REST and `/ws`). Every response has an ETag and `Cache-Control: no-cache`, so
browsers revalidate and pick up a new release at once. None of this is in the OpenAPI schema.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request, Response

from bugstream.domain.errors import NotFound

#: What `/static/{name}` serves, and as what.
STATIC_FILES: dict[str, str] = {
    "bugstream.js": "text/javascript; charset=utf-8",
    "board.js": "text/javascript; charset=utf-8",
    "board-api.js": "text/javascript; charset=utf-8",
    "board-dom.js": "text/javascript; charset=utf-8",
    "board-load.js": "text/javascript; charset=utf-8",
    "board-presence.js": "text/javascript; charset=utf-8",
    "board-render.js": "text/javascript; charset=utf-8",
    "board-state.js": "text/javascript; charset=utf-8",
    "board.css": "text/css; charset=utf-8",
}
HTML = "text/html; charset=utf-8"

#: `connect-src 'self'` covers ws:// and wss:// on the page's own host (CSP level 3).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

_COMMON_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def asset(name: str, media_type: str) -> Asset:
    body = files(__package__ or "bugstream.web").joinpath(name).read_bytes()
    return Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def respond(request: Request, item: Asset, headers: dict[str, str]) -> Response:
    headers = {**_COMMON_HEADERS, **headers, "ETag": item.etag}
    if item.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else item.body
    response = Response(body, media_type=item.media_type, headers=headers)
    if request.method == "HEAD":
        response.headers["content-length"] = str(len(item.body))
    return response


def web_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.api_route("/", methods=["GET", "HEAD"])
    async def board(request: Request) -> Response:
        headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY"}
        return respond(request, asset("index.html", HTML), headers)

    @router.api_route("/static/{name}", methods=["GET", "HEAD"])
    async def static(request: Request, name: str) -> Response:
        media_type = STATIC_FILES.get(name)
        if media_type is None:
            raise NotFound(f"no static file {name[:100]!r}")
        return respond(request, asset(name, media_type), {})

    return router
