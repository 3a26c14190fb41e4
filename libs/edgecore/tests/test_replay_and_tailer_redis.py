"""ReplayStore and StreamTailer against a real Redis, including Redis going away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as redis

from edgecore.replay import RedisReplayStore, ReplayStoreUnavailableError, replay_key
from edgecore.stream_reader import StreamTailer
from edgecore.testing.redis_server import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=1)
    yield conn
    await conn.aclose()


async def test_reserve_then_replay(client: redis.Redis) -> None:
    store = RedisReplayStore(
        client, key_prefix="gateway:replay:", reserve_timeout=timedelta(milliseconds=250)
    )
    assert (await store.reserve("ds/1", "req:1", timedelta(minutes=5))).first_use
    assert not (await store.reserve("ds/1", "req:1", timedelta(minutes=5))).first_use
    assert (await store.reserve("ds/2", "req:1", timedelta(minutes=5))).first_use
    key = replay_key("gateway:replay:", "ds/1", "req:1")
    assert key == "gateway:replay:ZHMvMQ:cmVxOjE"
    assert 299_000 < await client.pttl(key) <= 300_000


async def test_ttl_is_clamped_to_a_positive_minimum(client: redis.Redis) -> None:
    store = RedisReplayStore(client, key_prefix="p:", reserve_timeout=timedelta(milliseconds=250))
    assert (await store.reserve("ds", "edge", timedelta(0))).first_use
    assert 0 < await client.pttl(replay_key("p:", "ds", "edge")) <= 1000


async def test_redis_down_fails_closed_within_the_bound(
    redis_server: RedisServer, redis_url: str
) -> None:
    if not redis_server.restartable:
        pytest.skip("external Redis cannot be stopped")
    conn = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=1)
    store = RedisReplayStore(conn, key_prefix="p:", reserve_timeout=timedelta(milliseconds=250))
    assert (await store.reserve("ds", "r1", timedelta(minutes=1))).first_use
    redis_server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(ReplayStoreUnavailableError):
            await store.reserve("ds", "r2", timedelta(minutes=1))
        assert time.monotonic() - started < 2.0  # bounded, never a hang
    finally:
        redis_server.start()
        await conn.aclose()
    # After recovery the store works again.
    conn = redis.Redis.from_url(redis_url)
    reservation = await RedisReplayStore(
        conn, key_prefix="p:", reserve_timeout=timedelta(seconds=1)
    ).reserve("ds", "r3", timedelta(minutes=1))
    assert reservation.first_use
    await conn.aclose()


async def _wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_tailer_starts_at_the_end_and_resumes_after_disconnects(
    redis_server: RedisServer, redis_url: str, client: redis.Redis
) -> None:
    for n in range(3):
        await client.xadd("events", {"n": f"old-{n}"})
    seen: list[str] = []
    reader = redis.Redis.from_url(redis_url, socket_timeout=3, socket_connect_timeout=1)
    tailer = StreamTailer(
        reader,
        "events",
        lambda _id, fields: seen.append(fields[b"n"].decode()),
        base_backoff=timedelta(milliseconds=20),
        max_backoff=timedelta(milliseconds=200),
        block_ms=500,
    )
    task = asyncio.create_task(tailer.run())
    try:
        await _wait_for(tailer.connected.is_set)
        await client.xadd("events", {"n": "a"})
        await _wait_for(lambda: seen == ["a"])

        # Kill the reader's connection; entries added meanwhile must still arrive.
        await client.client_kill_filter(_type="normal", skipme=True)
        await client.xadd("events", {"n": "b"})
        await client.xadd("events", {"n": "c"})
        await _wait_for(lambda: seen == ["a", "b", "c"])

        if redis_server.restartable:
            redis_server.stop()
            await asyncio.sleep(0.3)
            redis_server.start()
            fresh = redis.Redis.from_url(redis_url)
            await fresh.xadd("events", {"n": "d"})
            await _wait_for(lambda: seen[-1:] == ["d"])
            await fresh.aclose()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await reader.aclose()
    assert not any(item.startswith("old") for item in seen)
