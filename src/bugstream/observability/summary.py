"""A periodic performance summary line: connections, message rates, latency percentiles."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bugstream.background import BackgroundLoop
from bugstream.observability.metrics import PrometheusTelemetry

log = logging.getLogger("bugstream.performance")


class PerformanceSummary(BackgroundLoop):
    def __init__(
        self,
        telemetry: PrometheusTelemetry,
        *,
        connections: Callable[[], int],
        relay_lag: Callable[[], int],
        socket_writes: Callable[[], tuple[int, int]] = lambda: (0, 0),
        interval: float = 60.0,
    ) -> None:
        super().__init__(
            "bugstream-performance-summary",
            self._log_line,
            interval=interval,
            log=log,
            failure="performance summary failed",
            first_after_interval=True,
        )
        self._telemetry = telemetry
        self._connections = connections
        self._relay_lag = relay_lag
        self._socket_writes = socket_writes
        self._last = (time.monotonic(), 0, 0)
        self._last_writes = socket_writes()

    def line(self) -> dict[str, object]:
        """The summary's fields, measured since the previous call."""
        now = time.monotonic()
        totals = self._telemetry.totals
        then, last_in, last_out = self._last
        elapsed = max(now - then, 1e-9)
        self._last = (now, totals["in"], totals["out"])
        p50, p99, top = self._telemetry.window.percentiles(now, 0.5, 0.99, 1.0)
        writes, frames = self._socket_writes()
        last_writes, last_frames = self._last_writes
        self._last_writes = (writes, frames)
        return {
            "connections": self._connections(),
            "messages_in_per_s": round((totals["in"] - last_in) / elapsed, 2),
            "messages_out_per_s": round((totals["out"] - last_out) / elapsed, 2),
            "latency_p50_ms": None if p50 is None else round(p50 * 1000, 3),
            "latency_p99_ms": None if p99 is None else round(p99 * 1000, 3),
            "latency_max_ms": None if top is None else round(top * 1000, 3),
            "relay_lag_events": self._relay_lag(),
            # Coalescing: frames per socket write (1 when idle, more under load); None when
            # nothing was written.
            "frames_per_write": (
                round((frames - last_frames) / (writes - last_writes), 2)
                if writes > last_writes
                else None
            ),
        }

    async def _log_line(self) -> None:
        log.info("performance summary", extra=self.line())
