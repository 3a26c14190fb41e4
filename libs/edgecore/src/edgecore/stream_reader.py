"""Tailing a Redis Stream with plain XREAD: every replica reads every entry.

The reader resolves its starting point to a concrete entry id (the stream's
last id at start, or ``0-0`` for an empty stream) and advances it entry by
entry, so after a Redis error it resumes exactly where it stopped and
nothing published meanwhile is lost. Errors back off exponentially with full
jitter between ``base_backoff`` and ``max_backoff``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Final, cast

import redis.asyncio as redis
from redis.exceptions import RedisError

from edgecore.backoff import Backoff

__all__ = ["StreamTailer"]

_log = logging.getLogger("edgecore.streams")
_BLOCK_MS: Final = 5000
_BATCH: Final = 500

EntryHandler = Callable[[str, Mapping[bytes, bytes]], Awaitable[None] | None]


class StreamTailer:
    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        handler: EntryHandler,
        *,
        base_backoff: timedelta,
        max_backoff: timedelta,
        start_id: str | None = None,
        block_ms: int = _BLOCK_MS,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._stream = stream
        self._handler = handler
        self._base = base_backoff.total_seconds()
        self._max = max_backoff.total_seconds()
        self._block_ms = block_ms
        self._on_reconnect = on_reconnect
        self.last_id: str | None = start_id
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Read until cancelled."""
        backoff = Backoff(self._base, self._max)
        while True:
            try:
                # A real round trip before claiming to be connected: health checks read
                # this flag, and it must not flip on while Redis is still down.
                if self.last_id is None:
                    self.last_id = await self._current_last_id()
                else:
                    await self._client.ping()
                self.connected.set()
                if backoff.reset() and self._on_reconnect is not None:
                    self._on_reconnect()
                await self._read_batches()
            except (RedisError, OSError) as exc:
                self.connected.clear()
                delay = backoff.next_delay()
                _log.warning(
                    "stream read failed; retrying",
                    extra={"stream": self._stream, "error": type(exc).__name__,
                           "retry_in_ms": int(delay * 1000)},
                )  # fmt: skip
                await asyncio.sleep(delay)

    async def pin(self) -> None:
        """Fix the starting point now, if none was given: entries added after this call
        are read, earlier ones are not. Raises RedisError / OSError (``run`` pins later)."""
        if self.last_id is None:
            self.last_id = await self._current_last_id()

    async def _current_last_id(self) -> str:
        newest = await self._client.xrevrange(self._stream, count=1)
        if not newest:
            return "0-0"
        entry_id = newest[0][0]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def _read_batches(self) -> None:
        while True:
            assert self.last_id is not None
            response = cast(
                "list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None",
                await self._client.xread(
                    {self._stream: self.last_id}, count=_BATCH, block=self._block_ms
                ),
            )
            for _stream, entries in response or ():
                for raw_id, fields in entries:
                    entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                    outcome = self._handler(entry_id, fields)
                    if outcome is not None:
                        await outcome
                    self.last_id = entry_id
