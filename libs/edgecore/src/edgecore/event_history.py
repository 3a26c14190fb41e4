"""Per-user event histories in Redis: the publishing script and the reads push-hub makes.

Layout (docs/event-streams.md), under one key prefix (``gateway:events:``):

* ``<prefix>user:<user_id>``: a Redis Stream of the user's client events, at most
  ``max_events`` entries none older than ``ttl``; the key expires ``ttl`` after
  its last write, so idle users cost nothing;
* ``<prefix>trimmed:<user_id>``: the newest entry id trimming has removed (how a
  resume learns that part of what it asks for is gone);
* ``<prefix>epoch``: a random token push-hub sets when absent; a Redis that lost
  its data has a new one, so positions from before cannot be honoured silently;
* ``<prefix>config``: ``max_events`` and ``ttl_ms`` as push-hub configures them,
  read by the publishing script so publishers need no history settings.

Publishing is one Lua script: the history write, its trimming and the live
``PUBLISH`` on the channel named like the stream key happen atomically, so no
event is ever live-only or history-only. The published message is a MessagePack
array ``[entry_id, field, value, ...]``.
"""

from __future__ import annotations

import importlib.resources
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import redis.asyncio as redis

from edgecore.event_positions import EntryId, format_entry_id, parse_entry_id

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_TTL_MS",
    "HISTORY_PAGE",
    "Entry",
    "EventKeys",
    "HistoryRead",
    "HistoryStore",
    "PUBLISH_SCRIPT",
    "history_gone",
]

DEFAULT_KEY_PREFIX: Final = "gateway:events:"
DEFAULT_MAX_EVENTS: Final = 1000
DEFAULT_TTL_MS: Final = 600_000
HISTORY_PAGE: Final = 1000
"""Entries one history read returns at most; longer replays read page after page."""

PUBLISH_SCRIPT: Final = (
    importlib.resources.files("edgecore").joinpath("publish_client_event.lua").read_text("utf-8")
)
"""The publishing script (``contracts/publish-client-event.lua``, packaged with edgecore)."""

# KEYS: stream, trimmed.  ARGV: after ('' = no entries), upto ('+' = the end), count
_READ_SCRIPT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 0 then return {now, false, false, {}} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last = false
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
local entries = {}
if ARGV[1] ~= '' then
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], ARGV[2], 'COUNT', ARGV[3])
end
return {now, last, redis.call('GET', KEYS[2]), entries}
"""

Entry = tuple[EntryId, dict[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class EventKeys:
    prefix: str = DEFAULT_KEY_PREFIX

    def stream(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    def trimmed(self, user_id: str) -> str:
        return f"{self.prefix}trimmed:{user_id}"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}epoch"

    @property
    def config(self) -> str:
        return f"{self.prefix}config"

    def user_of(self, channel: bytes | str) -> str | None:
        """The user whose stream (and live channel) this is; None for anything else."""
        name = channel.decode("utf-8", "replace") if isinstance(channel, bytes) else channel
        head = f"{self.prefix}user:"
        return name[len(head) :] if name.startswith(head) else None


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """One atomic look at a user's history (Redis clock)."""

    now_ms: int
    last: EntryId | None  # None: no history kept for this user (never written, or expired)
    trimmed: EntryId | None
    entries: list[Entry]

    def start(self) -> EntryId:
        """Where a stream starting now begins: the last entry, or just before any future one."""
        if self.last is not None:
            return self.last
        return self.now_ms - 1, (1 << 64) - 1


def history_gone(after: EntryId, read: HistoryRead, ttl_ms: int) -> bool:
    """Whether something published after ``after`` may no longer be in the history."""
    if read.last is None:
        # The key expires ttl after its last write: an entry newer than `after` would
        # still be there unless `after` itself is older than the ttl.
        return after[0] < read.now_ms - ttl_ms
    if after > read.last:
        return True  # a position this history never issued (older dataset, tampering)
    return read.trimmed is not None and read.trimmed > after


class HistoryStore:
    """The Redis side of per-user histories: publishing, the epoch, reads."""

    def __init__(self, client: redis.Redis, keys: EventKeys | None = None) -> None:
        self._redis = client
        self.keys = keys or EventKeys()
        self._publish = client.register_script(PUBLISH_SCRIPT)
        self._read = client.register_script(_READ_SCRIPT)

    async def append(
        self,
        user_id: str,
        fields: Mapping[bytes, bytes],
        *,
        ack: tuple[str, str, str] | None = None,
        client: Any = None,
    ) -> Any:
        """XADD + trim + PUBLISH in one script; ``ack`` = (legacy stream, group, entry id)
        acknowledges the entry a bridge moved, in the same atomic step. Returns the entry
        id (or, given a pipeline as ``client``, queues the call)."""
        keys = [self.keys.stream(user_id), self.keys.trimmed(user_id), self.keys.config]
        args: list[bytes | str] = ["", ""]
        if ack is not None:
            keys.append(ack[0])
            args = [ack[1], ack[2]]
        for name, value in fields.items():
            args += (name, value)
        return await self._publish(keys=keys, args=args, client=client)

    async def configure(self, *, max_events: int, ttl_ms: int) -> None:
        await self._redis.hset(
            self.keys.config, mapping={"max_events": max_events, "ttl_ms": ttl_ms}
        )

    async def epoch(self) -> str:
        """The history's epoch, created if Redis has none (first start, or data lost)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.epoch, secrets.token_hex(8), nx=True)
            pipe.get(self.keys.epoch)
            _, value = await pipe.execute()
        return value.decode() if isinstance(value, bytes) else str(value)

    async def read(
        self, user_id: str, *, after: EntryId | None = None, upto: EntryId | None = None,
        count: int = HISTORY_PAGE,
    ) -> HistoryRead:  # fmt: skip
        keys = [self.keys.stream(user_id), self.keys.trimmed(user_id)]
        args: list[str | int] = [
            "" if after is None else format_entry_id(after),
            "+" if upto is None else format_entry_id(upto),
            count,
        ]
        reply = cast("Sequence[Any]", await self._read(keys=keys, args=args))
        now, last, trimmed, raw = reply
        return HistoryRead(
            now_ms=int(now),
            last=parse_entry_id(last) if last else None,
            trimmed=parse_entry_id(trimmed) if trimmed else None,
            entries=[(parse_entry_id(i), _pairs(f)) for i, f in raw],
        )


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))
