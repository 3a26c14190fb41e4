"""EventSubscriber side of push-hub: signing events once and feeding the hub.

* ``EventSigner`` turns an event into the serialized, signed ``GatewayEvent``
  bytes: timestamp_ms from the gateway clock, payload_hash recomputed,
  Ed25519 over the ``galaxy-event-v1`` signing input, and the event's resume
  ``position``. It runs once per event, however many streams receive it.
* ``ClientEventsHandler`` is what ``UserFeeds`` dispatches each history entry
  to: decode, drop-and-count malformed entries, skip events nobody here is
  subscribed for, sign once, fan out. It paces itself on a backlog: when a
  target stream's queue is full it waits, up to ``OVERFLOW_GRACE``, for that
  stream to drain (a catch-up after a Redis outage dispatches a user's backlog
  at once; delivered as one burst it would overflow healthy, reading clients).
  A stream still full after the grace is a client that does not read, and
  overflows as the specification says.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Final

from edgecore.catalog import SERVER_TIME_EVENT_TYPE
from edgecore.event_positions import EntryId, Position, format_entry_id
from edgecore.payloads import encode_server_time_event
from edgecore.pipeline import wall_clock_ms
from edgecore.signing import Signer, event_signing_input
from edgecore.streams import ClientEvent, MalformedEntry, decode_client_event
from galaxy.gateway.v1 import edge_gateway_pb2 as pb
from push_hub.hub import PushHub, PushStream

__all__ = [
    "CLIENT_EVENTS",
    "CLIENT_EVENTS_BRIDGE",
    "OVERFLOW_GRACE",
    "SESSION_EVENTS",
    "ClientEventsHandler",
    "EventSigner",
]

_log = logging.getLogger("push_hub.events")

CLIENT_EVENTS: Final = "client_events"
CLIENT_EVENTS_BRIDGE: Final = "client_events_bridge"
SESSION_EVENTS: Final = "session_events"
# A reading client drains a full queue (64 events) in milliseconds: the server
# writes into its HTTP/2 window (256 KiB), not at the client's reading pace.
OVERFLOW_GRACE: Final = timedelta(milliseconds=500)


class EventSigner:
    """Signs server-originated events with the response signer (GATEWAY_RESPONSE_SIGNER_*)."""

    __slots__ = ("_clock_ms", "_signer")

    def __init__(self, signer: Signer, *, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self._signer = signer
        self._clock_ms = clock_ms

    def sign(
        self,
        *,
        event_type: str,
        event_id: str,
        payload: bytes,
        request_id: str = "",
        trace_id: str = "",
        position: str = "",
    ) -> bytes:
        """The wire bytes of one signed ``GatewayEvent``."""
        timestamp_ms = self._clock_ms()
        digest = hashlib.sha256(payload).digest()
        signature = self._signer.sign(
            event_signing_input(
                event_type=event_type,
                event_id=event_id,
                timestamp_ms=timestamp_ms,
                request_id=request_id,
                trace_id=trace_id,
                payload_hash=digest,
            )
        )
        return pb.GatewayEvent(
            event_type=event_type,
            event_id=event_id,
            timestamp_ms=timestamp_ms,
            payload_bytes=payload,
            payload_hash=digest,
            signature=signature,
            request_id=request_id,
            trace_id=trace_id,
            position=position,
        ).SerializeToString()

    def bootstrap(self, *, request_id: str, trace_id: str = "", position: str = "") -> bytes:
        """The ``gateway.server_time`` event that opens every stream.

        event_id is the opening request_id; the event also carries that
        request_id and the opening trace_id (it is caused by that request),
        and the signature covers both.
        """
        now_ms = self._clock_ms()
        return self.sign(
            event_type=SERVER_TIME_EVENT_TYPE,
            event_id=request_id,
            payload=encode_server_time_event(now_ms),
            request_id=request_id,
            trace_id=trace_id,
            position=position,
        )


class ClientEventsHandler:
    """What ``UserFeeds`` dispatches each history entry to: sign once, then fan out."""

    def __init__(
        self,
        hub: PushHub,
        signer: EventSigner,
        *,
        epoch: Callable[[], str | None],
        on_drop: Callable[[str, str], None],
        on_delivered: Callable[[int], None] | None = None,
        overflow_grace: timedelta = OVERFLOW_GRACE,
    ) -> None:
        self._hub = hub
        self._signer = signer
        self._epoch = epoch
        self._on_drop = on_drop
        self._on_delivered = on_delivered
        self._grace = overflow_grace.total_seconds()

    def decode(
        self, user_id: str, entry_id: EntryId, fields: Mapping[bytes, bytes]
    ) -> ClientEvent | None:
        """The event of a history entry; None (logged and counted) for a malformed one."""
        decoded = decode_client_event(format_entry_id(entry_id), fields)
        if not isinstance(decoded, MalformedEntry) and decoded.user_id != user_id:
            decoded = MalformedEntry(decoded.entry_id, "user_id does not match its history")
        if isinstance(decoded, MalformedEntry):
            _log.warning(
                "dropped malformed client event",
                extra={"entry_id": decoded.entry_id, "reason": decoded.reason,
                       "stream": CLIENT_EVENTS},
            )  # fmt: skip
            self._on_drop(CLIENT_EVENTS, decoded.reason)
            return None
        return decoded

    def sign(self, event: ClientEvent, entry_id: EntryId) -> bytes:
        return self._signer.sign(
            event_type=event.event_type,
            event_id=event.event_id,
            payload=event.payload,
            request_id=event.request_id or "",
            trace_id=event.trace_id or "",
            position=self.position(entry_id),
        )

    def position(self, entry_id: EntryId) -> str:
        epoch = self._epoch()
        return str(Position(epoch, entry_id)) if epoch else ""

    def __call__(
        self, user_id: str, entry_id: EntryId, fields: Mapping[bytes, bytes]
    ) -> Awaitable[None] | None:
        hub = self._hub
        if not hub.has_recipients(user_id, None):
            return None  # no stream of this user here (any more): nothing to decode or sign
        event = self.decode(user_id, entry_id, fields)
        if event is None:
            return None
        device_session_id = event.device_session_id
        if not hub.has_recipients(user_id, device_session_id):
            return None
        item = (entry_id, self.sign(event, entry_id))
        full = hub.full_targets(user_id, device_session_id)
        if full:
            return self._deliver_when_drained(item, user_id, device_session_id, full)
        self._deliver(item, user_id, device_session_id)
        return None

    def _deliver(
        self, item: tuple[EntryId, bytes], user_id: str, device_session_id: str | None
    ) -> None:
        delivered = self._hub.deliver(item, user_id, device_session_id)
        if self._on_delivered is not None:
            self._on_delivered(delivered)

    async def _deliver_when_drained(
        self,
        item: tuple[EntryId, bytes],
        user_id: str,
        device_session_id: str | None,
        full: list[PushStream],
    ) -> None:
        waits = [asyncio.ensure_future(stream.room()) for stream in full]
        try:
            await asyncio.wait(waits, timeout=self._grace)
        finally:
            for wait in waits:
                wait.cancel()
        self._deliver(item, user_id, device_session_id)
