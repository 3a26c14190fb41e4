"""Live routes: the built-in routes plus the current route table, swapped atomically.

``LiveRouter`` resolves the built-in ``user.*`` / ``lobby.*`` routes first,
then the passthrough routes of the newest applied table. Applying a table
replaces one dict reference: a request resolves its client once, at step
10, so in-flight requests finish on the table they started with and the
next request sees the new one. Only newer versions are applied.

``RouteTableFollower`` keeps the router current: it loads the snapshot at
start, re-reads it on every notification on the route-events stream, and
re-reads it every ``resync_interval`` anyway (a notification can be lost
while Redis is away). A snapshot that is malformed or does not open with
our key is refused whole and the current table stays in force: a Redis
writer without the key cannot change what we route.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Final

import redis.asyncio as redis
from redis.exceptions import RedisError

from edge_grpc.routing import CompositeRouter
from edgecore.downstream import DownstreamClient
from edgecore.routes import RouteTable, RouteTableFormatError, RouteTableReader, RouteTableSealError
from edgecore.stream_reader import StreamTailer

__all__ = ["LiveRouter", "RouteTableFollower"]

_log = logging.getLogger("edge_grpc.routes")
_STREAM_BLOCK_MS: Final = 5000


class LiveRouter:
    """A ``DownstreamRouter``: built-in routes, then the current passthrough table."""

    __slots__ = ("_build", "_ceiling", "_dynamic", "_static", "version")

    def __init__(
        self,
        static: CompositeRouter,
        build_client: Callable[..., DownstreamClient],
        *,
        timeout_ceiling: timedelta | None = None,
    ) -> None:
        self._static = static
        self._build = build_client
        # GATEWAY_AUTHENTICATED_DOWNSTREAM_TIMEOUT bounds every call, so a longer route
        # timeout cannot take effect: say so once per table rather than fail silently.
        self._ceiling = timeout_ceiling
        self._dynamic: Mapping[str, DownstreamClient] = {}
        self.version = 0

    def resolve(self, message_type: str) -> DownstreamClient | None:
        client = self._static.resolve(message_type)
        if client is not None:
            return client
        return self._dynamic.get(message_type)

    def is_routed(self, message_type: str) -> bool:
        return self._static.is_routed(message_type) or message_type in self._dynamic

    @property
    def passthrough_types(self) -> frozenset[str]:
        return frozenset(self._dynamic)

    def apply(self, table: RouteTable) -> bool:
        """Swap in ``table`` if it is newer; False when it is not (nothing changes)."""
        if table.version <= self.version:
            return False
        clients: dict[str, DownstreamClient] = {}
        for message_type, route in table.routes.items():
            if self._static.is_routed(message_type):
                # The operator refuses reserved literals; a table that still claims one
                # (an older operator, a hand-made table) must not shadow a built-in route.
                _log.error(
                    "route table claims a built-in message type; ignored",
                    extra={"message_type": message_type, "source": route.source},
                )
                continue
            if self._ceiling is not None and route.timeout > self._ceiling:
                _log.warning(
                    "route timeout exceeds GATEWAY_AUTHENTICATED_DOWNSTREAM_TIMEOUT, which applies",
                    extra={"message_type": message_type, "source": route.source,
                           "route_timeout_s": route.timeout.total_seconds(),
                           "downstream_timeout_s": self._ceiling.total_seconds()},
                )  # fmt: skip
            clients[message_type] = self._build(route)
        self._dynamic = clients
        self.version = table.version
        return True


class RouteTableFollower:
    def __init__(
        self,
        reader: RouteTableReader,
        router: LiveRouter,
        *,
        stream_client: redis.Redis,
        stream: str,
        resync_interval: timedelta,
        base_backoff: timedelta,
        max_backoff: timedelta,
        on_applied: Callable[[int, int], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self._reader = reader
        self._router = router
        self._stream_client = stream_client
        self._stream = stream
        self._resync = resync_interval.total_seconds()
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._on_applied = on_applied
        self._on_refused = on_refused
        self._wake = asyncio.Event()
        self.tailer: StreamTailer | None = None

    async def start(self) -> None:
        """Pin the stream position, then load the snapshot: nothing published between is lost."""
        self.tailer = StreamTailer(
            self._stream_client,
            self._stream,
            self._on_notification,
            base_backoff=self._base_backoff,
            max_backoff=self._max_backoff,
            block_ms=_STREAM_BLOCK_MS,
            on_reconnect=self._wake.set,
        )
        with contextlib.suppress(RedisError, OSError):
            # Unpinned (Redis down), run() pins later and the periodic resync covers the gap.
            await self.tailer.pin()
        await self.refresh()

    async def run(self) -> None:
        """Follow notifications and resync periodically, until cancelled."""
        assert self.tailer is not None, "start() first"
        tail = asyncio.get_running_loop().create_task(self.tailer.run(), name="route-events")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._resync):
                        await self._wake.wait()
                self._wake.clear()
                await self.refresh()
        finally:
            tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tail

    async def refresh(self) -> None:
        """Read the snapshot and apply it if newer. Never raises for Redis or bad data."""
        try:
            table = await self._reader.load()
        except (RouteTableFormatError, RouteTableSealError) as exc:
            _log.error("route table refused; the current one stays", extra={"error": str(exc)})
            if self._on_refused is not None:
                self._on_refused("seal" if isinstance(exc, RouteTableSealError) else "malformed")
            return
        except (RedisError, OSError) as exc:
            _log.warning("route table not read", extra={"error": type(exc).__name__})
            return
        if table is None or not self._router.apply(table):
            return
        _log.info(
            "route table applied",
            extra={"version": table.version, "routes": len(table),
                   "message_types": sorted(self._router.passthrough_types)},
        )  # fmt: skip
        if self._on_applied is not None:
            self._on_applied(table.version, len(self._router.passthrough_types))

    def _on_notification(self, _entry_id: str, _fields: Mapping[bytes, bytes]) -> None:
        self._wake.set()
