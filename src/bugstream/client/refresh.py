"""Token refresh on an open connection: a fresh token from the provider is sent as an `auth`
message ahead of expiry (when, `TokenKeeper.refresh_delay` says), so the connection never has
to close for it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from websockets.exceptions import ConnectionClosed

from bugstream.client.errors import ClientError, ConnectionLost
from bugstream.client.requests import PendingRequests
from bugstream.client.tokens import TokenKeeper
from bugstream.client.transport import Link
from bugstream.client.wire import encode, parse_time
from bugstream.domain.errors import BugstreamError
from bugstream.domain.protocol import ClientMessage

log = logging.getLogger("bugstream.client")


async def refresh_on_connection(
    tokens: TokenKeeper,
    ws: Link,
    pending: PendingRequests,
    generation: int,
    *,
    request_id: Callable[[], str],
    answer_within: float,
    connection_id: str | None,
) -> None:
    """Send fresh tokens on this connection before the current one expires; returns when the
    expiry is unknown or past (the server then closes with 4002 and the client reconnects)
    or the connection is gone."""
    while True:
        left = tokens.seconds_left()
        if left is None or left <= 0:
            return
        await asyncio.sleep(tokens.refresh_delay(left))
        try:
            token = await tokens.call_provider()
        except Exception as exc:
            log.warning("the token provider failed: %s; will retry", exc)
            continue
        if token == tokens.token:
            log.warning("the token provider returned the token in use; will retry")
            continue
        rid = request_id()
        future = pending.add(rid, ClientMessage.AUTH.value, generation)
        message = {"type": ClientMessage.AUTH.value, "request_id": rid, "payload": {"token": token}}
        try:
            await ws.send(encode(message))
            async with asyncio.timeout(answer_within):
                result = await future
        except (ConnectionClosed, ConnectionLost, ClientError):
            return
        except BugstreamError as exc:
            log.warning("the server refused the new token: %s", exc)
            continue
        except TimeoutError:
            log.warning("no answer to the token refresh; will retry")
            continue
        finally:
            pending.discard(rid)
        expires = parse_time(result.get("token_expires_at")) if isinstance(result, dict) else None
        tokens.accepted(token, expires)
        log.info("token refreshed on connection %s", connection_id)
