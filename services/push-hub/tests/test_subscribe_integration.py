"""The real push-hub process: opening streams, the bootstrap event, rejects, targeting."""

from __future__ import annotations

import time

import grpc
import grpc.aio
import pytest

from edgeclient.client import EdgeClient
from edgeclient.envelope import verify_event
from edgeclient.keys import DeviceKey
from edgecore.catalog import SERVER_TIME_EVENT_TYPE
from edgecore.payloads import decode_server_time_event
from edgecore.signing import event_signing_input, payload_hash, verify_signature
from galaxy.gateway.v1 import edge_gateway_pb2 as pb

pytestmark = pytest.mark.integration


async def test_bootstrap_event_is_signed_and_carries_the_opening_request(hub_harness, unique):
    hub = hub_harness.start_hub()
    device = hub_harness.device(unique)
    await hub_harness.add_sessions(device)
    stream = await hub_harness.open(hub, device, trace_id="trace-" + unique)
    event = stream.bootstrap
    request = stream.request

    assert event.event_type == SERVER_TIME_EVENT_TYPE
    assert event.event_id == request.request_id
    assert event.request_id == request.request_id
    assert event.trace_id == "trace-" + unique
    assert event.payload_hash == payload_hash(event.payload_bytes)
    signing_input = event_signing_input(
        event_type=event.event_type,
        event_id=event.event_id,
        timestamp_ms=event.timestamp_ms,
        request_id=event.request_id,
        trace_id=event.trace_id,
        payload_hash=event.payload_hash,
    )
    assert verify_signature(hub_harness.server_public_key, signing_input, event.signature)
    now_ms = time.time_ns() // 1_000_000
    server_time_ms = decode_server_time_event(event.payload_bytes)
    assert abs(server_time_ms - now_ms) < 5_000
    assert abs(event.timestamp_ms - now_ms) < 5_000

    # The SDK verifies the same stream end to end, bootstrap first.
    async with EdgeClient(
        command_addr=hub.address,
        device_session_id=device.device_session_id,
        device_key=device.key,
        server_public_key=hub_harness.server_public_key,
    ) as client:
        events = client.subscribe(request_id="sdk-" + unique)
        first = await anext(events)
        assert (first.event_type, first.event_id) == (SERVER_TIME_EVENT_TYPE, "sdk-" + unique)
        await hub_harness.publish(device.user_id, "ev-" + unique, payload=b"\x01\x02")
        second = await anext(events)
        assert (second.event_type, second.event_id, second.payload) == (
            "lobby.invite.received",
            "ev-" + unique,
            b"\x01\x02",
        )
        await events.aclose()

    assert hub.metric(
        "gateway_authenticated_grpc_requests_total",
        rpc="SubscribeEvents",
        message_type="gateway.subscribe_events",
        result_code="OK",
    ) == pytest.approx(2)


async def test_opening_rejects_use_the_catalog(hub_harness, unique):
    hub = hub_harness.start_hub()
    device = hub_harness.device(unique)
    revoked = hub_harness.device(unique, "revoked")
    await hub_harness.add_sessions(device)
    await hub_harness.revoke(revoked)
    await hub_harness.open(hub, device)  # the session reached the hub
    stub = hub_harness.stub(hub)

    async def status(request: pb.SubscribeEventsRequest) -> tuple[grpc.StatusCode, str]:
        call = stub.SubscribeEvents(request)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
        return info.value.code(), info.value.details()

    subscribe_request = hub_harness.subscribe_request
    assert await status(subscribe_request(device, key=DeviceKey.generate())) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "invalid request signature",
    )
    assert await status(subscribe_request(device, message_type="user.account.get")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "message_type must be gateway.subscribe_events",
    )
    assert await status(subscribe_request(device, timestamp_ms=1_000)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "request timestamp is outside the freshness window",
    )
    replayed = subscribe_request(device)
    first = stub.SubscribeEvents(replayed)
    assert (await first.read()).event_type == SERVER_TIME_EVENT_TYPE
    assert await status(replayed) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "request replay detected",
    )
    first.cancel()
    for _ in range(100):  # the snapshot may still be on its way
        code, message = await status(subscribe_request(revoked))
        if code is not grpc.StatusCode.UNAVAILABLE:
            break
    assert (code, message) == (grpc.StatusCode.FAILED_PRECONDITION, "device session is revoked")
    # Sessions unknown to the cache: without a backend the lookup fails closed.
    assert await status(subscribe_request(hub_harness.device(unique, "nobody"))) == (
        grpc.StatusCode.UNAVAILABLE,
        "session cache is unavailable",
    )

    # Commands belong to edge-grpc.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ExecuteCommand(pb.ExecuteCommandRequest())
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "method is not allowed",
    )

    metric = "gateway_authenticated_grpc_requests_total"
    assert hub.metric(metric, rpc="SubscribeEvents", reject_reason="invalid_signature") == 1
    assert hub.metric(metric, rpc="SubscribeEvents", reject_reason="replay_detected") == 1
    assert hub.metric(metric, rpc="SubscribeEvents", message_type="other") == 1


async def test_user_and_session_targeting(hub_harness, unique):
    hub = hub_harness.start_hub()
    ann_phone = hub_harness.device(unique, "ann-phone", user="ann")
    ann_laptop = hub_harness.device(unique, "ann-laptop", user="ann")
    bob = hub_harness.device(unique, "bob", user="bob")
    await hub_harness.add_sessions(ann_phone, ann_laptop, bob)
    phone_1 = await hub_harness.open(hub, ann_phone)
    phone_2 = await hub_harness.open(hub, ann_phone)
    laptop = await hub_harness.open(hub, ann_laptop)
    bob_stream = await hub_harness.open(hub, bob)
    ann, bob_id = ann_phone.user_id, bob.user_id

    await hub_harness.publish(ann, "to-ann", request_id="r-1", trace_id="t-1")
    await hub_harness.publish(ann, "to-laptop", device_session_id=ann_laptop.device_session_id)
    # A session-targeted event must match user AND session: this one reaches nobody.
    await hub_harness.publish(bob_id, "mismatch", device_session_id=ann_laptop.device_session_id)
    await hub_harness.publish(bob_id, "to-bob")
    for user in (ann, bob_id):
        await hub_harness.publish(user, "marker")

    received = {
        name: [e.event_id for e in await s.read_n(count)]
        for name, s, count in (
            ("phone_1", phone_1, 2),
            ("phone_2", phone_2, 2),
            ("laptop", laptop, 3),
            ("bob", bob_stream, 2),
        )
    }
    assert received == {
        "phone_1": ["to-ann", "marker"],
        "phone_2": ["to-ann", "marker"],
        "laptop": ["to-ann", "to-laptop", "marker"],
        "bob": ["to-bob", "marker"],
    }
    # Fan-out events are signed by the gateway: verify one with the SDK's verifier.
    await hub_harness.publish(ann, "check", request_id="r-2", trace_id="t-2", payload=b"")
    event = verify_event(await laptop.read(), server_public_key=hub_harness.server_public_key)
    assert (event.event_id, event.request_id, event.trace_id, event.payload) == (
        "check",
        "r-2",
        "t-2",
        b"",
    )
    assert hub.metric("gateway_push_active_streams") == 4
