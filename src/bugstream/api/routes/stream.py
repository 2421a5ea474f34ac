"""GET /events/stream: the event stream as Server-Sent Events, where WebSockets are blocked;
POST /events/stream/{connection_id}: a client message for that stream (commands, ping, auth,
subscribe), answered on the stream as `/ws` answers it.

The stream is a gateway connection like any socket (gateway/sse.py): the same authentication
(a bearer token or a single-use ticket), the same per-user connection limit, audiences,
replay and backlog bounds. What `/ws` would refuse with a close code, this refuses with the
HTTP status of the error (401, 403, 429, 503) before any byte is streamed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Protocol

from fastapi import Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from bugstream.api.deps import CurrentActor
from bugstream.api.error_responses import errors, resource_router
from bugstream.api.errors import error_response
from bugstream.domain.errors import BugstreamError, ErrorCode, NotFound

router = resource_router("/events", "events")

_STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx and other proxies must pass events on at once, not buffer the response.
    "X-Accel-Buffering": "no",
}


class EventStreams(Protocol):
    """What these routes need of the gateway (`bugstream.gateway.Gateway`), which the API
    does not import: the gateway owns connections; this module only speaks HTTP."""

    async def open_stream(
        self, *, path: str, query: dict[str, str], headers: dict[str, str], peer: str, tls: bool
    ) -> AsyncIterator[bytes] | BugstreamError: ...

    def stream_message(self, user_id: int, connection_id: str, data: bytes) -> bool: ...


def _streams(request: Request) -> EventStreams:
    streams: EventStreams | None = request.app.state.runtime.gateway
    if streams is None:
        raise NotFound("the event stream is not running")
    return streams


@router.get(
    "/stream",
    summary="The event stream as Server-Sent Events (the fallback for /ws)",
    response_class=StreamingResponse,
    # A bearer token, or instead a ticket in the query (a browser's EventSource sets no header).
    openapi_extra={"security": [{"HTTPBearer": []}]},
    responses={
        200: {
            "description": "`text/event-stream`: `/ws`'s messages as `data:`, events with "
            "their id as `id:`, heartbeats as comments, a server close as `event: close`",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **errors(
            ErrorCode.INVALID_TOKEN,
            ErrorCode.TOKEN_EXPIRED,
            ErrorCode.FORBIDDEN,
            ErrorCode.TOO_MANY_CONNECTIONS,
            ErrorCode.BLOCKED,
            ErrorCode.SERVICE_UNAVAILABLE,
        ),
    },
)
async def stream(
    request: Request,
    ticket: Annotated[
        str | None, Query(description="A single-use ticket (POST /auth/ws-ticket)")
    ] = None,
    last_event_id: Annotated[
        int | None, Query(ge=0, description="Resume after this event id")
    ] = None,
    last_event_id_header: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, description="What EventSource sends to resume"),
    ] = None,
) -> Response:
    """Authenticated like `/ws`: `Authorization: Bearer <token>` or `?ticket=`."""
    query = dict(request.query_params)  # the ticket (or ?token=) is read by the gateway
    del ticket
    resume = last_event_id if last_event_id is not None else last_event_id_header
    if resume is not None:
        query["last_event_id"] = str(resume)
    opened = await _streams(request).open_stream(
        path=request.url.path,
        query=query,
        headers={name.lower(): value for name, value in request.headers.items()},
        peer=request.client.host if request.client else "unknown",
        tls=request.url.scheme == "https",
    )
    if isinstance(opened, BugstreamError):
        return error_response(opened.code, opened.message, **opened.details)
    return StreamingResponse(opened, media_type="text/event-stream", headers=_STREAM_HEADERS)


class ClientMessage(BaseModel):
    """A message as a client sends it on `/ws` (docs/websocket.md)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1, max_length=64, description="ping, auth, subscribe, ...")
    payload: dict[str, Any] | None = None
    request_id: str | int | None = None


@router.post(
    "/stream/{connection_id}",
    status_code=202,
    summary="Send a message on an SSE stream: its answer arrives on the stream",
    responses=errors(ErrorCode.NOT_FOUND),
)
async def send_message(
    request: Request, actor: CurrentActor, connection_id: str, message: ClientMessage
) -> Response:
    """The same messages as on `/ws`, with the same rate limit and answers (`ack`, `error`,
    `pong`, ...), which arrive on the stream with the message's `request_id`. The stream must
    be open on the instance that answers (behind a load balancer: sticky sessions for
    `/api/v1/events/stream`, docs/deployment.md)."""
    del message  # validated for the schema; the gateway reads the body as /ws reads a frame
    data = await request.body()
    if not _streams(request).stream_message(actor.user_id, connection_id[:64], data):
        raise NotFound("no such stream open here")
    return Response(status_code=202)
