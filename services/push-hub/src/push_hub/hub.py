"""PushHub: the registry of live SubscribeEvents streams and the fan-out into their queues.

Pure logic, no I/O. Every stream is bound to one verified ``user_id`` and
``device_session_id`` and owns one bounded in-memory queue. Fan-out only ever
*enqueues* (never awaits a reader): a stream whose queue is full is closed
with RESOURCE_EXHAUSTED "push stream overflowed" and every other stream is
untouched. A producer that would rather pace itself than overflow a stream
that is draining (a backlog after a Redis outage) asks ``full_targets`` first
and awaits ``PushStream.room``. A stream ends exactly once, with one ``Closure`` reason, and the
hub reports each ending once (``on_closed``) so metrics cannot double count.

Queue items are ``(entry_id, data)``: the event's place in its user's history
(so a stream that replays history first can skip what it already sent) and the
already signed, serialized ``GatewayEvent`` bytes, shared by every recipient.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

from edgecore.errors import Reject
from edgecore.event_positions import EntryId

__all__ = ["Closure", "HubClosedError", "PushHub", "PushStream", "QueueItem"]

QueueItem = tuple[EntryId, bytes]

DEFAULT_QUEUE_CAPACITY: Final = 64


class Closure(enum.Enum):
    """Why a stream ended: the metric label and, for server-side ends, the gRPC status."""

    CLIENT_CANCELLED = "client_cancelled"
    OVERFLOW = "overflow"
    REVOKED = "revoked"
    SHUTDOWN = "shutdown"
    SEND_FAILED = "send_failed"
    HISTORY_GONE = "history_gone"
    HISTORY_UNAVAILABLE = "history_unavailable"

    @property
    def reject(self) -> Reject | None:
        """The status the client is sent, for the ends the server decides."""
        return _REJECTS.get(self)


_REJECTS: Final = {
    Closure.OVERFLOW: Reject.PUSH_STREAM_OVERFLOWED,
    Closure.REVOKED: Reject.REVOKED_SESSION,
    Closure.SHUTDOWN: Reject.SHUTTING_DOWN,
    Closure.HISTORY_GONE: Reject.EVENT_HISTORY_GONE,
    Closure.HISTORY_UNAVAILABLE: Reject.EVENT_HISTORY_UNAVAILABLE,
}


class HubClosedError(Exception):
    """The hub is shutting down and accepts no new streams."""


class PushStream:
    """One live stream: its bound identity, its bounded queue and how it ended.

    The handler that serves the stream is the only consumer (``next``); the
    hub is the only producer (``_offer``).
    """

    __slots__ = (
        "_items",
        "_loop",
        "_room_waiter",
        "_waiter",
        "capacity",
        "closure",
        "device_session_id",
        "user_id",
    )

    def __init__(self, user_id: str, device_session_id: str, capacity: int) -> None:
        self.user_id = user_id
        self.device_session_id = device_session_id
        self.capacity = capacity
        self.closure: Closure | None = None
        self._items: deque[QueueItem] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._room_waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return (
            f"PushStream(user_id={self.user_id!r}, device_session_id={self.device_session_id!r}, "
            f"queued={len(self._items)}, closure={self.closure})"
        )

    @property
    def closed(self) -> bool:
        return self.closure is not None

    @property
    def queued(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        return len(self._items) >= self.capacity

    def _offer(self, item: QueueItem) -> bool:
        """Enqueue without waiting; False when the queue is full (the caller closes us)."""
        items = self._items
        if len(items) >= self.capacity:
            return False
        items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return True

    def _end(self, closure: Closure) -> None:
        self.closure = closure
        self._items.clear()  # an ended stream delivers nothing more
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        self._made_room()

    def _take(self) -> QueueItem:
        item = self._items.popleft()
        if self._room_waiter is not None:
            self._made_room()
        return item

    def _made_room(self) -> None:
        waiter = self._room_waiter
        if waiter is not None:
            self._room_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def room(self) -> None:
        """Wait until the queue has room for one more item, or the stream has ended."""
        while self.closure is None and self.full:
            if self._room_waiter is None or self._room_waiter.done():
                if self._loop is None:
                    self._loop = asyncio.get_running_loop()
                self._room_waiter = self._loop.create_future()
            await asyncio.shield(self._room_waiter)

    def next_nowait(self) -> QueueItem | None:
        """The next queued item, or None when the queue is empty or the stream ended."""
        if self.closure is None and self._items:
            return self._take()
        return None

    async def next(self) -> QueueItem | None:
        """Wait for the next item; None once the stream has ended."""
        while self.closure is None:
            if self._items:
                return self._take()
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            waiter = self._loop.create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return None


class PushHub:
    """Live streams by user and by device session, and the targeting rules.

    * user-targeted events (no ``device_session_id``) reach every stream of the user;
    * session-targeted events reach only streams whose user_id *and*
      device_session_id both match.
    """

    def __init__(
        self,
        *,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        on_closed: Callable[[PushStream, Closure], None] | None = None,
        on_active: Callable[[int], None] | None = None,
    ) -> None:
        if queue_capacity < 1:
            raise ValueError("queue_capacity must be positive")
        self.queue_capacity = queue_capacity
        self._on_closed = on_closed
        self._on_active = on_active
        self._by_user: dict[str, dict[PushStream, None]] = {}
        self._by_session: dict[str, dict[PushStream, None]] = {}
        self._active = 0
        self._closed = False

    # -- registry ------------------------------------------------------------------------------
    @property
    def active(self) -> int:
        return self._active

    @property
    def closed(self) -> bool:
        return self._closed

    def open_stream(self, user_id: str, device_session_id: str) -> PushStream:
        """Register a stream for a verified identity; raises HubClosedError during shutdown."""
        if self._closed:
            raise HubClosedError("the push hub is shutting down")
        stream = PushStream(user_id, device_session_id, self.queue_capacity)
        self._by_user.setdefault(user_id, {})[stream] = None
        self._by_session.setdefault(device_session_id, {})[stream] = None
        self._set_active(self._active + 1)
        return stream

    def end(self, stream: PushStream, closure: Closure) -> bool:
        """End a stream for ``closure`` unless it already ended; True if this call ended it."""
        if stream.closure is not None:
            return False
        stream._end(closure)
        self._unregister(stream)
        if self._on_closed is not None:
            self._on_closed(stream, closure)
        return True

    def streams_of_user(self, user_id: str) -> list[PushStream]:
        return list(self._by_user.get(user_id, ()))

    def streams_of_session(self, device_session_id: str) -> list[PushStream]:
        return list(self._by_session.get(device_session_id, ()))

    # -- delivery ------------------------------------------------------------------------------
    def has_recipients(self, user_id: str, device_session_id: str | None) -> bool:
        """Whether an event with this target would reach any stream (to skip signing if not)."""
        if device_session_id is None:
            return user_id in self._by_user
        return any(s.user_id == user_id for s in self._by_session.get(device_session_id, ()))

    def full_targets(self, user_id: str, device_session_id: str | None) -> list[PushStream]:
        """The streams an event with this target would overflow if delivered now."""
        if device_session_id is None:
            targets: Iterable[PushStream] = self._by_user.get(user_id, ())
        else:
            targets = (
                s for s in self._by_session.get(device_session_id, ()) if s.user_id == user_id
            )
        return [s for s in targets if s.full]

    def deliver(self, item: QueueItem, user_id: str, device_session_id: str | None = None) -> int:
        """Enqueue ``item`` on every targeted stream; returns how many streams got it.

        Never waits. A full queue ends that stream alone with ``Closure.OVERFLOW``.
        """
        if device_session_id is None:
            targets: Iterable[PushStream] | None = self._by_user.get(user_id)
        else:
            targets = self._by_session.get(device_session_id)
        if not targets:
            return 0
        delivered = 0
        overflowed: list[PushStream] | None = None
        for stream in targets:
            if device_session_id is not None and stream.user_id != user_id:
                continue
            if stream._offer(item):
                delivered += 1
            else:
                # Ending mutates the registry we are iterating: collect, end after the loop.
                if overflowed is None:
                    overflowed = []
                overflowed.append(stream)
        if overflowed:
            for stream in overflowed:
                self.end(stream, Closure.OVERFLOW)
        return delivered

    def revoke_session(self, device_session_id: str) -> int:
        """End every stream bound to this exact session (FAILED_PRECONDITION); returns how many."""
        streams = self.streams_of_session(device_session_id)
        for stream in streams:
            self.end(stream, Closure.REVOKED)
        return len(streams)

    def end_all(self, closure: Closure) -> int:
        """End every live stream for ``closure`` (the history they resume from is gone)."""
        streams = [s for group in self._by_user.values() for s in group]
        for stream in streams:
            self.end(stream, closure)
        return len(streams)

    def users(self) -> list[str]:
        return list(self._by_user)

    def close(self) -> int:
        """Shutdown: refuse new streams and end every live one (UNAVAILABLE); returns how many."""
        self._closed = True
        return self.end_all(Closure.SHUTDOWN)

    # -- internals -----------------------------------------------------------------------------
    def _unregister(self, stream: PushStream) -> None:
        pairs = ((self._by_user, stream.user_id), (self._by_session, stream.device_session_id))
        for index, key in pairs:
            group = index.get(key)
            if group is not None:
                group.pop(stream, None)
                if not group:
                    del index[key]
        self._set_active(self._active - 1)

    def _set_active(self, value: int) -> None:
        self._active = value
        if self._on_active is not None:
            self._on_active(value)
