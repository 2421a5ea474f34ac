"""The board page and the browser files, as served over HTTP by the application."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path

import httpx
import pytest

from bugstream.app import create_app
from bugstream.settings import Settings

WEB = files("bugstream.web")


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path, jwt_secret="web-routes-secret-" + "x" * 32)
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_the_board_is_served_at_the_root(http: httpx.AsyncClient) -> None:
    response = await http.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/static/board.js">' in response.text
    assert 'id="connection"' in response.text
    policy = response.headers["content-security-policy"]
    # Only the page's own scripts and styles run; it talks to its own origin only.
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "content_type", "marker"),
    [
        ("bugstream.js", "text/javascript; charset=utf-8", "export class BugstreamClient"),
        ("board.js", "text/javascript; charset=utf-8", 'from "./bugstream.js"'),
        ("board.css", "text/css; charset=utf-8", ".columns"),
    ],
)
async def test_static_files_have_their_content_type(
    http: httpx.AsyncClient, name: str, content_type: str, marker: str
) -> None:
    response = await http.get(f"/static/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert marker in response.text
    assert response.content == WEB.joinpath(name).read_bytes()


async def test_everything_the_page_loads_is_served(http: httpx.AsyncClient) -> None:
    page = (await http.get("/")).text
    wanted = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', page))
    # Follow the module graph from board.js, as the browser does.
    queue = ["board.js"]
    while queue:
        source = (await http.get(f"/static/{queue.pop()}")).text
        for name in re.findall(r'from "\./([^"]+)"', source):
            if f"/static/{name}" not in wanted:
                wanted.add(f"/static/{name}")
                queue.append(name)

    assert wanted == {
        "/static/board.js",
        "/static/board.css",
        "/static/bugstream.js",
        *(
            f"/static/board-{part}.js"
            for part in ("api", "dom", "load", "presence", "render", "state")
        ),
    }
    for path in sorted(wanted):
        assert (await http.get(path)).status_code == 200, path


async def test_revalidation_answers_304_for_an_unchanged_file(http: httpx.AsyncClient) -> None:
    first = await http.get("/static/bugstream.js")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"

    again = await http.get("/static/bugstream.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other = await http.get("/static/bugstream.js", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200


async def test_head_gives_the_headers_without_the_body(http: httpx.AsyncClient) -> None:
    response = await http.head("/")

    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) == len(WEB.joinpath("index.html").read_bytes())


@pytest.mark.parametrize(
    "path",
    ["/static/nope.js", "/static/routes.py", "/static/__init__.py", "/static/..%2Fapp.py"],
)
async def test_only_the_browser_files_are_served(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)

    assert response.status_code == 404
    assert response.json()["type"] == "error"
    assert response.json()["payload"]["code"] == "not_found"


async def test_the_pages_are_not_part_of_the_api_schema(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]

    assert "/" not in paths
    assert not any(p.startswith("/static") for p in paths)


@pytest.mark.parametrize("name", ["bugstream.js", "board.js"])
def test_scripts_never_parse_data_as_html(name: str) -> None:
    source = WEB.joinpath(name).read_text(encoding="utf-8")

    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, f"{name} uses {sink}"
