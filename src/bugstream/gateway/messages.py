"""Inbound message parsing and outbound message building (no I/O).

Inbound: a JSON object `{"type": str, "payload": object?, "request_id": str|int?}` of at most
`max_bytes`. Anything else is answered with a documented error and the connection stays open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from bugstream.domain.errors import BugstreamError, ErrorCode
from bugstream.domain.protocol import REQUEST_ID_MAX, ServerMessage
from bugstream.gateway.frames import json_frame

RequestId = str | int | None


@dataclass(frozen=True, slots=True)
class Inbound:
    type: str
    payload: dict[str, Any]
    request_id: RequestId


class MessageError(BugstreamError):
    """A message that cannot be handled; carries the request id when one could be read."""

    def __init__(self, code: ErrorCode, message: str, request_id: RequestId = None) -> None:
        super().__init__(message, code=code)
        self.request_id = request_id


def _request_id(message: dict[str, Any]) -> RequestId:
    value = message.get("request_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MessageError(ErrorCode.INVALID_MESSAGE_FORMAT, "request_id must be a string or int")
    if isinstance(value, str) and len(value) > REQUEST_ID_MAX:
        raise MessageError(
            ErrorCode.INVALID_MESSAGE_FORMAT, f"request_id is longer than {REQUEST_ID_MAX}"
        )
    return value


def parse(data: bytes | str, max_bytes: int) -> Inbound:
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise MessageError(
            ErrorCode.MESSAGE_TOO_LARGE, f"message is {size} bytes; the limit is {max_bytes}"
        )
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise MessageError(ErrorCode.INVALID_MESSAGE_FORMAT, "message is not valid JSON") from None
    if not isinstance(message, dict):
        raise MessageError(ErrorCode.INVALID_MESSAGE_FORMAT, "message must be a JSON object")
    request_id = _request_id(message)
    kind = message.get("type")
    if not isinstance(kind, str) or not kind:
        raise MessageError(
            ErrorCode.INVALID_MESSAGE_FORMAT, "message needs a string `type`", request_id
        )
    payload = message.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise MessageError(
            ErrorCode.INVALID_MESSAGE_FORMAT, "`payload` must be a JSON object", request_id
        )
    return Inbound(kind, payload, request_id)


def server_time() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def error_frame(error: BugstreamError, request_id: RequestId = None) -> bytes:
    payload = error.to_payload()
    if request_id is not None:
        payload["request_id"] = request_id
    return json_frame({"type": ServerMessage.ERROR.value, "payload": payload})


def ack_frame(request_id: RequestId, command: str, result: Any) -> bytes:
    return json_frame(
        {
            "type": ServerMessage.ACK.value,
            "payload": {"request_id": request_id, "command": command, "result": result},
        }
    )


def message_frame(kind: ServerMessage, payload: dict[str, Any]) -> bytes:
    return json_frame({"type": kind.value, "payload": payload})
