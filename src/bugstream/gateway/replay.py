"""Resuming: what a client missed, replayed before its live events, with no gap and no
duplicate, as the client drains it (`?last_event_id=` at connect, or a `resume` message)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bugstream.bus.base import GapError
from bugstream.domain.errors import Conflict, ErrorCode, FieldError, ValidationFailed
from bugstream.domain.protocol import ClientMessage, CloseCode, ServerMessage
from bugstream.gateway.connection import Connection
from bugstream.gateway.hub import Hub
from bugstream.gateway.messages import Inbound, RequestId, ack_frame, message_frame
from bugstream.gateway.replay_cache import ReplayCache
from bugstream.gateway.telemetry import Telemetry
from bugstream.gateway.work import ConnectionWork

log = logging.getLogger("bugstream.gateway")

Revoke = Callable[[Connection, CloseCode, str], None]


class Replayer:
    def __init__(
        self,
        *,
        hub: Hub,
        replays: ReplayCache,
        work: ConnectionWork,
        telemetry: Telemetry,
        revoke: Revoke,
    ) -> None:
        self.hub = hub
        self.replays = replays
        self.work = work
        self.telemetry = telemetry
        self._revoke = revoke

    def on_connect(self, conn: Connection, after_id: int, upto: int) -> None:
        """Queue the replay of a connection opened with `?last_event_id=` (already held)."""
        self.work.queue(conn, None, self.resume(conn, after_id, upto=upto))

    def on_message(self, conn: Connection, message: Inbound) -> None:
        """A `resume` message: allowed only before any event was delivered."""
        after = message.payload.get("last_event_id")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValidationFailed(
                [FieldError("last_event_id", "int", "a non-negative integer is required")]
            )
        if conn.delivered_through or conn.held is not None:
            # Replaying older events now would put them after newer ones already sent.
            raise Conflict(
                "resume must come before any event is delivered; "
                "reconnect with ?last_event_id= instead"
            )
        self.hub.hold(conn)
        resume = self.resume(conn, after, upto=self.hub.position, request_id=message.request_id)
        self.work.queue(conn, message.request_id, resume)

    async def resume(
        self, conn: Connection, after_id: int, *, upto: int, request_id: RequestId = None
    ) -> None:
        """Send every event in (after_id, upto] the client may see, then the held live ones.

        Events after `upto` were held back meanwhile, so the client sees no gap and no
        duplicate. An `after_id` beyond `upto` (this instance is behind the one the client
        left) skips the live events the client already has instead.
        """
        replayed = 0
        resync = False
        try:
            if after_id >= upto:
                conn.skip_through = max(conn.skip_through, after_id)
            else:
                cursor = after_id
                while cursor < upto:
                    batch = await self.replays.after(cursor, upto)
                    if not batch:
                        break
                    for event, item in batch:
                        if event.event_id > upto:
                            break
                        if self.hub.visible(conn, event):
                            # Handed over as the client drains: a client that does not read
                            # holds a write window, not the replay.
                            await self.hub.wait_drained(conn)
                            if conn.closed:
                                return
                            self.hub.send_outgoing(conn, item)
                            conn.delivered_through = event.event_id
                            replayed += 1
                    cursor = batch[-1][0].event_id
        except GapError as gap:
            resync = True
            self.hub.send(conn, _resync_frame(after_id, gap.oldest_retained_id, upto))
            conn.delivered_through = max(conn.delivered_through, upto)
        except Exception:
            # The log is out of reach (e.g. Redis down). Going on with the live events would
            # silently skip the missed ones: close with a reconnect code; the client resumes.
            log.exception("replay failed")
            self._revoke(conn, CloseCode.INTERNAL_ERROR, "replay failed; reconnect and resume")
            return
        finally:
            self.hub.release(conn)
        self.telemetry.replay(replayed, resync)
        if request_id is not None:
            result = {"replayed": replayed, "resync_required": resync, "latest_event_id": upto}
            self.hub.send(conn, ack_frame(request_id, ClientMessage.RESUME.value, result))


def _resync_frame(after_id: int, oldest: int, upto: int) -> bytes:
    return message_frame(
        ServerMessage.RESYNC_REQUIRED,
        {
            "code": ErrorCode.RESYNC_REQUIRED.value,
            "message": "events after last_event_id are no longer kept; "
            "refetch state over REST, then follow the live stream",
            "last_event_id": after_id,
            "oldest_event_id": oldest,
            "latest_event_id": upto,
        },
    )
