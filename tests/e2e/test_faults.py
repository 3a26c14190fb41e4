"""Dependencies failing under a running system: fail closed, then recover.

This module runs its own system and its own Redis so that stopping things
here cannot disturb the other e2e tests.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgeclient.errors import GatewayError, PublicApiError
from edgeclient.public_auth import PublicAuthClient
from edgecore.testing.redis_server import EmbeddedRedisServer, RedisServer
from edgecore.testing.system import System

from .conftest import start_system
from .harness import Gateway, Secrets
from .test_zz_no_secrets_in_logs import assert_no_secrets

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fault_redis() -> Iterator[RedisServer]:
    # Persistent, as make run's and production's: event histories survive the restart.
    server = EmbeddedRedisServer(persistent=True)
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def fault_system(
    fault_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    system = start_system(tmp_path_factory.mktemp("fault-system"), fault_redis)
    yield system
    system.stop()


@pytest.fixture(scope="module")
def faults(fault_system: System) -> Gateway:
    return Gateway(fault_system, Secrets())


async def _next_event(stream: Any, timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        return await anext(stream)


async def _eventually_ok(faults: Gateway, player: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with faults.client(player) as client:
        while True:
            try:
                await client.call_json("user.account.get", {})
                return
            except GatewayError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def test_redis_outage_fails_closed_then_recovers_without_losing_events(
    faults: Gateway, fault_redis: RedisServer
) -> None:
    owner = await faults.login(name="owner")
    applicant = await faults.login(name="applicant")
    async with faults.client(owner) as owner_client, faults.client(applicant) as applicant_client:
        game = (
            await owner_client.call_json(
                "lobby.game.create", {"name": "Keep", "visibility": "Private"}
            )
        )["game"]
        await owner_client.call_json("lobby.game.open-enrollment", {"game_id": game["game_id"]})
        await applicant_client.call_json("user.account.get", {})
        stream = owner_client.subscribe()
        await _next_event(stream)

        fault_redis.stop()
        with pytest.raises(GatewayError) as err:
            await owner_client.call_json("user.account.get", {})
        assert (err.value.code_name, err.value.message) == (
            "UNAVAILABLE",
            "replay store is unavailable",
        )

        fault_redis.start()
        await _eventually_ok(faults, owner)
        await _eventually_ok(faults, applicant)
        await applicant_client.call_json(
            "lobby.application.submit", {"game_id": game["game_id"], "race_name": "Survivors"}
        )
        event = await _next_event(stream)
        assert event.event_type == "lobby.application.submitted"
        await stream.aclose()


# Long enough that the spec's uncapped backoff (250 ms doubling to 30 s) would have grown
# past 8 s by the time Redis returns; the readers' cap keeps it at 1 s.
OUTAGE_S = 15.0
READER_CAP_S = 1.0  # GATEWAY_REDIS_STREAM_RECONNECT_MAX_BACKOFF's default
HEALTH_INTERVAL_S = 1.0  # edge-grpc's (push-hub's is 0.5 s)
READY_BOUND_S = 2.5 * (READER_CAP_S + HEALTH_INTERVAL_S)  # generous for a loaded machine


async def _serving(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.aio.AioRpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


async def _until(addresses: dict[str, str], serving: bool, timeout: float) -> dict[str, float]:
    """Seconds until each service's health is ``serving``, polled every 100 ms."""
    started = time.monotonic()
    reached: dict[str, float] = {}
    while len(reached) < len(addresses):
        for name, address in addresses.items():
            if name not in reached and await _serving(address) is serving:
                reached[name] = time.monotonic() - started
        assert time.monotonic() - started < timeout, (serving, reached)
        await asyncio.sleep(0.1)
    return reached


async def test_readiness_returns_within_a_second_or_two_of_redis(
    faults: Gateway, fault_system: System, fault_redis: RedisServer
) -> None:
    addresses = {
        name: f"127.0.0.1:{fault_system.ports.of(name)}" for name in ("edge-grpc", "push-hub")
    }
    await _until(addresses, serving=True, timeout=60)
    fault_redis.stop()
    try:
        await _until(addresses, serving=False, timeout=30)
        await asyncio.sleep(OUTAGE_S)
    finally:
        fault_redis.start()
    back = await _until(addresses, serving=True, timeout=60)
    print(f"readiness after Redis returned (s): {back}")  # the figure docs/ quotes
    assert max(back.values()) < READY_BOUND_S, back
    # Leave the system whole for the next test: the mock backend's Redis too.
    deadline = time.monotonic() + 30
    while True:
        try:
            await _eventually_ok(faults, await faults.login(name="after-outage"))
            break
        except PublicApiError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)


async def test_slow_backend_hits_the_timeouts(faults: Gateway) -> None:
    player = await faults.login(name="patient")
    faults.set_backend_latency(6000)
    try:
        async with faults.client(player) as client:
            started = time.monotonic()
            with pytest.raises(GatewayError) as err:
                await client.call_json("user.account.get", {})
            assert time.monotonic() - started < 5.0  # the 1 s timeout, not the 6 s latency
        assert (err.value.code_name, err.value.message) == (
            "UNAVAILABLE",
            "downstream service is unavailable",
        )
        async with PublicAuthClient(faults.public_url) as public:
            started = time.monotonic()
            with pytest.raises(PublicApiError) as public_err:
                await public.send_email_code(faults.new_email("slow"))
            assert time.monotonic() - started < 5.0  # the 1 s timeout, not the 6 s latency
        assert (public_err.value.status, public_err.value.code) == (503, "service_unavailable")
    finally:
        faults.set_backend_latency(0)


async def test_backend_outage_then_recovery(faults: Gateway, fault_system: System) -> None:
    player = await faults.login(name="stranded")
    fault_system.processes["mock-backend"].stop()
    try:
        async with faults.client(player) as client:
            with pytest.raises(GatewayError) as err:
                await client.call_json("user.account.get", {})
        assert (err.value.code_name, err.value.message) == (
            "UNAVAILABLE",
            "downstream service is unavailable",
        )
        async with PublicAuthClient(faults.public_url) as public:
            with pytest.raises(PublicApiError) as public_err:
                await public.send_email_code(faults.new_email("nobody"))
        assert (public_err.value.status, public_err.value.code) == (503, "service_unavailable")
    finally:
        fault_system.start_service("mock-backend")
    # The mock keeps its state in memory, so recovery is shown with a fresh login.
    await _eventually_ok(faults, await faults.login(name="returning"))


async def test_sigterm_ends_streams_with_shutting_down_and_exits_cleanly(
    faults: Gateway, fault_system: System
) -> None:
    player = await faults.login(name="listener")
    async with faults.client(player) as client:
        stream = client.subscribe()
        await _next_event(stream)
        hub = fault_system.processes["push-hub"]
        hub.signal(signal.SIGTERM)
        with pytest.raises(GatewayError) as err:
            await _next_event(stream)
        assert (err.value.code_name, err.value.message) == (
            "UNAVAILABLE",
            "gateway is shutting down",
        )
        assert hub.wait(timeout=10) == 0
    edge = fault_system.processes["edge-grpc"]
    edge.signal(signal.SIGTERM)
    assert edge.wait(timeout=10) == 0


def test_fault_logs_hold_no_secrets(faults: Gateway) -> None:
    assert_no_secrets(faults.logs(), faults.secrets)
