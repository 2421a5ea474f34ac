"""The live server and raw WebSocket client of `bugstream.testing.live`, under the names the
project's tests use (`Client` is `StreamClient`)."""

from bugstream.testing.live import (
    TEST_SECRET,
    TIMEOUT,
    LiveServer,
    StreamClient,
    live_server,
    live_settings,
    pong,
    refused,
)

Client = StreamClient

__all__ = [
    "TEST_SECRET",
    "TIMEOUT",
    "Client",
    "LiveServer",
    "StreamClient",
    "live_server",
    "live_settings",
    "pong",
    "refused",
]
