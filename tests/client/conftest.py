"""Fixtures of the SDK's tests."""

from __future__ import annotations

import pytest

from bugstream.client import Transport


@pytest.fixture(params=["websocket", "sse"])
def transport(request: pytest.FixtureRequest) -> Transport:
    """The SDK's transport: live tests taking this run once over `/ws` and once over the SSE
    fallback (`GET /api/v1/events/stream`), which must behave the same to the application."""
    value: Transport = request.param
    return value
