"""Resume and per-user delivery against real push-hub processes and a real Redis.

The acceptance test of docs/event-streams.md: a backend publishes at a steady
rate while the client is cut off, Redis is restarted (with its append-only
file) and push-hub is restarted; a client that resumes from the last position
it received gets every acknowledged event exactly once, in order, each with a
valid signature.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from redis.exceptions import RedisError

from edgeclient.envelope import verify_event
from edgeclient.errors import EventVerificationError
from edgecore.testing.redis_server import EmbeddedRedisServer
from galaxy.gateway.v1 import edge_gateway_pb2 as pb

# The harness types live in conftest.py, which tests do not import.
Harness = Any
Device = Any
HubProcess = Any

PUBLISH_INTERVAL = 0.02  # 50 events per second


def verified(event: pb.GatewayEvent, public_key: bytes) -> bool:
    """The SDK's own check: payload hash and signature over the canonical event input."""
    try:
        verify_event(event, server_public_key=public_key)
    except EventVerificationError:
        return False
    return True


class Publisher:
    """Publishes ``ev-00000``, ``ev-00001``, ... and remembers which were acknowledged."""

    def __init__(self, harness: Harness, user_id: str) -> None:
        self._harness = harness
        self._user_id = user_id
        self.acknowledged: list[str] = []
        self.failed = 0
        self._next = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            event_id = f"ev-{self._next:05d}"
            self._next += 1
            try:
                async with asyncio.timeout(2):
                    await self._harness.publish(self._user_id, event_id)
                self.acknowledged.append(event_id)
            except (RedisError, OSError, TimeoutError):
                self.failed += 1
                await self._harness.drop_redis()  # a fresh client once Redis is back
            await asyncio.sleep(PUBLISH_INTERVAL)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class ResumingClient:
    """Reads one stream at a time; every new stream resumes from the last position."""

    def __init__(self, harness: Harness, device: Device) -> None:
        self._harness = harness
        self._device = device
        self.position: str | None = None
        self.received: list[pb.GatewayEvent] = []
        self.streams = 0

    async def read_from(self, hub: HubProcess, until: float) -> grpc.StatusCode | None:
        """Open a stream on ``hub`` and read until ``until`` (monotonic) or its end."""
        stream = await self._harness.open(hub, self._device, resume_position=self.position)
        self.streams += 1
        assert verified(stream.bootstrap, self._harness.server_public_key)
        if self.position is not None:
            assert stream.bootstrap.position == self.position  # it starts where we left
        self.position = stream.bootstrap.position
        try:
            while (left := until - time.monotonic()) > 0:
                try:
                    event = await stream.read(timeout=left)
                except TimeoutError:
                    break
                self.received.append(event)
                self.position = event.position
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        finally:
            stream.call.cancel()
        return None

    async def read_until_ended(self, hub: HubProcess) -> grpc.StatusCode | None:
        return await self.read_from(hub, until=time.monotonic() + 60)

    async def read_through(self, hub: HubProcess, event_id: str, timeout: float = 60) -> None:
        """Resume and read until ``event_id`` arrived (the bound is only a safety net)."""
        deadline = time.monotonic() + timeout
        while event_id not in {e.event_id for e in self.received}:
            assert time.monotonic() < deadline, f"{event_id} never arrived"
            await self.read_from(hub, until=min(deadline, time.monotonic() + 1))


@pytest.fixture
async def persistent_harness(harness_factory) -> AsyncIterator[tuple[Harness, EmbeddedRedisServer]]:
    server = EmbeddedRedisServer(persistent=True)
    server.start()
    harness = harness_factory(server, "persistent")
    try:
        yield harness, server
    finally:
        server.close()


async def test_a_resuming_client_gets_every_event_once_in_order_through_outages(
    persistent_harness, unique
):
    harness, server = persistent_harness
    hub = harness.start_hub(name="hub-1")
    device = harness.device(unique)
    await harness.add_sessions(device)
    client = ResumingClient(harness, device)
    publisher = Publisher(harness, device.user_id)
    await client.read_from(hub, until=time.monotonic())  # a position from before the first event
    publisher.start()
    try:
        await client.read_from(hub, until=time.monotonic() + 1)

        # (c) the client is cut off for 10 s while events keep coming.
        await asyncio.sleep(10)
        await client.read_from(hub, until=time.monotonic() + 1)

        # (a) Redis stops and starts again (its append-only file keeps the histories).
        read = asyncio.create_task(client.read_until_ended(hub))
        await asyncio.sleep(0.5)
        await harness.drop_redis()
        server.stop()
        await asyncio.sleep(2)
        server.start()
        await asyncio.to_thread(hub.wait_health, serving=True, timeout=15)
        await asyncio.sleep(1)
        read.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await read
        await client.read_from(hub, until=time.monotonic() + 1)

        # (b) push-hub restarts; the client comes back on the new process.
        read = asyncio.create_task(client.read_until_ended(hub))
        await asyncio.sleep(0.5)
        hub.stop()
        assert await read == grpc.StatusCode.UNAVAILABLE  # "gateway is shutting down"
        hub = harness.start_hub(name="hub-2")
        await harness.add_sessions(device)  # the new process's session cache starts empty
        await client.read_from(hub, until=time.monotonic() + 1)
    finally:
        await publisher.stop()
    await client.read_through(hub, publisher.acknowledged[-1])

    ids = [event.event_id for event in client.received]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert ids == sorted(ids), "events were delivered out of order"
    missing = sorted(set(publisher.acknowledged) - set(ids))
    assert missing == [], f"{len(missing)} acknowledged events never arrived"
    assert all(verified(event, harness.server_public_key) for event in client.received)
    assert publisher.failed > 0  # the outage really refused some publishes
    assert client.streams >= 6


async def test_a_position_older_than_the_history_gets_the_explicit_signal(hub_harness, unique):
    hub = hub_harness.start_hub(GATEWAY_EVENT_HISTORY_MAX_EVENTS="3")
    device = hub_harness.device(unique)
    await hub_harness.add_sessions(device)
    stream = await hub_harness.open(hub, device)
    start = stream.bootstrap.position
    for n in range(5):
        await hub_harness.publish(device.user_id, f"ev-{n}")
    events = await stream.read_n(5)
    stream.call.cancel()

    # Three are kept: resuming after the second is still complete...
    resumed = await hub_harness.open(hub, device, resume_position=events[1].position)
    assert [e.event_id for e in await resumed.read_n(3)] == ["ev-2", "ev-3", "ev-4"]
    resumed.call.cancel()
    # ...resuming from the start is not, and the client is told so instead of a gap.
    for position in (start, events[0].position):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await hub_harness.open(hub, device, resume_position=position)
        assert (refused.value.code(), refused.value.details()) == (
            grpc.StatusCode.OUT_OF_RANGE,
            "resume position is older than the event history",
        )
    for garbage in ("nonsense", "0123456789abcdef:1-x", "x" * 65):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await hub_harness.open(hub, device, resume_position=garbage)
        assert (refused.value.code(), refused.value.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "subscribe options are malformed",
        )


async def test_session_targeted_history_is_replayed_to_its_session_only(hub_harness, unique):
    hub = hub_harness.start_hub()
    phone = hub_harness.device(unique, "phone")
    laptop = hub_harness.device(unique, "laptop")
    await hub_harness.add_sessions(phone, laptop)
    stream = await hub_harness.open(hub, phone)
    start = stream.bootstrap.position
    stream.call.cancel()
    await hub_harness.publish(
        phone.user_id, "for-laptop", device_session_id=laptop.device_session_id
    )
    await hub_harness.publish(phone.user_id, "for-phone", device_session_id=phone.device_session_id)
    await hub_harness.publish(phone.user_id, "for-both")

    resumed = await hub_harness.open(hub, phone, resume_position=start)
    assert [e.event_id for e in await resumed.read_n(2)] == ["for-phone", "for-both"]


async def test_a_replica_receives_only_the_events_of_users_connected_to_it(hub_harness, unique):
    first = hub_harness.start_hub(name="first")
    second = hub_harness.start_hub(name="second")
    ann = hub_harness.device(unique, "ann-phone", user="ann")
    bob = hub_harness.device(unique, "bob-phone", user="bob")
    await hub_harness.add_sessions(ann, bob)
    ann_stream = await hub_harness.open(first, ann)
    bob_stream = await hub_harness.open(second, bob)
    for n in range(20):
        await hub_harness.publish(ann.user_id, f"ann-{n}")
    await hub_harness.publish(bob.user_id, "bob-0")
    assert len(await ann_stream.read_n(20)) == 20
    assert (await bob_stream.read()).event_id == "bob-0"

    received = "gateway_push_events_received_total"
    assert first.metric(received, source="live") == 20
    assert second.metric(received, source="live") == 1
    channel = f"gateway:events:user:{ann.user_id}"
    assert await hub_harness.redis.pubsub_numsub(channel) == [(channel.encode(), 1)]
