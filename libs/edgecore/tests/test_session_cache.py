"""SessionCache: shared misses, negative caching, TTL, LRU bound, stream snapshots."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta

import pytest

from edgecore.session_cache import InProcessSessionCache, SessionCacheUnavailableError
from edgecore.sessions import SessionRecord, SessionStatus

KEY = base64.b64encode(bytes(32)).decode()


def _record(sid: str, status: SessionStatus = SessionStatus.ACTIVE) -> SessionRecord:
    return SessionRecord(device_session_id=sid, user_id="u", client_public_key=KEY, status=status)


class SlowSource:
    def __init__(self, *records: SessionRecord) -> None:
        self.records = {r.device_session_id: r for r in records}
        self.calls: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: Exception | None = None

    async def get_session(self, sid: str) -> SessionRecord | None:
        self.calls.append(sid)
        await self.gate.wait()
        if self.error:
            raise self.error
        return self.records.get(sid)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache(
    source: SlowSource, clock: Clock | None = None, max_entries: int = 100
) -> InProcessSessionCache:
    return InProcessSessionCache(
        source,
        max_entries=max_entries,
        ttl=timedelta(minutes=10),
        negative_ttl=timedelta(seconds=5),
        clock=clock or Clock(),
    )


async def test_concurrent_misses_share_one_backend_call() -> None:
    source = SlowSource(_record("a"))
    source.gate.clear()
    cache = _cache(source)
    waiters = [asyncio.create_task(cache.get("a")) for _ in range(50)]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*waiters)
    assert source.calls == ["a"]
    assert {r.record.device_session_id for r in results if r} == {"a"}
    assert await cache.get("a") is results[0]
    assert source.calls == ["a"]


async def test_a_cancelled_waiter_does_not_cancel_the_shared_lookup() -> None:
    source = SlowSource(_record("a"))
    source.gate.clear()
    cache = _cache(source)
    first = asyncio.create_task(cache.get("a"))
    second = asyncio.create_task(cache.get("a"))
    await asyncio.sleep(0)
    first.cancel()
    source.gate.set()
    result = await second
    assert result is not None and source.calls == ["a"]


async def test_unknown_ids_are_remembered_briefly() -> None:
    clock = Clock()
    source = SlowSource()
    cache = _cache(source, clock)
    for _ in range(20):
        assert await cache.get("ghost") is None
    assert source.calls == ["ghost"]
    clock.now += 6
    assert await cache.get("ghost") is None
    assert source.calls == ["ghost", "ghost"]


async def test_ttl_forces_a_fresh_lookup() -> None:
    clock = Clock()
    source = SlowSource(_record("a"))
    cache = _cache(source, clock)
    await cache.get("a")
    clock.now += 599
    await cache.get("a")
    assert source.calls == ["a"]
    clock.now += 2
    await cache.get("a")
    assert source.calls == ["a", "a"]


async def test_lru_bound() -> None:
    source = SlowSource(*(_record(str(n)) for n in range(10)))
    cache = _cache(source, max_entries=3)
    for n in range(5):
        await cache.get(str(n))
    assert len(cache) == 3
    await cache.get("4")  # hit
    await cache.get("0")  # evicted earlier -> lookup again
    assert source.calls.count("0") == 2 and source.calls.count("4") == 1


async def test_snapshot_revokes_at_once_and_clears_unknown() -> None:
    source = SlowSource(_record("a"))
    cache = _cache(source)
    assert (await cache.get("a")).record.status is SessionStatus.ACTIVE  # type: ignore[union-attr]
    cache.apply(_record("a", SessionStatus.REVOKED))
    assert (await cache.get("a")).record.revoked  # type: ignore[union-attr]
    assert await cache.get("new") is None
    cache.apply(_record("new"))
    assert await cache.get("new") is not None
    assert source.calls == ["a", "new"]


async def test_source_failure_reaches_every_waiter_as_unavailable() -> None:
    source = SlowSource()
    source.gate.clear()
    source.error = ConnectionError("down")
    cache = _cache(source)
    waiters = [asyncio.create_task(cache.get("a")) for _ in range(5)]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, SessionCacheUnavailableError) for r in results)
    source.error = None
    source.records["a"] = _record("a")
    assert await cache.get("a") is not None  # failures are not cached


async def test_no_source_fails_closed() -> None:
    cache = InProcessSessionCache(
        None, max_entries=1, ttl=timedelta(seconds=1), negative_ttl=timedelta(seconds=1)
    )
    with pytest.raises(SessionCacheUnavailableError):
        await cache.get("a")


async def test_malformed_key_is_kept_as_none() -> None:
    cache = _cache(SlowSource())
    cached = cache.apply(
        SessionRecord(
            device_session_id="a", user_id="u", client_public_key="%%", status=SessionStatus.ACTIVE
        )
    )
    assert cached.public_key is None
