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

import pytest

from edgeclient.errors import GatewayError, PublicApiError
from edgeclient.public_auth import PublicAuthClient
from edgecore.testing.redis_server import RedisServer, provide_redis_server
from edgecore.testing.system import System

from .conftest import start_system
from .harness import Gateway, Secrets
from .test_zz_no_secrets_in_logs import assert_no_secrets

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fault_redis() -> Iterator[RedisServer]:
    server = provide_redis_server(announce=False)
    if not server.restartable:
        server.close()
        pytest.skip("the configured Redis cannot be stopped and restarted")
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
