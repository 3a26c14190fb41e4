"""The publisher writes entries that the strict decoders read back from a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from edgecore.sessions import SessionRecord, SessionStatus
from edgecore.streams import (
    ClientEvent,
    MalformedEntry,
    SessionSnapshot,
    StreamPublisher,
    decode_client_event,
    decode_session_event,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    await conn.aclose()


async def test_published_entries_decode(client: redis.Redis) -> None:
    publisher = StreamPublisher(client, session_stream="s:sessions", events_key_prefix="s:")
    record = SessionRecord(
        device_session_id="ds-1",
        user_id="u-1",
        client_public_key="AAAA",
        status=SessionStatus.REVOKED,
        revoked_at_ms=10,
    )
    session_id = await publisher.publish_session(record)
    event = ClientEvent(user_id="u-1", event_type="lobby.invite.received", event_id="e-1",
                        payload=b"\x00\xff\x10")  # fmt: skip
    event_id = await publisher.publish_client_event(event)

    [(_, [(sid, sfields)])] = await client.xread({"s:sessions": "0-0"})
    [(_, [(eid, efields)])] = await client.xread({"s:user:u-1": "0-0"})
    assert decode_session_event(sid.decode(), sfields) == SessionSnapshot(session_id, record)
    decoded = decode_client_event(eid.decode(), efields)
    assert isinstance(decoded, ClientEvent)
    assert (decoded.entry_id, decoded.payload, decoded.event_id) == (
        event_id,
        b"\x00\xff\x10",
        "e-1",
    )


async def test_foreign_entries_are_malformed_values(client: redis.Redis) -> None:
    await client.xadd("s:events", {"hello": "world"})
    [(_, [(eid, fields)])] = await client.xread({"s:events": "0-0"})
    assert decode_client_event(eid.decode(), fields) == MalformedEntry(
        eid.decode(), "missing or unsupported entry version"
    )


async def test_session_stream_is_trimmed(client: redis.Redis) -> None:
    publisher = StreamPublisher(client, session_stream="s:s", max_len=10)
    record = SessionRecord(
        device_session_id="ds", user_id="u", client_public_key="AAAA", status=SessionStatus.ACTIVE
    )
    for _ in range(500):
        await publisher.publish_session(record)
    # Approximate trimming keeps at most a few macro-nodes beyond max_len.
    assert await client.xlen("s:s") < 500
