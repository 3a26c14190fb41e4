"""Per-user live delivery: one pub/sub subscription per user this replica holds a stream for.

A replica receives the events of its own users only (docs/event-streams.md):
``attach(user)`` subscribes to that user's channel, ``detach`` lets the
subscription go once the user's last stream has been gone for a while (so a
client that reconnects at once finds its feed still live). Each ``Feed`` keeps
a cursor, the history entry id of the last event it dispatched.

Pub/sub is at-most-once, so a feed only trusts it while its connection lasts:

* a new feed (or every feed, after the connection is re-established) starts
  *not ready*: live messages are parked in ``pending``;
* once its subscription is confirmed, a catch-up reads the user's history
  after the cursor (or, for a new feed, only where the history ends), dispatches
  that, then what was parked, and only then marks the feed ready;
* from then on the reader dispatches live messages in order, skipping any id
  at or below the cursor.

So nothing published while the connection was down is lost, nothing is
dispatched twice, and per user everything is dispatched in history order.
When the history's epoch changes (Redis lost its data) or a catch-up finds
part of what it needs trimmed, the affected streams are ended with the
explicit history-gone status instead of silently skipping events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Final

import msgpack
import redis.asyncio as redis
from redis.exceptions import RedisError

from edgecore.backoff import Backoff
from edgecore.event_history import HISTORY_PAGE, HistoryStore, history_gone
from edgecore.event_positions import EntryId, PositionError, parse_entry_id

__all__ = ["Feed", "FeedUnavailableError", "UserFeeds"]

_log = logging.getLogger("push_hub.feeds")

Dispatch = Callable[[str, EntryId, Mapping[bytes, bytes]], Awaitable[None] | None]

_SUBSCRIBE_CHUNK: Final = 500
_CATCH_UP_CONCURRENCY: Final = 32
_IDLE_WAIT: Final = 1.0


class FeedUnavailableError(Exception):
    """The user's feed could not be made ready in time (Redis is down or overloaded)."""


class Feed:
    __slots__ = ("cursor", "idle_since", "lock", "pending", "ready", "refs", "user_id")

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.refs = 0
        self.cursor: EntryId | None = None
        self.ready = asyncio.Event()
        self.pending: list[tuple[EntryId, dict[bytes, bytes]]] = []
        self.lock = asyncio.Lock()
        self.idle_since: float | None = None


class UserFeeds:
    def __init__(
        self,
        client: redis.Redis,
        store: HistoryStore,
        dispatch: Dispatch,
        *,
        ttl_ms: int,
        max_events: int,
        base_backoff: timedelta,
        max_backoff: timedelta,
        attach_timeout: timedelta = timedelta(seconds=5),
        linger: timedelta = timedelta(seconds=10),
        on_gone: Callable[[str | None], None],
        on_received: Callable[[str], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self._on_received = on_received
        self._client = client
        self._store = store
        self._dispatch = dispatch
        self._ttl_ms = ttl_ms
        self._max_events = max_events
        self._base = base_backoff
        self._max = max_backoff
        self._attach_timeout = attach_timeout.total_seconds()
        self._linger = linger.total_seconds()
        self._on_gone = on_gone
        self._on_reconnect = on_reconnect
        self._feeds: dict[str, Feed] = {}
        self._pubsub: Any = None
        self._generation = 0
        self._catch_ups = asyncio.Semaphore(_CATCH_UP_CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()
        self.epoch: str | None = None
        self.connected = asyncio.Event()

    # -- what streams use ------------------------------------------------------------------------
    async def attach(self, user_id: str) -> Feed:
        """The user's ready feed (subscribed and caught up); FeedUnavailableError if not in time."""
        feed = self._feeds.get(user_id)
        if feed is None:
            feed = self._feeds[user_id] = Feed(user_id)
            if self.connected.is_set():
                # On failure the reader reconnects, and then subscribes every feed.
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.subscribe(self._store.keys.stream(user_id))
        feed.refs += 1
        feed.idle_since = None
        if not feed.ready.is_set():
            try:
                await asyncio.wait_for(feed.ready.wait(), self._attach_timeout)
            except TimeoutError:
                self.detach(feed)
                raise FeedUnavailableError(user_id) from None
        return feed

    def detach(self, feed: Feed) -> None:
        feed.refs -= 1
        if feed.refs <= 0:
            feed.idle_since = time.monotonic()

    # -- the reader ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Keep the pub/sub connection, subscriptions and feeds current until cancelled."""
        backoff = Backoff(self._base, self._max)
        sweeper = asyncio.create_task(self._sweep_idle(), name="feeds-sweep")
        try:
            while True:
                try:
                    await self._connect()
                    if backoff.reset() and self._on_reconnect is not None:
                        self._on_reconnect()
                    await self._listen()
                except (RedisError, OSError) as exc:
                    self._disconnected()
                    delay = backoff.next_delay()
                    _log.warning(
                        "event feed connection failed; retrying",
                        extra={"error": type(exc).__name__, "retry_in_ms": int(delay * 1000)},
                    )
                    await asyncio.sleep(delay)
        finally:
            sweeper.cancel()
            for task in list(self._tasks):
                task.cancel()
            await self._close_pubsub()

    async def _connect(self) -> None:
        await self._close_pubsub()
        epoch = await self._store.epoch()
        await self._store.configure(max_events=self._max_events, ttl_ms=self._ttl_ms)
        if self.epoch is not None and epoch != self.epoch:
            # Redis lost its data: whatever a stream was owed may be gone with it.
            _log.warning("event history epoch changed; ending every stream")
            for feed in self._feeds.values():
                feed.cursor = None
            self._on_gone(None)
        self.epoch = epoch
        self._pubsub = self._client.pubsub()
        # One channel nobody publishes on keeps the connection subscribed (and made now,
        # so readiness means it is really there) when this replica holds no user.
        await self._pubsub.subscribe(self._store.keys.epoch)
        done: set[str] = set()
        while pending := [user for user in self._feeds if user not in done]:
            # Feeds attached while these awaits run are picked up by the next round;
            # from `connected` on, attach() subscribes new feeds itself.
            channels = [self._store.keys.stream(user) for user in pending]
            for start in range(0, len(channels), _SUBSCRIBE_CHUNK):
                await self._pubsub.subscribe(*channels[start : start + _SUBSCRIBE_CHUNK])
            done.update(pending)
        self.connected.set()

    def _disconnected(self) -> None:
        self.connected.clear()
        self._generation += 1
        for feed in self._feeds.values():
            feed.ready.clear()
            feed.pending.clear()

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    async def _listen(self) -> None:
        pubsub = self._pubsub
        keys = self._store.keys
        while True:
            # Bounded waits: redis-py PINGs an idle subscription from here (health checks),
            # so a dead connection surfaces as an error instead of a silent hang.
            message = await pubsub.get_message(timeout=_IDLE_WAIT)
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                user = keys.user_of(message["channel"])
                feed = self._feeds.get(user) if user is not None else None
                if feed is not None:
                    outcome = self._on_live(feed, message["data"])
                    if outcome is not None:
                        await outcome
            elif kind == "subscribe":
                user = keys.user_of(message["channel"])
                feed = self._feeds.get(user) if user is not None else None
                if feed is not None and not feed.ready.is_set():
                    self._spawn(self._catch_up(feed, self._generation))

    def _on_live(self, feed: Feed, data: bytes) -> Awaitable[None] | None:
        try:
            raw = msgpack.unpackb(data, raw=True, use_list=True)
            if not isinstance(raw, list):  # a map would raise KeyError below and end the reader
                raise TypeError("a live message is an array")
            entry_id = parse_entry_id(raw[0])
            fields = dict(zip(raw[1::2], raw[2::2], strict=True))
        except (ValueError, TypeError, IndexError, PositionError, msgpack.UnpackException):
            _log.warning("dropped an undecodable live event message")
            return None
        if self._on_received is not None:
            self._on_received("live")
        if not feed.ready.is_set():
            feed.pending.append((entry_id, fields))
            return None
        cursor = feed.cursor
        if cursor is not None and entry_id <= cursor:
            return None
        feed.cursor = entry_id
        return self._dispatch(feed.user_id, entry_id, fields)

    # -- catching up -----------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _catch_up(self, feed: Feed, generation: int) -> None:
        async with self._catch_ups, feed.lock:
            backoff = Backoff(self._base, self._max)
            while True:
                if feed.ready.is_set() or generation != self._generation:
                    return
                try:
                    await self._replay(feed, generation)
                    break
                except (RedisError, OSError) as exc:
                    # A pooled connection that died with a restarted Redis fails once; a
                    # real outage also breaks the reader, which starts a new generation.
                    delay = backoff.next_delay()
                    _log.warning(
                        "event feed catch-up failed; retrying",
                        extra={"error": type(exc).__name__, "retry_in_ms": int(delay * 1000)},
                    )
                    await asyncio.sleep(delay)
            if generation != self._generation:
                return
            while feed.pending:
                batch, feed.pending = feed.pending, []
                for entry_id, fields in batch:
                    await self._dispatch_in_order(feed, entry_id, fields)
            feed.ready.set()

    async def _replay(self, feed: Feed, generation: int) -> None:
        user = feed.user_id
        if feed.cursor is None:
            read = await self._store.read(user)
            feed.cursor = read.start()
            return
        read = await self._store.read(user, after=feed.cursor, count=HISTORY_PAGE)
        if history_gone(feed.cursor, read, self._ttl_ms):
            _log.warning("events were trimmed during an outage; ending the user's streams")
            self._on_gone(user)
            feed.cursor = read.start()
            return
        while True:
            for entry_id, fields in read.entries:
                if generation != self._generation:
                    return
                if self._on_received is not None:
                    self._on_received("catch_up")
                await self._dispatch_in_order(feed, entry_id, fields)
            if len(read.entries) < HISTORY_PAGE:
                return
            read = await self._store.read(user, after=feed.cursor, count=HISTORY_PAGE)

    async def _dispatch_in_order(
        self, feed: Feed, entry_id: EntryId, fields: Mapping[bytes, bytes]
    ) -> None:
        cursor = feed.cursor
        if cursor is not None and entry_id <= cursor:
            return
        feed.cursor = entry_id
        outcome = self._dispatch(feed.user_id, entry_id, fields)
        if outcome is not None:
            await outcome

    # -- letting go ------------------------------------------------------------------------------
    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(self._linger / 2)
            now = time.monotonic()
            idle = [
                user
                for user, feed in self._feeds.items()
                if feed.refs <= 0 and feed.idle_since is not None
                and now - feed.idle_since >= self._linger
            ]  # fmt: skip
            for user in idle:
                del self._feeds[user]
            if idle and self.connected.is_set():
                channels = [self._store.keys.stream(user) for user in idle]
                try:
                    for start in range(0, len(channels), _SUBSCRIBE_CHUNK):
                        await self._pubsub.unsubscribe(*channels[start : start + _SUBSCRIBE_CHUNK])
                except (RedisError, OSError):
                    pass  # a reconnect subscribes only the feeds that are left
