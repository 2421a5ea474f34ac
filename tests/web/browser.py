"""Headless Chromium for the browser tests: Debian's `/usr/bin/chromium` driven by Playwright.

Browsers are never downloaded (`playwright install` is not used): the tests need the system
Chromium (`apt-get install chromium`) and the `playwright` package (a dev dependency). Without
either they skip with a message, except under `BUGSTREAM_REQUIRE_SERVICES=1` (CI), where that
is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tests.conftest import skip_or_fail

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path(os.environ.get("BUGSTREAM_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed afterwards; skips (or fails in CI) when unavailable."""
    if not CHROMIUM.exists():
        skip_or_fail(
            f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium); "
            "set BUGSTREAM_TEST_CHROMIUM to use another binary"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("browser tests need the playwright package (uv sync installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()
