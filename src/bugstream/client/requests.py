"""Commands waiting for their answer, by request id.

Each remembers the connection (generation) it went out on: when that connection closes, its
commands fail with `ConnectionLost` (the server may or may not have run them), while commands
already sent on a newer connection wait on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed

from bugstream.client.errors import ConnectionLost, error_from_payload
from bugstream.client.transport import Link
from bugstream.client.wire import encode
from bugstream.domain.errors import ErrorCode
from bugstream.domain.protocol import ClientMessage

#: Waits for an open connection: (the socket, its generation).
Connected = Callable[[], Awaitable[tuple[Link, int]]]


@dataclass(slots=True)
class Pending:
    future: asyncio.Future[Any]
    command: str
    generation: int


class PendingRequests:
    def __init__(self, max_bytes: Callable[[], int | None] = lambda: None) -> None:
        self._waiting: dict[str, Pending] = {}
        #: The server's limit on a message (from the welcome), checked before sending.
        self._max_bytes = max_bytes

    def __contains__(self, request_id: object) -> bool:
        return isinstance(request_id, str) and request_id in self._waiting

    def add(self, request_id: str, command: str, generation: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = Pending(future, command, generation)
        return future

    async def call(self, connected: Connected, message: dict[str, Any]) -> Any:
        """Send a command once a connection is open and wait for its answer; a send that
        fails because the connection just closed waits for the next one (it never went out)."""
        request_id, command, text = message["request_id"], message["type"], encode(message)
        while True:
            ws, generation = await connected()
            too_large(text, self._max_bytes(), request_id)
            future = self.add(request_id, command, generation)
            try:
                try:
                    await ws.send(text)
                except ConnectionClosed:
                    continue
                return await future
            finally:
                self.discard(request_id)

    def discard(self, request_id: str) -> None:
        self._waiting.pop(request_id, None)

    def answer(self, request_id: Any, result: Any, error: BaseException | None) -> None:
        pending = self._waiting.get(request_id) if isinstance(request_id, str) else None
        if pending is None or pending.future.done():
            return
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(result)

    def connection_lost(self, generation: int) -> None:
        """The connection `generation` closed: fail what was sent on it."""
        for request_id, pending in list(self._waiting.items()):
            if pending.generation == generation:
                _fail(request_id, pending, ConnectionLost(pending.command, request_id))

    def fail_all(self, error: BaseException | None) -> None:
        """The session is over: fail everything with `error` (or `ConnectionLost`)."""
        for request_id, pending in list(self._waiting.items()):
            _fail(request_id, pending, error or ConnectionLost(pending.command, request_id))


def _fail(request_id: str, pending: Pending, error: BaseException) -> None:
    if pending.future.done():
        return
    if pending.command == ClientMessage.AUTH:
        pending.future.cancel()  # its refresh task is being cancelled too
    else:
        pending.future.set_exception(error)


def too_large(text: str, limit: int | None, request_id: str) -> None:
    """Refuse here what the server would refuse (`message_too_large`): its answer to an
    oversized message cannot name the request, which then waited for its timeout."""
    size = len(text.encode())
    if limit is not None and size > limit:
        raise error_from_payload(
            {
                "code": ErrorCode.MESSAGE_TOO_LARGE.value,
                "message": f"the message is {size} bytes; the server takes at most {limit}",
                "request_id": request_id,
                "size": size,
                "limit": limit,
            }
        )
