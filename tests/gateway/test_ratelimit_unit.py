"""The gateway's limiters on a hand-moved clock: token buckets (message rate) and the abuse
monitor (strikes in a sliding window lead to a temporary block)."""

from __future__ import annotations

import pytest

from bugstream.gateway.abuse import AbuseMonitor
from bugstream.gateway.ratelimit import RateLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ---- token bucket ---------------------------------------------------------------------------


def test_bucket_allows_capacity_then_says_when_to_retry() -> None:
    clock = Clock()
    bucket = TokenBucket(3, 2.0, clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token takes 1 / refill seconds
    assert bucket.take() == pytest.approx(0.5)  # a refused take costs nothing


def test_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(2, 4.0, clock)
    bucket.take()
    bucket.take()
    clock.advance(0.125)  # half a token
    assert bucket.take() == pytest.approx(0.125)
    clock.advance(0.125)
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.25)


def test_waiting_retry_after_is_exactly_enough() -> None:
    clock = Clock()
    bucket = TokenBucket(1, 3.0, clock)
    assert bucket.take() == 0.0
    retry_after = bucket.take()
    assert retry_after > 0
    clock.advance(retry_after)
    assert bucket.take() == 0.0


def test_bucket_never_holds_more_than_its_capacity() -> None:
    clock = Clock()
    bucket = TokenBucket(3, 1.0, clock)
    clock.advance(3600)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() > 0


def test_spec_default_sixty_per_minute() -> None:
    clock = Clock()
    bucket = TokenBucket(60, 1.0, clock)
    assert all(bucket.take() == 0.0 for _ in range(60))
    assert bucket.take() == pytest.approx(1.0)
    clock.advance(30)
    assert sum(bucket.take() == 0.0 for _ in range(40)) == 30


# ---- rate limiter (one bucket per user) ----------------------------------------------------


def test_limiter_keeps_one_budget_per_key() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 1.0, clock)
    assert limiter.take(1) == 0.0
    assert limiter.take(1) == 0.0
    assert limiter.take(1) > 0
    assert limiter.take(2) == 0.0  # another user is not affected


def test_reconnecting_does_not_refill_a_used_budget() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 0.5, clock)
    limiter.take(7)
    limiter.take(7)
    limiter.forget(7)  # the user's last connection closed
    assert limiter.take(7) == pytest.approx(2.0)


def test_forgetting_a_full_budget_keeps_it_full() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 1.0, clock)
    limiter.take(7)
    clock.advance(5)
    limiter.forget(7)
    assert [limiter.take(7) for _ in range(2)] == [0.0, 0.0]
    assert limiter.take(7) > 0


# ---- abuse monitor ----------------------------------------------------------------------------


class Monitor:
    def __init__(self, threshold: int = 3, window: float = 10.0, block: float = 30.0) -> None:
        self.clock = Clock()
        self.reports: list[tuple[str, str, dict[str, object]]] = []
        self.monitor = AbuseMonitor(
            threshold=threshold,
            window=window,
            block_seconds=block,
            clock=self.clock,
            on_security_event=lambda kind, key, details: self.reports.append((kind, key, details)),
        )


def test_threshold_strikes_block_and_fewer_do_not() -> None:
    m = Monitor(threshold=3, block=30)
    assert m.monitor.strike("ip:1.2.3.4", "invalid_token") is False
    assert m.monitor.strike("ip:1.2.3.4", "invalid_token") is False
    assert m.monitor.blocked_for("ip:1.2.3.4") == 0.0
    assert m.monitor.strike("ip:1.2.3.4", "invalid_token") is True
    assert m.monitor.blocked_for("ip:1.2.3.4") == pytest.approx(30)
    # Every strike and the block are reported as security events.
    assert m.reports == [
        ("strike", "ip:1.2.3.4", {"kind": "invalid_token", "count": 1}),
        ("strike", "ip:1.2.3.4", {"kind": "invalid_token", "count": 2}),
        ("strike", "ip:1.2.3.4", {"kind": "invalid_token", "count": 3}),
        ("blocked", "ip:1.2.3.4", {"kind": "invalid_token", "seconds": 30}),
    ]


def test_keys_are_counted_apart() -> None:
    m = Monitor(threshold=2)
    m.monitor.strike("ip:1.1.1.1", "rate_limited")
    m.monitor.strike("user:5", "rate_limited")
    assert m.monitor.blocked_for("ip:1.1.1.1") == 0.0
    assert m.monitor.blocked_for("user:5") == 0.0
    assert m.monitor.strike("user:5", "rate_limited") is True
    assert m.monitor.blocked_for("ip:1.1.1.1") == 0.0


def test_strikes_older_than_the_window_do_not_count() -> None:
    m = Monitor(threshold=3, window=10)
    key = "ip:9.9.9.9"
    m.monitor.strike(key, "x")
    m.clock.advance(5)
    m.monitor.strike(key, "x")
    m.clock.advance(5.5)  # the first strike is now 10.5 s old
    assert m.monitor.strike(key, "x") is False
    m.clock.advance(1)
    assert m.monitor.strike(key, "x") is True  # 6.5, 1 and 0 s old


def test_strikes_exactly_a_window_apart_still_count() -> None:
    m = Monitor(threshold=3, window=10)
    key = "ip:9.9.9.9"
    m.monitor.strike(key, "x")
    m.clock.advance(5)
    m.monitor.strike(key, "x")
    m.clock.advance(5)
    assert m.monitor.strike(key, "x") is True


def test_block_expires_and_counting_starts_over() -> None:
    m = Monitor(threshold=2, block=30)
    key = "user:3"
    m.monitor.strike(key, "x")
    m.monitor.strike(key, "x")
    m.clock.advance(29.9)
    assert m.monitor.blocked_for(key) == pytest.approx(0.1)
    m.clock.advance(0.1)
    assert m.monitor.blocked_for(key) == 0.0
    # The strikes that led to the block do not count again.
    assert m.monitor.strike(key, "x") is False
    assert m.monitor.strike(key, "x") is True


def test_sweep_forgets_expired_state_only() -> None:
    m = Monitor(threshold=2, window=10, block=30)
    m.monitor.strike("ip:a", "x")
    m.monitor.strike("ip:a", "x")  # blocked until +30
    m.monitor.strike("ip:b", "x")  # one strike
    m.clock.advance(11)
    m.monitor.sweep()
    assert m.monitor.blocked_for("ip:a") == pytest.approx(19)
    # ip:b's old strike is gone: one more is not enough.
    assert m.monitor.strike("ip:b", "x") is False
    m.clock.advance(20)
    m.monitor.sweep()
    assert m.monitor.blocked_for("ip:a") == 0.0


def test_zero_block_seconds_turns_blocking_off_but_still_reports_strikes() -> None:
    m = Monitor(threshold=1, block=0)
    assert m.monitor.strike("ip:z", "x") is False
    assert m.monitor.strike("ip:z", "x") is False
    assert m.monitor.blocked_for("ip:z") == 0.0
    assert [kind for kind, _key, _details in m.reports] == ["strike", "strike"]
