"""The bugstream Python SDK: a reconnecting, resuming WebSocket client.

    from bugstream.client import Client

    async with Client("ws://localhost:8000/ws", token=token) as client:
        async for event in client.events():
            print(event.event_id, event.name, event.payload)

It needs only the shared domain (`bugstream.domain`: pydantic models and codes) and the
`websockets` library, never the server's dependencies. docs/integration.md is the guide.
"""

from __future__ import annotations

from bugstream.client.backoff import Backoff
from bugstream.client.client import Client
from bugstream.client.delivery import Handler, ResyncHandler, SkippedHandler
from bugstream.client.errors import (
    ClientClosed,
    ClientError,
    CommandError,
    CommandTimeout,
    ConnectionLost,
    ConnectionRejected,
    ReconnectFailed,
    ResyncRequired,
    TokenExpired,
    error_from_payload,
)
from bugstream.client.events import Event, EventPayload, RawPayload, Skipped, parse_event
from bugstream.client.history import EventsPage, fetch_events, history
from bugstream.client.presence import (
    Presence,
    PresenceCallback,
    PresenceChange,
    PresenceResyncCallback,
)
from bugstream.client.state import ConnectionState, Phase, StateCallback
from bugstream.client.subscription import Subscription, Subscriptions
from bugstream.client.tokens import TokenProvider
from bugstream.client.transport import Transport
from bugstream.domain.errors import (
    AuthError,
    BugstreamError,
    Conflict,
    ErrorCode,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from bugstream.domain.events import EventName, EventType
from bugstream.domain.models import BugReport, Comment, Membership, Notification, Project, User
from bugstream.domain.protocol import CloseCode, Command

__all__ = [
    "AuthError",
    "Backoff",
    "BugReport",
    "BugstreamError",
    "Client",
    "ClientClosed",
    "ClientError",
    "CloseCode",
    "Command",
    "CommandError",
    "CommandTimeout",
    "Comment",
    "Conflict",
    "ConnectionLost",
    "ConnectionRejected",
    "ConnectionState",
    "ErrorCode",
    "Event",
    "EventName",
    "EventPayload",
    "EventType",
    "EventsPage",
    "Forbidden",
    "Handler",
    "Membership",
    "NotFound",
    "Notification",
    "Phase",
    "Presence",
    "PresenceCallback",
    "PresenceChange",
    "PresenceResyncCallback",
    "Project",
    "RawPayload",
    "ReconnectFailed",
    "ResyncHandler",
    "ResyncRequired",
    "Skipped",
    "SkippedHandler",
    "StateCallback",
    "Subscription",
    "Subscriptions",
    "TokenExpired",
    "TokenProvider",
    "Transport",
    "User",
    "ValidationFailed",
    "error_from_payload",
    "fetch_events",
    "history",
    "parse_event",
]
