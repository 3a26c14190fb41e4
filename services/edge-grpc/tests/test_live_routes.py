"""LiveRouter swaps tables atomically; RouteTableFollower keeps it current from real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as redis

from edge_grpc.live_routes import LiveRouter, RouteTableFollower
from edge_grpc.routing import CompositeRouter, DownstreamExecutor
from edgecore.downstream import AuthenticatedCommand, DownstreamResult
from edgecore.errors import EdgeError
from edgecore.routes import PassthroughRoute, RouteTable, RouteTablePublisher, RouteTableReader
from edgecore.routes.sealing import new_route_table_key


def route(message_type: str, path: str = "/x") -> PassthroughRoute:
    return PassthroughRoute(
        message_type=message_type,
        url=f"http://t.ns.svc:80{path}",
        timeout=timedelta(seconds=1),
        hmac_secret=b"s" * 32,
        source="ns/r",
    )


class TargetStandIn:
    """The downstream a route resolves to: answers with its route's path, on release."""

    def __init__(self, route: PassthroughRoute) -> None:
        self.route = route
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()

    async def execute(self, command: AuthenticatedCommand) -> DownstreamResult:
        self.started.set()
        await self.release.wait()
        return DownstreamResult("ok", self.route.url.encode())


class Builtin:
    async def execute(self, command: AuthenticatedCommand) -> DownstreamResult:
        return DownstreamResult("ok", b"builtin")


def command(message_type: str) -> AuthenticatedCommand:
    return AuthenticatedCommand("u", "ds", message_type, b"p", "rid")


def make_router() -> LiveRouter:
    return LiveRouter(CompositeRouter({"user.account.get": Builtin()}), TargetStandIn)


def test_only_newer_tables_apply() -> None:
    router = make_router()
    assert router.apply(RouteTable.build(5, [route("a.one")]))
    assert not router.apply(RouteTable.build(5, [route("b.two")]))
    assert not router.apply(RouteTable.build(4, [route("b.two")]))
    assert router.passthrough_types == {"a.one"} and router.version == 5
    assert router.is_routed("a.one") and router.is_routed("user.account.get")
    assert not router.is_routed("b.two")


def test_a_table_cannot_shadow_a_builtin_route() -> None:
    # A hand-made table that skipped validation: the built-in still answers.
    forged = object.__new__(PassthroughRoute)
    for name, value in vars_of(route("x.y")).items():
        object.__setattr__(forged, name, value)
    object.__setattr__(forged, "message_type", "user.account.get")
    router = make_router()
    assert router.apply(RouteTable(1, {"user.account.get": forged, "x.y": route("x.y")}))
    assert isinstance(router.resolve("user.account.get"), Builtin)
    assert router.passthrough_types == {"x.y"}


def vars_of(value: PassthroughRoute) -> dict[str, object]:
    return {name: getattr(value, name) for name in PassthroughRoute.__slots__}


async def test_in_flight_requests_finish_on_their_table_the_next_sees_the_new_one() -> None:
    router = make_router()
    executor = DownstreamExecutor(router, timeout=timedelta(seconds=5))
    router.apply(RouteTable.build(1, [route("a.one", "/v1")]))
    old_client = router.resolve("a.one")
    assert isinstance(old_client, TargetStandIn)
    old_client.release.clear()
    in_flight = asyncio.create_task(executor.execute(command("a.one")))
    await old_client.started.wait()

    router.apply(RouteTable.build(2, [route("a.one", "/v2")]))
    next_result = await executor.execute(command("a.one"))
    assert next_result.payload == b"http://t.ns.svc:80/v2"

    router.apply(RouteTable.build(3, []))
    with pytest.raises(EdgeError) as removed:
        await executor.execute(command("a.one"))
    assert (removed.value.grpc_code.name, removed.value.message) == (
        "UNIMPLEMENTED", "message_type is not routed",
    )  # fmt: skip

    old_client.release.set()
    assert (await in_flight).payload == b"http://t.ns.svc:80/v1"


# ------------------------------------------------------------------ the follower, real Redis


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    await conn.aclose()


async def until(predicate: object, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


@pytest.mark.integration
async def test_follower_loads_then_follows_notifications_and_resyncs(client: redis.Redis) -> None:
    key = new_route_table_key()
    prefix = f"f:{uuid.uuid4().hex}"
    table_key, stream = f"{prefix}:table", f"{prefix}:events"
    publisher = RouteTablePublisher(client, key, snapshot_key=table_key, stream=stream)
    _, first = await publisher.publish([route("a.one")])

    router = make_router()
    applied: list[tuple[int, int]] = []
    refused: list[str] = []
    follower = RouteTableFollower(
        RouteTableReader(client, key, snapshot_key=table_key),
        router,
        stream_client=client,
        stream=stream,
        resync_interval=timedelta(seconds=1),
        base_backoff=timedelta(milliseconds=50),
        max_backoff=timedelta(milliseconds=200),
        on_applied=lambda version, count: applied.append((version, count)),
        on_refused=refused.append,
    )
    await follower.start()
    assert router.version == first and router.passthrough_types == {"a.one"}
    task = asyncio.create_task(follower.run())
    try:
        _, second = await publisher.publish([route("a.one"), route("b.two")])
        await until(lambda: router.version == second)
        assert router.passthrough_types == {"a.one", "b.two"}

        # A snapshot sealed with another key (a Redis writer without ours): refused, kept.
        forger = RouteTablePublisher(client, new_route_table_key(), snapshot_key=table_key,
                                     stream=stream)  # fmt: skip
        await forger.publish([route("evil.route")])
        await until(lambda: "seal" in refused)
        assert router.passthrough_types == {"a.one", "b.two"} and router.version == second

        # A lost notification: the periodic resync still applies the next table.
        quiet = RouteTablePublisher(client, key, snapshot_key=table_key, stream=f"{prefix}:other")
        _, third = await quiet.publish([route("c.three")])
        await until(lambda: router.version == third)
        assert router.passthrough_types == {"c.three"}
        assert applied[-1] == (third, 1)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_a_route_timeout_above_the_downstream_timeout_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = LiveRouter(CompositeRouter(), TargetStandIn, timeout_ceiling=timedelta(seconds=5))
    slow = PassthroughRoute("slow.one", "http://t.ns.svc:80/x", timedelta(seconds=30), b"s" * 32)
    with caplog.at_level("WARNING", logger="edge_grpc.routes"):
        router.apply(RouteTable.build(1, [route("fast.one"), slow]))
    [record] = caplog.records
    assert record.getMessage().startswith("route timeout exceeds")
    assert record.message_type == "slow.one"  # type: ignore[attr-defined]
    assert router.passthrough_types == {"fast.one", "slow.one"}
