"""The bridge that keeps the single client-events stream working as a publishing contract.

Publishers that XADD to ``GATEWAY_REDIS_CLIENT_EVENTS_STREAM`` (the contract
before per-user histories) keep working: every push-hub replica runs one
consumer of the group ``gateway-bridge`` on that stream, so each entry is moved
by exactly one replica into its user's history with the same script the direct
path uses. The script also acknowledges the entry, so an entry is moved and
acknowledged in one atomic step: a replica that dies in between leaves it
pending, and another replica claims it after ``CLAIM_IDLE``. Malformed entries
are acknowledged, logged and counted, as before.

The group starts at the stream's end when first created: entries written
before any push-hub with the bridge ran are not moved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final, cast

import redis.asyncio as redis
from redis.exceptions import RedisError, ResponseError

from edgecore.backoff import Backoff
from edgecore.event_history import HistoryStore
from edgecore.streams import MalformedEntry, decode_client_event

__all__ = ["BRIDGE_GROUP", "CLAIM_IDLE", "LegacyStreamBridge"]

_log = logging.getLogger("push_hub.bridge")

BRIDGE_GROUP: Final = "gateway-bridge"
CLAIM_IDLE: Final = timedelta(seconds=30)
_BATCH: Final = 500

Entries = list[tuple[bytes, dict[bytes, bytes] | None]]


class LegacyStreamBridge:
    def __init__(
        self,
        client: redis.Redis,
        store: HistoryStore,
        stream: str,
        *,
        consumer: str,
        base_backoff: timedelta,
        max_backoff: timedelta,
        block_ms: int,
        on_drop: Callable[[str, str], None],
        on_reconnect: Callable[[], None] | None = None,
        claim_idle: timedelta = CLAIM_IDLE,
    ) -> None:
        self._client = client
        self._store = store
        self._stream = stream
        self._consumer = consumer
        self._base = base_backoff
        self._max = max_backoff
        self._block_ms = block_ms
        self._on_drop = on_drop
        self._on_reconnect = on_reconnect
        self._claim_idle_ms = int(claim_idle.total_seconds() * 1000)
        self.connected = asyncio.Event()

    async def run(self) -> None:
        backoff = Backoff(self._base, self._max)
        while True:
            try:
                await self._ensure_group()
                self.connected.set()
                if backoff.reset() and self._on_reconnect is not None:
                    self._on_reconnect()
                await self._move_forever()
            except (RedisError, OSError) as exc:
                self.connected.clear()
                delay = backoff.next_delay()
                _log.warning(
                    "client-events bridge failed; retrying",
                    extra={"error": type(exc).__name__, "retry_in_ms": int(delay * 1000)},
                )
                await asyncio.sleep(delay)

    async def _ensure_group(self) -> None:
        try:
            await self._client.xgroup_create(self._stream, BRIDGE_GROUP, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _move_forever(self) -> None:
        next_claim = 0.0
        while True:
            if time.monotonic() >= next_claim:
                await self._claim_stale()
                next_claim = time.monotonic() + self._claim_idle_ms / 2000
            reply = cast(
                "list[tuple[bytes, Entries]] | None",
                await self._client.xreadgroup(
                    BRIDGE_GROUP, self._consumer, {self._stream: ">"},
                    count=_BATCH, block=self._block_ms,
                ),
            )  # fmt: skip
            for _stream, entries in reply or ():
                await self._move(entries)

    async def _claim_stale(self) -> None:
        """Take over what a dead replica read and never moved."""
        start = "0-0"
        while True:
            reply: list[Any] = await self._client.xautoclaim(
                self._stream, BRIDGE_GROUP, self._consumer,
                min_idle_time=self._claim_idle_ms, start_id=start, count=_BATCH,
            )  # fmt: skip
            start, entries = reply[0], reply[1]
            if entries:
                await self._move(entries)
            if start in (b"0-0", "0-0") or not entries:
                return

    async def _move(self, entries: Entries) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for raw_id, fields in entries:
                entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                if fields is None:  # trimmed away while pending
                    pipe.xack(self._stream, BRIDGE_GROUP, entry_id)
                    continue
                decoded = decode_client_event(entry_id, fields)
                if isinstance(decoded, MalformedEntry):
                    _log.warning(
                        "dropped malformed client event",
                        extra={"entry_id": entry_id, "reason": decoded.reason,
                               "stream": "client_events"},
                    )  # fmt: skip
                    self._on_drop("client_events", decoded.reason)
                    pipe.xack(self._stream, BRIDGE_GROUP, entry_id)
                    continue
                await self._store.append(
                    decoded.user_id,
                    fields,
                    ack=(self._stream, BRIDGE_GROUP, entry_id),
                    client=pipe,
                )
            await pipe.execute()
