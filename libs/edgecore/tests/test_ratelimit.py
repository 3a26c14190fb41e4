"""Token buckets: burst, refill, retry-after and bounded memory."""

from __future__ import annotations

from datetime import timedelta

import pytest

from edgecore.config.sections import RateLimitPolicy
from edgecore.ratelimit import TokenBucketLimiter

POLICY = RateLimitPolicy(requests=60, window=timedelta(minutes=1), burst=3)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_sustained_rate() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(clock=clock)
    assert [limiter.acquire("k", POLICY) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k", POLICY) == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.acquire("k", POLICY) == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("k", POLICY) == 0.0


def test_keys_are_independent() -> None:
    limiter = TokenBucketLimiter(clock=Clock())
    for _ in range(3):
        limiter.acquire("a", POLICY)
    assert limiter.acquire("a", POLICY) > 0
    assert limiter.acquire("b", POLICY) == 0.0


def test_tokens_never_exceed_the_burst() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(clock=clock)
    limiter.acquire("k", POLICY)
    clock.now += 3600
    assert [limiter.acquire("k", POLICY) for _ in range(4)][-1] > 0


def test_memory_is_bounded() -> None:
    limiter = TokenBucketLimiter(max_buckets=100, clock=Clock())
    for n in range(10_000):
        limiter.acquire(f"ip={n}", POLICY)
    assert len(limiter) == 100
