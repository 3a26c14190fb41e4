"""ReplayStore on Redis: one SET NX reservation per (device_session_id, request_id).

Key: ``<prefix><base64url(device_session_id)>:<base64url(request_id)>``
(URL-safe alphabet, unpadded), so ids cannot collide across the separator or
smuggle key syntax. TTL: ``timestamp_ms + freshness_window - now``, clamped
to ``MIN_RESERVATION``, so a request accepted exactly on the window's edge
still reserves its key. Every call is bounded; any failure is
``ReplayStoreUnavailableError`` and the pipeline fails closed.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from typing import Final

import redis.asyncio as redis
from redis.exceptions import RedisError

__all__ = ["MIN_RESERVATION", "RedisReplayStore", "ReplayStoreUnavailableError", "replay_key"]

MIN_RESERVATION: Final = timedelta(seconds=1)


class ReplayStoreUnavailableError(Exception):
    pass


def _b64url(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).rstrip(b"=").decode("ascii")


def replay_key(prefix: str, device_session_id: str, request_id: str) -> str:
    return f"{prefix}{_b64url(device_session_id)}:{_b64url(request_id)}"


class RedisReplayStore:
    def __init__(self, client: redis.Redis, *, key_prefix: str, reserve_timeout: timedelta) -> None:
        self._client = client
        self._prefix = key_prefix
        self._timeout = reserve_timeout.total_seconds()

    async def reserve(self, device_session_id: str, request_id: str, ttl: timedelta) -> bool:
        """True when this is the first use of the pair within ``ttl``; False on a replay."""
        ttl_ms = max(int(ttl.total_seconds() * 1000), int(MIN_RESERVATION.total_seconds() * 1000))
        key = replay_key(self._prefix, device_session_id, request_id)
        try:
            async with asyncio.timeout(self._timeout):
                created = await self._client.set(key, b"1", nx=True, px=ttl_ms)
        except (TimeoutError, RedisError, OSError) as exc:
            raise ReplayStoreUnavailableError(type(exc).__name__) from None
        return bool(created)
