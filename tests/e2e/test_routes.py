"""Declarative routes, live: a GatewayRoute starts and stops routing without a restart.

The operator's handlers run here as kopf runs them (there is no Kubernetes
API server on these machines; docs/routes.md), publishing to the system's
real Redis with the system's route-table key. edge-grpc is the running
process from `make run`'s system; the route target is a separate process
that refuses any call without a valid HMAC made with the route's secret.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import kopf
import pytest
import redis.asyncio as aioredis

from edge_grpc.testing import RouteTargetProcess
from edge_operator.handlers import RouteHandlers
from edge_operator.reconciler import Reconciler
from edge_operator.testing import route_body, route_index, secret_body, secret_index
from edgeclient.errors import GatewayError
from edgecore.routes import RouteTablePublisher, RouteTableReader, load_route_table_key
from edgecore.testing.redis_server import RedisServer
from edgecore.testing.system import System

from .harness import Gateway, Player, Secrets

pytestmark = pytest.mark.integration

MESSAGE_TYPE = "arena.move"
PAYLOAD = b"\x10\x00\x00\x00arena-move-flatbuffer\x00\xff"


@pytest.fixture(scope="module")
def route_secret(secrets_registry: Secrets) -> bytes:
    secret = base64.b64encode(secrets.token_bytes(33))
    secrets_registry.add(secret.decode())
    return secret


@pytest.fixture(scope="module")
def target(
    tmp_path_factory: pytest.TempPathFactory, route_secret: bytes
) -> Iterator[RouteTargetProcess]:
    directory = tmp_path_factory.mktemp("route-target")
    secret_path = directory / "route.secret"
    secret_path.write_bytes(route_secret)
    process = RouteTargetProcess.start(
        hmac_secret_path=secret_path, log_path=directory / "target.log"
    )
    yield process
    process.stop()


class Operator:
    """The edge-operator's handlers over in-memory indexes, publishing to the real Redis."""

    def __init__(self, client: aioredis.Redis, key_path: Path, target_secret: bytes) -> None:
        key = load_route_table_key(key_path)
        publisher = RouteTablePublisher(
            client, key, snapshot_key="gateway:route_table", stream="gateway:route_events"
        )
        self.reader = RouteTableReader(client, key, snapshot_key="gateway:route_table")
        # Targets are Services in a cluster; here the target listens on 127.0.0.1.
        reconciler = Reconciler(
            publisher, host_template="127.0.0.1", publish_timeout=timedelta(seconds=5)
        )
        self.handlers = RouteHandlers(reconciler, retry_delay=timedelta(seconds=1))
        self.secrets = secret_index(secret_body("arena-route", hmac=target_secret))
        self.routes: dict[tuple[str, str], list[object]] = {}

    async def apply(self, body: dict[str, object]) -> dict[str, object]:
        self.routes.clear()
        self.routes.update(route_index(body))
        patch = kopf.Patch()
        await self.handlers.on_route(body=body, patch=patch, gateway_routes=self.routes,
                                     route_secrets=self.secrets)  # fmt: skip
        return dict(patch["status"])

    async def delete(self, body: dict[str, object]) -> None:
        self.routes.clear()
        self.routes.update(route_index(body))
        await self.handlers.on_route_deleted(body=body, gateway_routes=self.routes,
                                             route_secrets=self.secrets)  # fmt: skip


@pytest.fixture
async def operator(
    redis_server: RedisServer, system: System, route_secret: bytes
) -> AsyncIterator[Operator]:
    client = aioredis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password
    )
    yield Operator(client, system.route_table_key_path, route_secret)
    await client.aclose()


def table_version_in_force(system: System) -> int:
    url = f"http://127.0.0.1:{system.ports.admin_of('edge-grpc')}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("gateway_route_table_version "):
                return int(float(line.split()[1]))
    raise AssertionError("gateway_route_table_version is not exported")


async def until_version(system: System, version: int, timeout: float = 30.0) -> float:
    """Seconds until edge-grpc has the table in force (read from its own metrics)."""
    started = time.monotonic()
    while table_version_in_force(system) != version:
        assert time.monotonic() - started < timeout, f"table {version} not applied in {timeout}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def background_traffic(gateway: Gateway, player: Player, stop: asyncio.Event) -> int:
    """Built-in commands keep succeeding while routes come and go."""
    calls = 0
    async with gateway.client(player) as client:
        while not stop.is_set():
            account = await client.call_json("user.account.get", {})
            assert account["account"]["user_id"] == player.user_id
            calls += 1
            await asyncio.sleep(0.25)
    return calls


async def test_a_route_is_added_and_removed_while_edge_grpc_serves(
    gateway: Gateway, system: System, operator: Operator, target: RouteTargetProcess
) -> None:
    player = await gateway.login(name="router")
    bystander = await gateway.login(name="bystander")
    pid = system.processes["edge-grpc"].pid
    stop = asyncio.Event()
    traffic = asyncio.create_task(background_traffic(gateway, bystander, stop))

    async with gateway.client(player) as client:
        with pytest.raises(GatewayError) as before:
            await client.execute(MESSAGE_TYPE, PAYLOAD)
        assert (before.value.code_name, before.value.message) == (
            "UNIMPLEMENTED",
            "message_type is not routed",
        )

        body = route_body("arena-move", MESSAGE_TYPE, target={"service": "arena", "port": target.port,
                          "path": "/routes/echo"})  # fmt: skip
        status = await operator.apply(body)
        accepted = next(c for c in status["conditions"] if c["type"] == "Accepted")  # type: ignore[attr-defined]
        assert accepted["status"] == "True", status
        await until_version(system, int(status["tableVersion"]))  # type: ignore[arg-type]

        result = await client.execute(
            MESSAGE_TYPE, PAYLOAD, request_id="route-live-1", trace_id="trace-live-1"
        )
        assert (result.result_code, result.payload) == (
            "ok",
            PAYLOAD,
        )  # verified and signed by the SDK
        [seen] = [r for r in target.received() if r["x-request-id"] == "route-live-1"]
        assert seen["x-user-id"] == player.user_id
        assert seen["x-device-session-id"] == player.device_session_id
        assert seen["x-message-type"] == MESSAGE_TYPE
        assert seen["x-trace-id"] == "trace-live-1"
        assert seen["key_id"] == "dev-edge-grpc"

        await operator.delete(route_body("arena-move", MESSAGE_TYPE, deleting=True,
                                         target=body["spec"]["target"]))  # type: ignore[index]  # fmt: skip
        table = await operator.reader.load()
        assert table is not None and len(table) == 0
        await until_version(system, table.version)
        received = len(target.received())
        with pytest.raises(GatewayError) as after:
            await client.execute(MESSAGE_TYPE, PAYLOAD)
        assert (after.value.code_name, after.value.message) == (
            "UNIMPLEMENTED",
            "message_type is not routed",
        )
        assert len(target.received()) == received

    stop.set()
    assert await traffic > 0
    assert system.processes["edge-grpc"].pid == pid and not system.dead()


async def test_a_slow_target_is_unavailable(
    gateway: Gateway, system: System, operator: Operator, target: RouteTargetProcess
) -> None:
    player = await gateway.login(name="slowpoke")
    body = route_body("arena-slow", "arena.slow", timeout="500ms",
                      target={"service": "arena", "port": target.port, "path": "/routes/slow"})  # fmt: skip
    status = await operator.apply(body)
    await until_version(system, int(status["tableVersion"]))  # type: ignore[arg-type]
    async with gateway.client(player) as client:
        with pytest.raises(GatewayError) as slow:
            await client.execute("arena.slow", PAYLOAD)
    assert (slow.value.code_name, slow.value.message) == (
        "UNAVAILABLE",
        "downstream service is unavailable",
    )
    await operator.delete(
        route_body("arena-slow", "arena.slow", deleting=True, target=body["spec"]["target"])
    )  # type: ignore[index]
