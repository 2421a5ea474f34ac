"""Each connection's async work (commands, subscriptions, replays), one item at a time.

A client's messages are handled in the order they arrived: a command sent after a `resume`
runs after the replay, an `unsubscribe` after the `subscribe` before it. Work of different
connections runs concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from bugstream.domain.errors import BugstreamError, ErrorCode
from bugstream.gateway.connection import Connection
from bugstream.gateway.messages import RequestId

log = logging.getLogger("bugstream.gateway")

Work = Coroutine[Any, Any, None]
ReportError = Callable[[Connection, BugstreamError, RequestId], None]


class ConnectionWork:
    def __init__(self, report_error: ReportError) -> None:
        self._report_error = report_error
        self._queues: dict[Connection, deque[tuple[RequestId, Work]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def queue(self, conn: Connection, request_id: RequestId, work: Work) -> None:
        """Run `work` after the connection's earlier work; its error answers `request_id`."""
        queue = self._queues.get(conn)
        if queue is not None:
            queue.append((request_id, work))
            return
        self._queues[conn] = deque([(request_id, work)])
        task = asyncio.create_task(self._drain(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, conn: Connection) -> None:
        queue = self._queues[conn]
        try:
            while queue:
                request_id, work = queue.popleft()
                try:
                    await work
                except BugstreamError as exc:
                    self._report_error(conn, exc, request_id)
                except Exception:
                    log.exception("command failed")
                    error = BugstreamError("internal error", code=ErrorCode.INTERNAL_ERROR)
                    self._report_error(conn, error, request_id)
        finally:
            for _, work in queue:
                work.close()
            del self._queues[conn]

    def drop(self, conn: Connection) -> None:
        """The connection closed: its work not yet started never runs."""
        queue = self._queues.get(conn)
        if queue is not None:
            for _, work in queue:
                work.close()
            queue.clear()

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
