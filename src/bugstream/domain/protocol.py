"""The `/ws` protocol vocabulary shared by the server and the SDK: message types, commands
and close codes.

Every message is a JSON object `{"type": ..., "payload": {...}}` (the spec's format). Events
add `"event"` and `"event_id"`; commands add a client-chosen `"request_id"`, which the answer
(`ack` or `error`) carries back in its payload. docs/websocket.md and docs/asyncapi.yaml
describe each message.

Close codes come in ranges whose meaning clients obey (docs/errors.md):

- 1000-1015: the standard codes. 1001 (server going away) means: reconnect and resume.
- 4000-4099: **do not reconnect** with the same credentials (the token is bad or expired, the
  account is gone or suspended, the client is blocked). A client with a way to get a new token
  may try once more with it.
- 4100-4199: **reconnect** with backoff, resuming from the last event id.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    # Do not reconnect with the same credentials.
    INVALID_TOKEN = 4001
    TOKEN_EXPIRED = 4002
    FORBIDDEN = 4003
    BLOCKED = 4004
    # Reconnect with backoff and resume.
    HEARTBEAT_TIMEOUT = 4100
    SLOW_CONSUMER = 4101
    TOO_MANY_CONNECTIONS = 4102
    SERVER_FULL = 4103


def is_terminal(code: int) -> bool:
    """Whether a close code tells the client not to reconnect with the same credentials."""
    return 4000 <= code < 4100 or code in (CloseCode.PROTOCOL_ERROR, CloseCode.POLICY_VIOLATION)


def needs_new_token(code: int) -> bool:
    """Whether a new token (from a token provider) makes reconnecting worthwhile again."""
    return code in (CloseCode.INVALID_TOKEN, CloseCode.TOKEN_EXPIRED)


class ServerMessage(StrEnum):
    """`type` of messages the server sends (events use their entity type instead)."""

    WELCOME = "welcome"
    ACK = "ack"
    ERROR = "error"
    PONG = "pong"
    SUBSCRIBED = "subscribed"
    RESYNC_REQUIRED = "resync_required"
    SKIPPED = "skipped"
    #: who is online / viewing a bug report (no event_id: state, not history)
    PRESENCE = "presence"


class ClientMessage(StrEnum):
    """`type` of messages a client sends that are not commands."""

    AUTH = "auth"
    PING = "ping"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    RESUME = "resume"
    #: the bug report this connection is viewing (`bug_report_id`: null for none)
    PRESENCE_VIEW = "presence.view"


class Command(StrEnum):
    """Actions a client may perform over the socket; each maps to one service function."""

    BUG_REPORT_CREATE = "bug_report.create"
    BUG_REPORT_UPDATE = "bug_report.update"
    BUG_REPORT_DELETE = "bug_report.delete"
    BUG_REPORT_CHANGE_STATUS = "bug_report.change_status"
    BUG_REPORT_ASSIGN = "bug_report.assign"
    BUG_REPORT_UNASSIGN = "bug_report.unassign"
    COMMENT_CREATE = "comment.create"
    COMMENT_UPDATE = "comment.update"
    COMMENT_DELETE = "comment.delete"
    NOTIFICATION_MARK_READ = "notification.mark_read"
    NOTIFICATION_MARK_ALL_READ = "notification.mark_all_read"


#: Longest `request_id` a client may send.
REQUEST_ID_MAX = 64
