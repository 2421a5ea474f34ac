"""The interactive API documentation at `/docs`: Swagger UI, served by bugstream itself.

FastAPI's own `/docs` loads Swagger UI from a CDN, so it is blank offline, on a locked-down
network, or for a browser that blocks third-party scripts. These files are swagger-ui-dist
(Apache-2.0, version in `swagger-ui/VERSION`), refreshed with `scripts/vendor_swagger_ui.sh`.
FastAPI's ReDoc page (`/redoc`) is not offered: it, too, came from a CDN.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html

from bugstream.domain.errors import NotFound
from bugstream.web.routes import asset, respond

#: What `/static/swagger-ui/{name}` serves, and as what.
SWAGGER_UI_FILES: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-bundle.js.LICENSE.txt": "text/plain; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "LICENSE": "text/plain; charset=utf-8",
    "NOTICE": "text/plain; charset=utf-8",
    "VERSION": "text/plain; charset=utf-8",
}
_BASE = "/static/swagger-ui"


def api_docs_router(openapi_url: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title="bugstream API",
        swagger_js_url=f"{_BASE}/swagger-ui-bundle.js",
        swagger_css_url=f"{_BASE}/swagger-ui.css",
        swagger_favicon_url=f"{_BASE}/favicon-32x32.png",
    ).body

    @router.api_route("/docs", methods=["GET", "HEAD"])
    async def docs(request: Request) -> Response:
        body = b"" if request.method == "HEAD" else bytes(page)
        return Response(body, media_type="text/html; charset=utf-8")

    @router.api_route(f"{_BASE}/{{name}}", methods=["GET", "HEAD"])
    async def swagger_ui(request: Request, name: str) -> Response:
        media_type = SWAGGER_UI_FILES.get(name)
        if media_type is None:
            raise NotFound(f"no static file {name[:100]!r}")
        return respond(request, asset(f"swagger-ui/{name}", media_type), {})

    return router
