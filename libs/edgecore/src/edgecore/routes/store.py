"""The route table in Redis: one snapshot hash and one notification stream.

Snapshot (``GATEWAY_REDIS_ROUTE_TABLE_KEY``, a hash):
``format`` = galaxy-route-table-v1, ``version`` (decimal), ``digest`` (keyed
digest of the routes), ``sealed`` (the sealed table, which repeats the version).

Notification (``GATEWAY_REDIS_ROUTE_EVENTS_STREAM``): one entry per
published version, ``v`` = 1 and ``version``. It is only a wake-up call:
readers always fetch the snapshot, so a lost or trimmed notification costs
latency (until the next resync), never correctness.

Publishing is compare-and-set in one Lua script (snapshot and notification
together, or neither), so two operator replicas racing during a rollout
cannot interleave versions. A version is ``max(current + 1, now in ms)``:
it grows even when Redis lost the snapshot and the operator republishes
from scratch, so edge-grpc, which applies only newer versions, follows.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, cast

import redis.asyncio as redis

from edgecore.clock import wall_clock_ms
from edgecore.routes.sealing import RouteTableKey, RouteTableSealError
from edgecore.routes.table import (
    TABLE_FORMAT,
    PassthroughRoute,
    RouteTable,
    RouteTableFormatError,
)

__all__ = [
    "NOTIFICATION_VERSION",
    "PublishOutcome",
    "RouteTablePublishConflictError",
    "RouteTablePublisher",
    "RouteTableReader",
    "StoredTable",
]

NOTIFICATION_VERSION: Final = "1"
_MAX_ATTEMPTS: Final = 5
_DEFAULT_STREAM_MAXLEN: Final = 1000

# KEYS: snapshot, stream. ARGV: expected current version ("" = none), format, version,
# digest, sealed, stream maxlen, notification entry version.
_PUBLISH_LUA: Final = """
local current = redis.call('HGET', KEYS[1], 'version')
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'format', ARGV[2], 'version', ARGV[3],
           'digest', ARGV[4], 'sealed', ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'v', ARGV[7], 'version', ARGV[3])
return 1
"""


class PublishOutcome(enum.Enum):
    PUBLISHED = "published"
    UNCHANGED = "unchanged"


class RouteTablePublishConflictError(Exception):
    """Another publisher kept winning the compare-and-set; retry later."""


@dataclass(frozen=True, slots=True)
class StoredTable:
    """The snapshot as stored: enough to compare digests without opening the seal."""

    version: int
    digest: str
    sealed: str

    @classmethod
    def from_hash(cls, fields: Mapping[bytes, bytes]) -> StoredTable:
        try:
            decoded = {k.decode(): v.decode() for k, v in fields.items()}
        except UnicodeDecodeError:
            raise RouteTableFormatError("route table snapshot is not UTF-8") from None
        if decoded.get("format") != TABLE_FORMAT:
            raise RouteTableFormatError(f"route table snapshot format is not {TABLE_FORMAT}")
        version = decoded.get("version", "")
        if not version.isdigit():
            raise RouteTableFormatError("route table snapshot version is not a number")
        digest, sealed = decoded.get("digest"), decoded.get("sealed")
        if not digest or not sealed:
            raise RouteTableFormatError("route table snapshot lacks its digest or seal")
        return cls(int(version), digest, sealed)


class RouteTableReader:
    """Reads and opens the current snapshot (edge-grpc's side)."""

    def __init__(self, client: redis.Redis, key: RouteTableKey, *, snapshot_key: str) -> None:
        self._client = client
        self._key = key
        self._snapshot_key = snapshot_key

    async def fetch(self) -> StoredTable | None:
        """The stored snapshot, None when there is none; raises RouteTableFormatError."""
        fields = cast("dict[bytes, bytes]", await self._client.hgetall(self._snapshot_key))
        if not fields:
            return None
        return StoredTable.from_hash(fields)

    async def load(self) -> RouteTable | None:
        """The opened table, None when none is published.

        Raises ``RouteTableFormatError`` / ``RouteTableSealError`` for a snapshot
        that is malformed, does not open, or whose sealed version disagrees with
        the stored one (a replayed old seal under a new version number).
        """
        stored = await self.fetch()
        if stored is None:
            return None
        table = self._key.open(stored.sealed)
        if table.version != stored.version:
            raise RouteTableSealError("sealed route table version differs from the snapshot's")
        return table


class RouteTablePublisher:
    """Publishes a compiled table when its routes changed (the operator's side)."""

    def __init__(
        self,
        client: redis.Redis,
        key: RouteTableKey,
        *,
        snapshot_key: str,
        stream: str,
        stream_maxlen: int = _DEFAULT_STREAM_MAXLEN,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._client = client
        self._key = key
        self._snapshot_key = snapshot_key
        self._stream = stream
        self._stream_maxlen = stream_maxlen
        self._clock_ms = clock_ms
        self._reader = RouteTableReader(client, key, snapshot_key=snapshot_key)
        self._script = client.register_script(_PUBLISH_LUA)

    async def publish(self, routes: Iterable[PassthroughRoute]) -> tuple[PublishOutcome, int]:
        """Publish ``routes`` as the next version unless they equal the stored ones.

        Returns the outcome and the version now current. Idempotent: publishing
        the same routes again changes nothing in Redis. A snapshot that is
        malformed (or sealed with another key) is replaced, never trusted.
        """
        candidate = RouteTable.build(0, routes)
        digest = self._key.digest(candidate)
        for _ in range(_MAX_ATTEMPTS):
            try:
                stored = await self._reader.fetch()
            except RouteTableFormatError:
                stored = None
                expected = await self._raw_version()
            else:
                expected = "" if stored is None else str(stored.version)
            if stored is not None and stored.digest == digest:
                return PublishOutcome.UNCHANGED, stored.version
            current = int(expected) if expected.isdigit() else 0
            version = max(current + 1, self._clock_ms())
            table = RouteTable(version, candidate.routes)
            applied = await self._script(
                keys=[self._snapshot_key, self._stream],
                args=[expected, TABLE_FORMAT, str(version), digest, self._key.seal(table),
                      str(self._stream_maxlen), NOTIFICATION_VERSION],
            )  # fmt: skip
            if applied == 1:
                return PublishOutcome.PUBLISHED, version
        raise RouteTablePublishConflictError("the route table changed under every attempt")

    async def _raw_version(self) -> str:
        raw = await self._client.hget(self._snapshot_key, "version")
        if raw is None:
            return ""
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
