"""Per-user histories in a real Redis: the publishing script's atomic write, trim and
publish, and the reads that decide whether a resume position can still be honoured."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import msgpack
import pytest
import redis.asyncio as redis

from edgecore.event_history import (
    DEFAULT_MAX_EVENTS,
    DEFAULT_TTL_MS,
    PUBLISH_SCRIPT,
    EventKeys,
    HistoryStore,
    history_gone,
)
from edgecore.event_positions import parse_entry_id, predecessor

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    await conn.aclose()


@pytest.fixture
def unique() -> str:
    return secrets.token_hex(4)


@pytest.fixture
def store(client: redis.Redis, unique: str) -> HistoryStore:
    return HistoryStore(client, EventKeys(f"t-{unique}:"))


def fields(n: int) -> dict[bytes, bytes]:
    return {b"v": b"1", b"user_id": b"ann", b"event_id": str(n).encode(), b"payload": b"\x00\xff"}


async def test_every_appended_entry_is_both_in_the_history_and_published_live(
    client: redis.Redis, store: HistoryStore
) -> None:
    pubsub = client.pubsub()
    await pubsub.subscribe(store.keys.stream("ann"))
    assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"  # type: ignore[index]
    ids = [await store.append("ann", fields(n)) for n in range(3)]
    live = []
    for _ in ids:
        message = await pubsub.get_message(timeout=2)
        assert message is not None
        live.append(msgpack.unpackb(message["data"], raw=True))
    await pubsub.aclose()
    assert [m[0] for m in live] == ids
    assert dict(zip(live[0][1::2], live[0][2::2], strict=True)) == fields(0)
    read = await store.read("ann", after=(0, 0))
    assert [e for e, _ in read.entries] == [parse_entry_id(i) for i in ids]
    assert read.entries[2][1] == fields(2)
    assert read.last == parse_entry_id(ids[-1])
    assert read.trimmed is None


async def test_trimming_by_count_records_what_it_removed(store: HistoryStore) -> None:
    await store.configure(max_events=3, ttl_ms=600_000)
    ids = [parse_entry_id(await store.append("ann", fields(n))) for n in range(5)]
    read = await store.read("ann", after=(0, 0))
    assert [e for e, _ in read.entries] == ids[2:]
    assert read.trimmed == ids[1]
    assert history_gone(ids[0], read, 600_000)  # ids[1] is gone
    assert not history_gone(ids[1], read, 600_000)  # everything after it is kept
    assert not history_gone(ids[4], read, 600_000)
    assert history_gone((ids[4][0] + 1, 0), read, 600_000)  # a position never issued


async def test_trimming_by_age_and_the_key_expiring_with_its_last_event(
    client: redis.Redis, store: HistoryStore
) -> None:
    await store.configure(max_events=100, ttl_ms=300)
    (now_s, now_us) = await client.time()
    old = (now_s * 1000 + now_us // 1000 - 5_000, 0)  # written five seconds ago
    await client.xadd(store.keys.stream("ann"), fields(0), id=f"{old[0]}-0")  # type: ignore[arg-type]
    second = parse_entry_id(await store.append("ann", fields(1)))
    read = await store.read("ann", after=(0, 0))
    assert [e for e, _ in read.entries] == [second]
    assert read.trimmed == old
    assert history_gone(predecessor(old), read, 300)
    assert not history_gone(old, read, 300)

    # The key expires 300 ms after its last write (polled, with a generous bound).
    for _ in range(200):
        if not await client.exists(store.keys.stream("ann"), store.keys.trimmed("ann")):
            break
        await asyncio.sleep(0.05)
    gone = await store.read("ann", after=second)
    assert gone.last is None
    # Nothing newer than `second` can have expired unless `second` itself is older than the ttl.
    assert history_gone(second, gone, 300)
    assert not history_gone(gone.start(), gone, 300)


async def test_a_start_without_history_comes_before_any_later_event(store: HistoryStore) -> None:
    empty = await store.read("nobody")
    start = empty.start()
    later = parse_entry_id(await store.append("nobody", fields(0)))
    assert start < later
    read = await store.read("nobody", after=start)
    assert [e for e, _ in read.entries] == [later]
    assert not history_gone(start, read, 600_000)


async def test_the_epoch_is_created_once(client: redis.Redis, store: HistoryStore) -> None:
    epoch = await store.epoch()
    assert epoch == await store.epoch()
    await client.delete(store.keys.epoch)  # what a Redis that lost its data looks like
    assert await store.epoch() != epoch


async def test_a_bridged_entry_is_acknowledged_in_the_same_step(
    client: redis.Redis, store: HistoryStore, unique: str
) -> None:
    legacy = f"t-{unique}:legacy"
    await client.xgroup_create(legacy, "g", id="0", mkstream=True)
    entry = await client.xadd(legacy, fields(7))  # type: ignore[arg-type]
    await client.xreadgroup("g", "c", {legacy: ">"})
    assert (await client.xpending(legacy, "g"))["pending"] == 1
    await store.append("ann", fields(7), ack=(legacy, "g", entry.decode()))
    assert (await client.xpending(legacy, "g"))["pending"] == 0
    assert len((await store.read("ann", after=(0, 0))).entries) == 1


def test_the_script_falls_back_to_the_documented_defaults() -> None:
    # push-hub writes its settings into <prefix>config; without them the script uses these.
    assert f"tonumber(settings[1]) or {DEFAULT_MAX_EVENTS}\n" in PUBLISH_SCRIPT
    assert f"tonumber(settings[2]) or {DEFAULT_TTL_MS}\n" in PUBLISH_SCRIPT
