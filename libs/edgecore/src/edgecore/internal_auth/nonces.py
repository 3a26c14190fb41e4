"""Nonce stores: remember each (key id, nonce) pair for the replay window.

``reserve`` answers True the first time a pair is seen and False afterwards
(a replay). A store that cannot answer raises ``NonceStoreUnavailableError``;
the verifier then fails closed (503) instead of letting a possible replay in.

* ``RedisNonceStore``: shared by every process and host of a service; use it
  in any deployment with more than one process.
* ``MemoryNonceStore``: one process only (development, tests). Two processes
  with their own memory stores accept the same request once each.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Final, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = [
    "DEFAULT_NONCE_KEY_PREFIX",
    "MemoryNonceStore",
    "NonceStore",
    "NonceStoreUnavailableError",
    "RedisNonceStore",
]

DEFAULT_NONCE_KEY_PREFIX: Final = "galaxy:internal-auth:nonce:"


class NonceStoreUnavailableError(Exception):
    """The store could not answer (down, slow, full); the caller must fail closed."""


class NonceStore(Protocol):
    async def reserve(self, key_id: str, nonce: str, ttl: timedelta) -> bool:
        """Record the pair for ``ttl``; False when it was already recorded."""
        ...


def _ttl_ms(ttl: timedelta) -> int:
    ms = int(ttl.total_seconds() * 1000)
    if ms <= 0:
        raise ValueError("nonce ttl must be positive")
    return ms


class RedisNonceStore:
    """``SET <prefix><key_id>:<nonce> 1 NX PX <ttl>``, bounded by ``timeout``.

    The client is the caller's (it closes it); give it socket timeouts too.
    Key ids never contain a character that is not in ``KEY_ID_PATTERN`` and
    nonces never contain ``:``, so keys cannot collide.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        key_prefix: str = DEFAULT_NONCE_KEY_PREFIX,
        timeout: timedelta = timedelta(milliseconds=500),
    ) -> None:
        if timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        self._client = client
        self._prefix = key_prefix
        self._timeout = timeout.total_seconds()

    def __repr__(self) -> str:
        return f"RedisNonceStore(key_prefix={self._prefix!r}, timeout={self._timeout}s)"

    async def reserve(self, key_id: str, nonce: str, ttl: timedelta) -> bool:
        key = f"{self._prefix}{key_id}:{nonce}"
        try:
            async with asyncio.timeout(self._timeout):
                created = await self._client.set(key, b"1", nx=True, px=_ttl_ms(ttl))
        except (RedisError, OSError, TimeoutError) as exc:
            raise NonceStoreUnavailableError(
                f"nonce store (redis) is unavailable: {type(exc).__name__}"
            ) from exc
        return bool(created)


class MemoryNonceStore:
    """An in-process, bounded, expiring store. FOR A SINGLE DEV PROCESS ONLY.

    Holds at most ``max_entries`` unexpired pairs; when full it raises
    ``NonceStoreUnavailableError`` (fail closed) rather than forget a pair
    early, which would re-open a replay. ``clock`` returns seconds (monotonic).
    """

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._clock = clock
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryNonceStore(max_entries={self._max}, entries={len(self._expiry)})"

    def __len__(self) -> int:
        return len(self._expiry)

    async def reserve(self, key_id: str, nonce: str, ttl: timedelta) -> bool:
        lifetime = _ttl_ms(ttl) / 1000
        with self._lock:
            now = self._clock()
            self._purge(now)
            pair = (key_id, nonce)
            if pair in self._expiry:
                return False
            if len(self._expiry) >= self._max:
                raise NonceStoreUnavailableError("nonce store (memory) is full")
            expiry = now + lifetime
            self._expiry[pair] = expiry
            heapq.heappush(self._heap, (expiry, pair))
            return True

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expiry, pair = heapq.heappop(self._heap)
            if self._expiry.get(pair) == expiry:
                del self._expiry[pair]
