"""What the gateway reports about itself. The composition root plugs in an implementation
(observability.metrics.PrometheusTelemetry); the core only calls these methods, at most once
per connection event, inbound message, dispatched event or flush pass: never per recipient.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Telemetry(Protocol):
    def connection_opened(self) -> None: ...

    def connection_refused(self, reason: str) -> None: ...

    def connection_closed(self, reason: str) -> None: ...

    def auth_failed(self, code: str) -> None: ...

    def message_in(self, kind: str) -> None: ...

    def message_out(self, kind: str, count: int) -> None: ...

    def error(self, code: str) -> None: ...

    def rate_limit_hit(self) -> None: ...

    def events_dropped(self, reason: str, count: int) -> None: ...

    def delivered(self, latencies: Iterable[float]) -> None: ...

    def replay(self, count: int, resync: bool) -> None: ...


class NullTelemetry:
    """Reports nowhere (tests, embedding)."""

    def connection_opened(self) -> None:
        pass

    def connection_refused(self, reason: str) -> None:
        pass

    def connection_closed(self, reason: str) -> None:
        pass

    def auth_failed(self, code: str) -> None:
        pass

    def message_in(self, kind: str) -> None:
        pass

    def message_out(self, kind: str, count: int) -> None:
        pass

    def error(self, code: str) -> None:
        pass

    def rate_limit_hit(self) -> None:
        pass

    def events_dropped(self, reason: str, count: int) -> None:
        pass

    def delivered(self, latencies: Iterable[float]) -> None:
        pass

    def replay(self, count: int, resync: bool) -> None:
        pass
