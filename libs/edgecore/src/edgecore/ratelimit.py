"""Process-local token buckets with bounded memory.

A bucket holds ``burst`` tokens and refills at ``requests / window``. Keys are
namespaced by the caller (``authenticated_grpc/ip=...``,
``public_rest/class=public_auth/ip=...``) so surfaces and dimensions never
share a bucket. At most ``max_buckets`` are kept; the least recently used is
dropped first. A dropped bucket comes back full, which is what an idle
bucket would have refilled to anyway; under a flood of more distinct keys
than the cap, the oldest keys get a fresh burst (documented trade-off of a
bounded limiter).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Protocol

from edgecore.config.sections import RateLimitPolicy

__all__ = ["DEFAULT_MAX_BUCKETS", "RateLimiter", "TokenBucketLimiter"]

DEFAULT_MAX_BUCKETS: Final = 200_000


class RateLimiter(Protocol):
    def acquire(self, key: str, policy: RateLimitPolicy) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is available."""
        ...


class TokenBucketLimiter:
    __slots__ = ("_buckets", "_clock", "_max_buckets")

    def __init__(
        self,
        *,
        max_buckets: int = DEFAULT_MAX_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # key -> [tokens, last refill time]
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()
        self._max_buckets = max_buckets
        self._clock = clock

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str, policy: RateLimitPolicy) -> float:
        now = self._clock()
        rate = policy.requests / policy.window.total_seconds()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = [float(policy.burst), now]
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(float(policy.burst), bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / rate
