"""The real push-hub process: overflow isolation, revocation, malformed entries, two replicas."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from edgecore.streams import ClientEvent, encode_client_event

pytestmark = pytest.mark.integration

# A client that stops reading: no BDP probing, so its HTTP/2 window stays at 64 KiB and
# the server's writes block after a few large events instead of after megabytes.
STALLED_CHANNEL = {"grpc.http2.bdp_probe": 0}
BIG = 48 * 1024
CLIENT_STREAM = "gateway:client_events"  # the single-stream contract, moved by the bridge


async def test_overflow_closes_only_the_stalled_stream(hub_harness, unique):
    hub = hub_harness.start_hub(GATEWAY_PUSH_STREAM_QUEUE_CAPACITY="4")
    stalled_device = hub_harness.device(unique, "stalled")
    sibling_device = hub_harness.device(unique, "sibling")
    await hub_harness.add_sessions(stalled_device, sibling_device)
    stalled = await hub_harness.open(
        hub, stalled_device, stub=hub_harness.stub(hub, **STALLED_CHANNEL)
    )
    sibling = await hub_harness.open(hub, sibling_device)
    user = sibling_device.user_id

    count = 40
    received: list[str] = []
    started = time.monotonic()
    for index in range(count):
        await hub_harness.publish(user, f"ev-{index}", payload=bytes([index]) * BIG)
        received.extend(e.event_id for e in [await sibling.read()])
    assert received == [f"ev-{i}" for i in range(count)]
    # The sibling was never slowed down by the stalled reader.
    assert time.monotonic() - started < 20

    for _ in range(100):
        if hub.metric("gateway_push_stream_closures_total", reason="overflow") == 1:
            break
        await asyncio.sleep(0.05)
    assert hub.metric("gateway_push_stream_closures_total", reason="overflow") == 1
    assert hub.metric("gateway_push_active_streams") == 1

    # The stalled client reads again: what was in flight, then the overflow status.
    delivered = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        while True:
            delivered.append((await stalled.read()).event_id)
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "push stream overflowed",
    )
    assert delivered == [f"ev-{i}" for i in range(len(delivered))]
    assert len(delivered) < count

    # The sibling is still live.
    await hub_harness.publish(user, "after")
    assert (await sibling.read()).event_id == "after"


async def test_revocation_closes_exactly_that_sessions_streams(hub_harness, unique):
    hub = hub_harness.start_hub()
    phone = hub_harness.device(unique, "phone")
    laptop = hub_harness.device(unique, "laptop")
    await hub_harness.add_sessions(phone, laptop)
    phone_streams = [await hub_harness.open(hub, phone) for _ in range(2)]
    laptop_stream = await hub_harness.open(hub, laptop)

    await hub_harness.revoke(phone)
    for stream in phone_streams:
        assert await stream.status() == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "device session is revoked",
        )
    await hub_harness.publish(phone.user_id, "after-revoke")
    assert (await laptop_stream.read()).event_id == "after-revoke"

    # The session cache learned the revocation too: a re-open is rejected by the pipeline.
    call = hub_harness.stub(hub).SubscribeEvents(hub_harness.subscribe_request(phone))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "device session is revoked",
    )
    assert hub.metric("gateway_push_stream_closures_total", reason="revoked") == 2
    assert hub.metric("gateway_push_active_streams") == 1


async def test_malformed_entries_are_counted_and_logged_without_payloads(hub_harness, unique):
    hub = hub_harness.start_hub()
    device = hub_harness.device(unique)
    await hub_harness.add_sessions(device)
    stream = await hub_harness.open(hub, device)
    secret = b"SECRET-PAYLOAD-" + unique.encode()
    redis = hub_harness.redis
    client_stream, session_stream = "gateway:client_events", "gateway:session_events"
    await redis.xadd(client_stream, {"user_id": device.user_id, "payload": secret})  # no v
    await redis.xadd(
        client_stream,
        {"v": "1", "user_id": device.user_id, "event_type": "x", "event_id": "e",
         "payload": secret, "colour": "red"},
    )  # fmt: skip
    await redis.xadd(
        client_stream,
        {"v": "1", "user_id": device.user_id, "event_type": "x", "payload": secret},
    )
    await redis.xadd(session_stream, {"v": "1", "kind": "session.snapshot", "session": secret})
    await redis.xadd(session_stream, {"v": "1", "kind": "session.deleted", "session": b"{}"})
    await hub_harness.publish(device.user_id, "still-alive")
    assert (await stream.read()).event_id == "still-alive"

    for _ in range(100):
        drops = hub.metric("gateway_internal_event_drops_total", stream="session_events")
        if drops == 2:
            break
        await asyncio.sleep(0.05)
    metric = "gateway_internal_event_drops_total"
    assert hub.metric(metric, stream="client_events", reason="unsupported_version") == 1
    assert hub.metric(metric, stream="client_events", reason="unknown_field") == 1
    assert hub.metric(metric, stream="client_events", reason="missing_field") == 1
    assert hub.metric(metric, stream="session_events", reason="invalid_session_record") == 1
    assert hub.metric(metric, stream="session_events", reason="unknown_kind") == 1
    log = hub.log()
    assert log.count("dropped malformed client event") == 3
    assert log.count("dropped malformed session event") == 2
    assert "SECRET-PAYLOAD" not in log


async def test_two_replicas_each_deliver_to_their_own_clients(hub_harness, unique):
    first = hub_harness.start_hub(name="first")
    second = hub_harness.start_hub(name="second")
    phone = hub_harness.device(unique, "phone")
    laptop = hub_harness.device(unique, "laptop")
    await hub_harness.add_sessions(phone, laptop)
    on_first = await hub_harness.open(first, phone)
    on_second = await hub_harness.open(second, laptop)

    for index in range(5):
        await hub_harness.publish(phone.user_id, f"ev-{index}")
    await hub_harness.publish(
        phone.user_id, "laptop-only", device_session_id=laptop.device_session_id
    )
    expected = [f"ev-{i}" for i in range(5)]
    assert [e.event_id for e in await on_first.read_n(5)] == expected
    assert [e.event_id for e in await on_second.read_n(6)] == [*expected, "laptop-only"]
    # Each replica signed for its own stream only: one delivery per event per replica.
    assert first.metric("gateway_push_deliveries_total") == 5
    assert second.metric("gateway_push_deliveries_total") == 6


async def test_a_backlog_in_one_batch_reaches_a_reading_client_whole(hub_harness, unique):
    """What piles up while a reader waits for Redis comes back as one XREAD batch: it is
    paced to a reading stream, never dumped into its 64-event queue (which overflowed)."""
    hub = hub_harness.start_hub()
    device = hub_harness.device(unique, "reader")
    await hub_harness.add_sessions(device)
    stream = await hub_harness.open(hub, device)

    count = 300
    async with hub_harness.redis.pipeline(transaction=True) as pipe:  # one MULTI: one batch
        for index in range(count):
            event = ClientEvent(
                user_id=device.user_id,
                event_type="lobby.invite.received",
                event_id=f"ev-{index}",
                payload=b"backlog",
            )
            pipe.xadd(CLIENT_STREAM, encode_client_event(event))  # type: ignore[arg-type]
        await pipe.execute()

    events = await stream.read_n(count, timeout=60)
    assert [e.event_id for e in events] == [f"ev-{i}" for i in range(count)]
    assert hub.metric("gateway_push_stream_closures_total", reason="overflow") == 0
