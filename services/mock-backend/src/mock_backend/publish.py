"""Publishing a store ``Outbox`` to the gateway's two Redis streams."""

from __future__ import annotations

import asyncio
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from edgecore.fbjson import FlatBuffersJsonCodec
from edgecore.streams import ClientEvent, StreamPublisher
from mock_backend.store import Outbox

__all__ = ["OutboxPublisher", "PublishError", "RedisOutboxPublisher", "encode_events"]


class PublishError(Exception):
    """The outbox could not be (completely) published; the message is safe to log."""


class OutboxPublisher(Protocol):
    async def publish(self, outbox: Outbox, *, trace_id: str | None = None) -> None: ...


def encode_events(
    outbox: Outbox, codec: FlatBuffersJsonCodec, *, trace_id: str | None = None
) -> list[ClientEvent]:
    """The outbox's notifications as client events with FlatBuffers payloads."""
    return [
        ClientEvent(
            user_id=n.user_id,
            event_type=n.kind,
            event_id=n.event_id,
            payload=codec.encode(n.table, n.fields),
            device_session_id=n.device_session_id,
            trace_id=trace_id,
        )
        for n in outbox.notifications
    ]


class RedisOutboxPublisher:
    """Session snapshots to the session stream, then notifications into the users' histories."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        session_stream: str,
        events_key_prefix: str,
        codec: FlatBuffersJsonCodec,
        timeout_s: float = 3.0,
    ) -> None:
        self._streams = StreamPublisher(
            client, session_stream=session_stream, events_key_prefix=events_key_prefix
        )
        self._codec = codec
        self._timeout_s = timeout_s

    async def publish(self, outbox: Outbox, *, trace_id: str | None = None) -> None:
        events = encode_events(outbox, self._codec, trace_id=trace_id)
        try:
            async with asyncio.timeout(self._timeout_s):
                for record in outbox.sessions:
                    await self._streams.publish_session(record)
                for event in events:
                    await self._streams.publish_client_event(event)
        except (RedisError, OSError, TimeoutError) as exc:
            raise PublishError(f"redis publish failed: {type(exc).__name__}") from exc
