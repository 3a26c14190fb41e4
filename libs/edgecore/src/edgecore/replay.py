"""ReplayStore on Redis: one SET NX reservation per (device_session_id, request_id).

Key: ``<prefix><base64url(device_session_id)>:<base64url(request_id)>``
(URL-safe alphabet, unpadded), so ids cannot collide across the separator or
smuggle key syntax. TTL: ``timestamp_ms + freshness_window - now``, clamped
to ``MIN_RESERVATION``, so a request accepted exactly on the window's edge
still reserves its key. Every call is bounded; any failure is
``ReplayStoreUnavailableError`` and the pipeline fails closed.

The replay floor (docs/threat-model.md). A reservation only protects while
Redis keeps it; a Redis that restarts without persistence, is flushed, or
fails over to an empty replica forgets every reservation, and a request
accepted before could be accepted again. So every reservation is sent
together with ``SET <prefix>epoch <now_ms> NX GET``: the key holds the moment
from which this Redis's reservations are complete. When it is missing, Redis
lost its data; the command recreates it with "now", and the pipeline refuses
every request signed before that moment as stale (anything signed earlier
may have been reserved in the lost data). The services create the key at
start-up (``seed_replay_epoch``), so only a loss moves the floor, and check it
on every readiness probe, so a loss is usually noticed before a request.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import redis.asyncio as redis
from redis.exceptions import RedisError

from edgecore.clock import wall_clock_ms

__all__ = [
    "MIN_RESERVATION",
    "RedisReplayStore",
    "ReplayStoreUnavailableError",
    "Reservation",
    "epoch_key",
    "floor_from_reply",
    "replay_key",
    "seed_replay_epoch",
]

MIN_RESERVATION: Final = timedelta(seconds=1)
_log = logging.getLogger("edgecore.replay")


class ReplayStoreUnavailableError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Reservation:
    """The outcome of one reservation.

    ``first_use``: no earlier reservation of the pair is known. ``floor_ms``:
    reservations are only complete for requests signed at or after it; the
    pipeline refuses an older request as stale.
    """

    first_use: bool
    floor_ms: int


def epoch_key(prefix: str) -> str:
    """The replay floor's key; never a reservation key (those hold a ``:``)."""
    return f"{prefix}epoch"


def floor_from_reply(reply: object, now_ms: int) -> int:
    """The floor from the reply to ``SET epoch <now_ms> NX GET``.

    Nil means the key was missing and is now ``now_ms``: Redis lost its data
    (or was never seeded), which is logged. A value that is not a decimal
    integer fails closed.
    """
    if reply is None:
        _log.warning(
            "replay epoch was missing: Redis lost its data; requests signed before now "
            "are refused as stale",
            extra={"floor_ms": now_ms},
        )
        return now_ms
    raw = reply.decode("ascii", "replace") if isinstance(reply, bytes) else reply
    if isinstance(raw, str) and raw.isdigit() and len(raw) <= 19:
        return int(raw)
    raise ReplayStoreUnavailableError("replay epoch is malformed")


async def seed_replay_epoch(
    client: redis.Redis,
    *,
    key_prefix: str,
    operation_timeout: timedelta,
    startup: bool = False,
    now_ms: int | None = None,
) -> int:
    """Create the replay floor when it is missing; the floor in force.

    At start-up a missing floor is expected (a new Redis). Later, from the
    readiness check, it means Redis lost its data: noticing it there, before the
    next reservation, spares the requests signed in between.
    """
    now = wall_clock_ms() if now_ms is None else now_ms
    try:
        async with asyncio.timeout(operation_timeout.total_seconds()):
            reply = await client.set(epoch_key(key_prefix), str(now), nx=True, get=True)
    except (TimeoutError, RedisError, OSError) as exc:
        raise ReplayStoreUnavailableError(type(exc).__name__) from None
    if reply is None and startup:
        _log.info("replay epoch created", extra={"floor_ms": now})
        return now
    return floor_from_reply(reply, now)


def _b64url(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).rstrip(b"=").decode("ascii")


def replay_key(prefix: str, device_session_id: str, request_id: str) -> str:
    return f"{prefix}{_b64url(device_session_id)}:{_b64url(request_id)}"


class RedisReplayStore:
    def __init__(
        self,
        client: redis.Redis,
        *,
        key_prefix: str,
        reserve_timeout: timedelta,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._client = client
        self._prefix = key_prefix
        self._epoch_key = epoch_key(key_prefix)
        self._timeout = reserve_timeout.total_seconds()
        self._clock_ms = clock_ms

    async def reserve(self, device_session_id: str, request_id: str, ttl: timedelta) -> Reservation:
        """Reserve the pair for ``ttl``; the reservation's outcome and the replay floor."""
        ttl_ms = max(int(ttl.total_seconds() * 1000), int(MIN_RESERVATION.total_seconds() * 1000))
        key = replay_key(self._prefix, device_session_id, request_id)
        now_ms = self._clock_ms()
        try:
            async with asyncio.timeout(self._timeout):
                pipe = self._client.pipeline(transaction=False)
                pipe.set(key, b"1", nx=True, px=ttl_ms)
                pipe.set(self._epoch_key, str(now_ms), nx=True, get=True)
                created, epoch = await pipe.execute()
        except (TimeoutError, RedisError, OSError) as exc:
            raise ReplayStoreUnavailableError(type(exc).__name__) from None
        return Reservation(bool(created), floor_from_reply(epoch, now_ms))
