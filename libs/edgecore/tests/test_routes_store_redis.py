"""Publishing and reading the route table in a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as redis

from edgecore.routes import (
    PassthroughRoute,
    PublishOutcome,
    RouteTable,
    RouteTableFormatError,
    RouteTablePublisher,
    RouteTableReader,
    RouteTableSealError,
)
from edgecore.routes.sealing import new_route_table_key

pytestmark = pytest.mark.integration


def route(message_type: str, secret: bytes = b"s" * 32) -> PassthroughRoute:
    return PassthroughRoute(
        message_type=message_type,
        url="http://target.ns.svc.cluster.local:80/x",
        timeout=timedelta(seconds=1),
        hmac_secret=secret,
        source="ns/r",
    )


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    await conn.aclose()


@pytest.fixture
def names() -> tuple[str, str]:
    prefix = f"t:{uuid.uuid4().hex}"
    return f"{prefix}:table", f"{prefix}:events"


def publisher(
    client: redis.Redis, key: object, names: tuple[str, str], **kw: object
) -> RouteTablePublisher:
    return RouteTablePublisher(client, key, snapshot_key=names[0], stream=names[1], **kw)  # type: ignore[arg-type]


async def test_publish_then_read_back(client: redis.Redis, names: tuple[str, str]) -> None:
    key = new_route_table_key()
    outcome, version = await publisher(client, key, names).publish([route("a.one"), route("b.two")])
    assert outcome is PublishOutcome.PUBLISHED
    table = await RouteTableReader(client, key, snapshot_key=names[0]).load()
    assert table is not None and table.version == version
    assert sorted(table.routes) == ["a.one", "b.two"]
    [(_, entries)] = await client.xread({names[1]: "0-0"})
    assert [fields for _, fields in entries] == [{b"v": b"1", b"version": str(version).encode()}]
    stored = await client.hgetall(names[0])
    assert b"s" * 32 not in b"".join(stored.values())


async def test_publishing_the_same_routes_is_a_no_op(
    client: redis.Redis, names: tuple[str, str]
) -> None:
    pub = publisher(client, new_route_table_key(), names)
    _, first = await pub.publish([route("a.one")])
    outcome, again = await pub.publish([route("a.one")])
    assert (outcome, again) == (PublishOutcome.UNCHANGED, first)
    assert await client.xlen(names[1]) == 1


async def test_versions_grow_even_when_redis_lost_the_snapshot(
    client: redis.Redis, names: tuple[str, str]
) -> None:
    clock = iter([1000, 1000, 1000])
    pub = publisher(client, new_route_table_key(), names, clock_ms=lambda: next(clock))
    _, v1 = await pub.publish([route("a.one")])
    _, v2 = await pub.publish([route("a.one"), route("b.two")])
    assert (v1, v2) == (1000, 1001)
    await client.delete(names[0])
    later = publisher(client, new_route_table_key(), names, clock_ms=lambda: 5000)
    _, v3 = await later.publish([route("a.one")])
    assert v3 == 5000 > v2


async def test_a_rotated_secret_is_a_new_version(
    client: redis.Redis, names: tuple[str, str]
) -> None:
    pub = publisher(client, new_route_table_key(), names)
    _, v1 = await pub.publish([route("a.one", b"s" * 32)])
    outcome, v2 = await pub.publish([route("a.one", b"t" * 32)])
    assert outcome is PublishOutcome.PUBLISHED and v2 > v1


async def test_an_empty_table_is_published_too(client: redis.Redis, names: tuple[str, str]) -> None:
    key = new_route_table_key()
    pub = publisher(client, key, names)
    await pub.publish([route("a.one")])
    outcome, _ = await pub.publish([])
    assert outcome is PublishOutcome.PUBLISHED
    table = await RouteTableReader(client, key, snapshot_key=names[0]).load()
    assert table is not None and len(table) == 0


async def test_a_snapshot_under_another_key_is_replaced_not_trusted(
    client: redis.Redis, names: tuple[str, str]
) -> None:
    await publisher(client, new_route_table_key(), names).publish([route("a.one")])
    mine = new_route_table_key()
    outcome, _ = await publisher(client, mine, names).publish([route("a.one")])
    assert outcome is PublishOutcome.PUBLISHED
    table = await RouteTableReader(client, mine, snapshot_key=names[0]).load()
    assert table is not None and list(table.routes) == ["a.one"]


async def test_reader_refuses_forged_malformed_and_replayed_snapshots(
    client: redis.Redis, names: tuple[str, str]
) -> None:
    key = new_route_table_key()
    reader = RouteTableReader(client, key, snapshot_key=names[0])
    assert await reader.load() is None
    await publisher(client, new_route_table_key(), names).publish([route("evil.route")])
    with pytest.raises(RouteTableSealError):
        await reader.load()
    await client.hset(names[0], "version", "x")
    with pytest.raises(RouteTableFormatError):
        await reader.load()
    # An old, genuinely sealed table re-published under a higher version number.
    await client.delete(names[0])
    pub = publisher(client, key, names)
    _, old = await pub.publish([route("a.one")])
    await client.hset(names[0], "version", str(old + 10))
    with pytest.raises(RouteTableSealError, match="version differs"):
        await reader.load()


async def test_a_malformed_snapshot_is_overwritten_by_the_next_publish(
    client: redis.Redis, names: tuple[str, str]
) -> None:
    await client.hset(names[0], mapping={"format": "junk", "version": "7"})
    key = new_route_table_key()
    outcome, version = await publisher(client, key, names).publish([route("a.one")])
    assert outcome is PublishOutcome.PUBLISHED and version > 7
    table = await RouteTableReader(client, key, snapshot_key=names[0]).load()
    assert table == RouteTable(version, {"a.one": route("a.one")})
