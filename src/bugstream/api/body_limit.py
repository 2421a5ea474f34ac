"""Reject request bodies over the configured size before anything reads them."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bugstream.api.errors import error_response
from bugstream.domain.errors import ErrorCode


class BodyTooLarge(HTTPException):
    """Raised by `receive` once the body passes the limit.

    An `HTTPException` (413) because FastAPI's body reader re-raises those but turns any other
    error into `400 There was an error parsing the body`; the API's handler then answers
    `413 message_too_large`.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body exceeds {max_bytes} bytes")


class BodyLimitMiddleware:
    """HTTP bodies larger than `max_bytes` get `413 message_too_large`.

    Checks the declared Content-Length first, then counts what actually arrives (a chunked
    body has no Content-Length).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            ErrorCode.MESSAGE_TOO_LARGE, f"request body exceeds {self.max_bytes} bytes"
        )
        await response(scope, receive, send)
