"""Process-local token-bucket rate limiting with bounded memory.

A policy of ``requests`` per ``window`` with ``burst`` refills at
``requests / window`` tokens a second up to ``burst`` tokens; a new bucket
starts full. A request takes one token; a denied request takes none and is
told how long until one is there (``retry_after``, whole seconds, at least 1).

Buckets live in one LRU map per *scope* (``public_rest/class=<class>/ip``,
``.../email``, ``.../challenge``), so a flood in one class or dimension can
never evict another's buckets. Memory is bounded twice:

* a bucket that has been idle long enough to be full again is dropped, since a
  fresh bucket behaves identically (a small sweep runs on every call, starting
  from the least recently used end);
* a hard cap per scope (``max_buckets_per_scope``) evicts the least recently
  used bucket when a new key arrives at a full scope. Such an eviction can only
  make the limiter more lenient for the evicted key (it restarts full); it is
  counted in ``evictions``.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from edgecore.config import RateLimitPolicy

__all__ = [
    "DEFAULT_MAX_BUCKETS_PER_SCOPE",
    "Decision",
    "InMemoryRateLimiter",
    "RateLimiter",
    "bucket_key",
]

DEFAULT_MAX_BUCKETS_PER_SCOPE: Final = 50_000
_SWEEP_BUDGET: Final = 64


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: int = 0
    """Whole seconds until a token is available (>= 1 when denied, 0 when allowed)."""


ALLOWED: Final = Decision(True)


class RateLimiter(Protocol):
    """Consumer-side limiter: one bucket per ``scope=identity`` key."""

    def allow(self, scope: str, identity: str, policy: RateLimitPolicy) -> Decision: ...


def bucket_key(scope: str, identity: str) -> str:
    """``public_rest/class=public_auth/ip`` + ``127.0.0.1`` -> ``.../ip=127.0.0.1``."""
    return f"{scope}={identity}"


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class _Scope:
    __slots__ = ("buckets", "last_policy")

    def __init__(self) -> None:
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.last_policy: RateLimitPolicy | None = None


class InMemoryRateLimiter:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets_per_scope: int = DEFAULT_MAX_BUCKETS_PER_SCOPE,
    ) -> None:
        if max_buckets_per_scope < 1:
            raise ValueError("max_buckets_per_scope must be positive")
        self._clock = clock
        self._max = max_buckets_per_scope
        self._scopes: dict[str, _Scope] = {}
        self.evictions = 0

    def allow(self, scope: str, identity: str, policy: RateLimitPolicy) -> Decision:
        now = self._clock()
        state = self._scopes.get(scope)
        if state is None:
            state = self._scopes[scope] = _Scope()
        state.last_policy = policy
        buckets = state.buckets
        rate = policy.rate_per_second
        burst = float(policy.burst)
        self._sweep(buckets, rate, burst, now)

        bucket = buckets.get(identity)
        if bucket is None:
            if len(buckets) >= self._max:
                buckets.popitem(last=False)
                self.evictions += 1
            bucket = _Bucket(burst, now)
            buckets[identity] = bucket
        else:
            buckets.move_to_end(identity)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(burst, bucket.tokens + elapsed * rate)
            bucket.updated = now

        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return ALLOWED
        retry_after = max(1, math.ceil((1.0 - bucket.tokens) / rate))
        return Decision(False, retry_after)

    def size(self, scope: str | None = None) -> int:
        """Buckets held, in one scope or in all of them."""
        if scope is not None:
            state = self._scopes.get(scope)
            return 0 if state is None else len(state.buckets)
        return sum(len(state.buckets) for state in self._scopes.values())

    def scopes(self) -> list[str]:
        return sorted(self._scopes)

    def sweep(self) -> int:
        """Drop every bucket that is full again; returns how many were dropped."""
        now = self._clock()
        dropped = 0
        for state in self._scopes.values():
            policy = state.last_policy
            if policy is None:
                continue
            rate, burst = policy.rate_per_second, float(policy.burst)
            for identity, bucket in list(state.buckets.items()):
                if bucket.tokens + (now - bucket.updated) * rate >= burst:
                    del state.buckets[identity]
                    dropped += 1
        return dropped

    @staticmethod
    def _sweep(buckets: OrderedDict[str, _Bucket], rate: float, burst: float, now: float) -> None:
        # The least recently used buckets come first; stop at the first one still
        # refilling (later ones were touched more recently).
        for _ in range(_SWEEP_BUDGET):
            if not buckets:
                return
            identity, bucket = next(iter(buckets.items()))
            if bucket.tokens + (now - bucket.updated) * rate < burst:
                return
            del buckets[identity]
