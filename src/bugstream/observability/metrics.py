"""Prometheus metrics (prometheus_client), each on a registry of its own per application.

Counters are incremented by `PrometheusTelemetry` (the gateway's `Telemetry`); gauges that
describe current state (connections, queues, relay lag, database pool) are read at scrape
time from the live objects through `StateCollector`, so nothing is updated on the hot path.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# `<counter>_created` series double the count of series and say nothing a restart does not.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LatencyWindow:
    """The delivery latencies of the last `seconds`, for percentiles in the summary line."""

    def __init__(self, seconds: float = 60.0, max_samples: int = 100_000) -> None:
        self._seconds = seconds
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)

    def add(self, latency: float, now: float) -> None:
        self._samples.append((now, latency))

    def percentiles(self, now: float, *qs: float) -> list[float | None]:
        while self._samples and now - self._samples[0][0] > self._seconds:
            self._samples.popleft()
        values = sorted(latency for _t, latency in self._samples)
        if not values:
            return [None for _ in qs]
        return [values[min(len(values) - 1, int(q * len(values)))] for q in qs]


class PrometheusTelemetry:
    """Implements the gateway's `Telemetry` protocol with Prometheus counters."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.connects = Counter(
            "bugstream_ws_connects",
            "WebSocket connections opened or refused",
            ["result"],
            registry=registry,
        )
        self.disconnects = Counter(
            "bugstream_ws_disconnects",
            "WebSocket connections closed, by reason",
            ["reason"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "bugstream_auth_failures",
            "Rejected tokens and logins, by error code",
            ["code"],
            registry=registry,
        )
        self.messages_in = Counter(
            "bugstream_ws_messages_in",
            "Messages received from clients, by type",
            ["type"],
            registry=registry,
        )
        self.messages_out = Counter(
            "bugstream_ws_messages_out",
            "Messages queued to clients, by type",
            ["type"],
            registry=registry,
        )
        self.errors = Counter(
            "bugstream_errors",
            "Errors answered to clients (REST and WS), by code",
            ["code"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "bugstream_ws_rate_limited",
            "Inbound messages refused by the rate limit",
            registry=registry,
        )
        self.dropped = Counter(
            "bugstream_ws_dropped",
            "Events not sent to a lagging client, by reason",
            ["reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "bugstream_delivery_latency_seconds",
            "Outbox commit to frame written to the socket",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.replayed = Counter(
            "bugstream_ws_replayed_events",
            "Events sent from the replay window on resume",
            registry=registry,
        )
        self.resyncs = Counter(
            "bugstream_ws_resyncs",
            "Resumes too old for the window (resync_required)",
            registry=registry,
        )
        self.window = LatencyWindow()
        self.totals = {"in": 0, "out": 0}

    # Telemetry protocol -----------------------------------------------------------------

    def connection_opened(self) -> None:
        self.connects.labels("accepted").inc()

    def connection_refused(self, reason: str) -> None:
        self.connects.labels(reason).inc()

    def connection_closed(self, reason: str) -> None:
        self.disconnects.labels(reason).inc()

    def auth_failed(self, code: str) -> None:
        self.auth_failures.labels(code).inc()

    def message_in(self, kind: str) -> None:
        self.messages_in.labels(kind).inc()
        self.totals["in"] += 1

    def message_out(self, kind: str, count: int) -> None:
        self.messages_out.labels(kind).inc(count)
        self.totals["out"] += count

    def error(self, code: str) -> None:
        self.errors.labels(code).inc()

    def rate_limit_hit(self) -> None:
        self.rate_limited.inc()

    def events_dropped(self, reason: str, count: int) -> None:
        self.dropped.labels(reason).inc(count)

    def delivered(self, latencies: Iterable[float]) -> None:
        now = time.monotonic()
        observe = self.latency.observe
        for latency in latencies:
            observe(latency)
            self.window.add(latency, now)

    def replay(self, count: int, resync: bool) -> None:
        self.replayed.inc(count)
        if resync:
            self.resyncs.inc()


@dataclass
class StateSources:
    """Callables read at scrape time; each returns the current value."""

    connections: Callable[[], int]
    connections_limit: Callable[[], int]
    queued_bytes: Callable[[], tuple[int, int]]  # (total, largest)
    relay_lag: Callable[[], int]
    relay_published: Callable[[], int]
    pool: Callable[[], tuple[int, int, int]]  # (size, max overflow, checked out)
    capture_oldest_pending: Callable[[], float]
    socket_writes: Callable[[], tuple[int, int]]  # (writes, frames they carried)
    #: (SSE streams among the connections, connections that receive presence messages)
    stream_kinds: Callable[[], tuple[int, int]]


class StateCollector(Collector):
    def __init__(self, sources: StateSources) -> None:
        self._sources = sources

    def collect(self) -> Iterable[Metric]:
        s = self._sources
        yield GaugeMetricFamily(
            "bugstream_ws_connections",
            "Connections open on this instance (WebSockets and SSE streams)",
            value=s.connections(),
        )
        streams, following_presence = s.stream_kinds()
        yield GaugeMetricFamily(
            "bugstream_sse_streams",
            "SSE streams (the WebSocket fallback) open on this instance; "
            "bugstream_ws_connections counts them too",
            value=streams,
        )
        yield GaugeMetricFamily(
            "bugstream_presence_connections",
            "Connections on this instance that receive presence messages (they opted in)",
            value=following_presence,
        )
        yield GaugeMetricFamily(
            "bugstream_ws_connections_limit",
            "The most WebSocket connections this instance accepts (BUGSTREAM_WS_MAX_CONNECTIONS)",
            value=s.connections_limit(),
        )
        total, largest = s.queued_bytes()
        yield GaugeMetricFamily(
            "bugstream_ws_outbound_queue_bytes",
            "Bytes waiting to be sent to clients on this instance (ours + transport buffers)",
            value=total,
        )
        yield GaugeMetricFamily(
            "bugstream_ws_outbound_queue_max_bytes",
            "The largest outbound backlog of one connection",
            value=largest,
        )
        yield GaugeMetricFamily(
            "bugstream_relay_lag_events",
            "Newest committed event id minus newest published to the bus",
            value=s.relay_lag(),
        )
        yield GaugeMetricFamily(
            "bugstream_relay_published_event_id",
            "Newest event id the relay published",
            value=s.relay_published(),
        )
        size, overflow, used = s.pool()
        yield GaugeMetricFamily(
            "bugstream_db_pool_size", "Database connection pool size", value=size
        )
        yield GaugeMetricFamily(
            "bugstream_db_pool_max_overflow",
            "Connections the pool may open beyond its size under load",
            value=overflow,
        )
        yield GaugeMetricFamily(
            "bugstream_db_pool_checked_out", "Database connections in use", value=used
        )
        writes, frames = s.socket_writes()
        yield CounterMetricFamily(
            "bugstream_ws_socket_writes",
            "Socket writes of the fan-out (each carries every frame pending for one client)",
            value=writes,
        )
        yield CounterMetricFamily(
            "bugstream_ws_frames_written",
            "Frames (events and replies) those writes carried; frames per write = "
            "rate(bugstream_ws_frames_written_total) / rate(bugstream_ws_socket_writes_total)",
            value=frames,
        )
        yield GaugeMetricFamily(
            "bugstream_capture_oldest_pending_seconds",
            "Age of the oldest outside database change not yet turned into events "
            "(PostgreSQL change capture; 0 when none is pending, always 0 on SQLite)",
            value=s.capture_oldest_pending(),
        )
