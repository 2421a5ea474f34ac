"""/docs works offline (issue 13.5): Swagger UI comes from bugstream itself, not a CDN.

Chromium opens /docs with every request that leaves the server's origin refused, and must
render every operation of /openapi.json and run one ("Try it out") against the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from bugstream.web.api_docs import SWAGGER_UI_FILES
from tests.web.browser import chromium
from tests.web.server import Site

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Route


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = Site(tmp_path_factory.mktemp("docs") / "site")
    site.data_dir.mkdir()
    site.start()
    yield site
    site.stop()


def test_docs_render_every_operation_with_nothing_from_elsewhere(
    browser: Browser, site: Site
) -> None:
    elsewhere: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(site.url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    schema = httpx.get(f"{site.url}/openapi.json").json()
    operations = sum(len(item) for item in schema["paths"].values())
    page = browser.new_page()
    page.route("**/*", only_the_server)
    page.goto(f"{site.url}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    rendered = page.locator(".opblock").count()

    # Try one: the unauthenticated GET /api/v1/users/me answers 401 in bugstream's shape.
    page.locator("#operations-users-me_api_v1_users_me_get .opblock-summary").click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    page.wait_for_selector(".live-responses-table .response-col_status", timeout=10_000)
    answer = page.locator(".live-responses-table").inner_text()
    page.close()

    assert elsewhere == []
    assert rendered == operations
    assert "401" in answer and "invalid_token" in answer


def test_the_swagger_ui_files_are_served_and_licensed(site: Site) -> None:
    for name, media_type in SWAGGER_UI_FILES.items():
        response = httpx.get(f"{site.url}/static/swagger-ui/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == media_type
    version = httpx.get(f"{site.url}/static/swagger-ui/VERSION").text.strip()
    assert version.split(".")[0] == "5"  # 4.x cannot render OpenAPI 3.1, which FastAPI writes
    assert "Apache License" in httpx.get(f"{site.url}/static/swagger-ui/LICENSE").text
    assert httpx.get(f"{site.url}/static/swagger-ui/nothing.js").status_code == 404
    assert httpx.get(f"{site.url}/redoc").status_code == 404


def test_the_vendored_files_are_the_ones_the_script_names() -> None:
    """scripts/vendor_swagger_ui.sh writes what SWAGGER_UI_FILES serves, and nothing else."""
    vendored = Path(__file__).parents[2] / "src" / "bugstream" / "web" / "swagger-ui"
    script = (Path(__file__).parents[2] / "scripts" / "vendor_swagger_ui.sh").read_text()
    on_disk = {p.name for p in vendored.iterdir()}
    assert on_disk == set(SWAGGER_UI_FILES)
    for name in on_disk - {"VERSION"}:
        assert name in script
