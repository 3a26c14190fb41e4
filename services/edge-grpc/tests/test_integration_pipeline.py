"""The real `python -m edge_grpc` against a real Redis and the real mock backend.

Every reject of the specification's list with its exact code and message,
successful routed calls with verified response signatures, revocation
arriving on the session-events stream while requests flow, SubscribeEvents,
the message-size bound, health and /metrics.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from typing import Any

import grpc
import grpc.aio
import nacl.signing
import pytest

from edge_grpc.testing import (
    DeviceSession,
    decode_response,
    encode_request,
    execute,
    execute_until,
    now_ms,
    stream_session,
)
from edgeclient import EdgeClient
from edgeclient.keys import DeviceKey
from edgecore.payloads import decode_error_response
from edgecore.sessions import SessionStatus
from edgecore.signing import response_signing_input, verify_signature
from galaxy.gateway.v1 import edge_gateway_pb2 as pb

pytestmark = pytest.mark.integration

SESSION_STREAM = "gateway:session_events"
OK = grpc.StatusCode.OK


call = execute


def assert_signed(response: Any, request: Any, server_public_key: bytes) -> None:
    assert response.protocol_version == "v1"
    assert response.request_id == request.request_id
    assert abs(response.timestamp_ms - now_ms()) < 10_000
    assert response.payload_hash == hashlib.sha256(response.payload_bytes).digest()
    signing_input = response_signing_input(
        protocol_version=response.protocol_version,
        request_id=response.request_id,
        timestamp_ms=response.timestamp_ms,
        result_code=response.result_code,
        payload_hash=response.payload_hash,
    )
    assert verify_signature(server_public_key, signing_input, response.signature)


def counted(metrics: str) -> float:
    """Sum of every gateway_authenticated_grpc_requests_total sample."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("gateway_authenticated_grpc_requests_total{")
    )


def crafted_session(stack: Any, **fields: Any) -> DeviceSession:
    with stack.redis() as client:
        return stream_session(client, **fields)


until = execute_until


# --- operations ------------------------------------------------------------------------------


def test_health_is_serving(stack):
    assert stack.gateway.health() == "SERVING"
    assert stack.gateway.health("galaxy.gateway.v1.EdgeGateway") == "SERVING"


# --- successful calls ------------------------------------------------------------------------


async def test_user_account_get_round_trip_is_signed(stack, stub):
    session = stack.new_session()
    request = session.request(
        "user.account.get", encode_request("user.account.get"), trace_id="trace-1"
    )
    code, details, response = await call(stub, request)
    assert code == OK, details
    assert response.result_code == "ok"
    assert_signed(response, request, stack.server_public_key)
    body = decode_response("user.account.get", response.payload_bytes)
    assert body["account"]["user_id"] == session.user_id


async def test_lobby_commands_round_trip(stack, stub):
    session = stack.new_session("owner")
    create = session.request(
        "lobby.game.create", encode_request("lobby.game.create", {"name": "Andromeda"})
    )
    code, details, response = await call(stub, create)
    assert code == OK, details
    assert_signed(response, create, stack.server_public_key)
    game = decode_response("lobby.game.create", response.payload_bytes)["game"]
    assert game["name"] == "Andromeda"

    listing = session.request("lobby.my.games.list", encode_request("lobby.my.games.list"))
    code, details, response = await call(stub, listing)
    assert code == OK, details
    assert_signed(response, listing, stack.server_public_key)
    games = decode_response("lobby.my.games.list", response.payload_bytes)["games"]
    assert [g["game_id"] for g in games] == [game["game_id"]]

    sessions = session.request("user.sessions.list", encode_request("user.sessions.list"))
    code, details, response = await call(stub, sessions)
    assert code == OK, details
    listed = decode_response("user.sessions.list", response.payload_bytes)["sessions"]
    assert session.device_session_id in [s["device_session_id"] for s in listed]


async def test_business_error_is_a_signed_result_not_a_status(stack, stub):
    session = stack.new_session()
    request = session.request(
        "lobby.game.open-enrollment",
        encode_request("lobby.game.open-enrollment", {"game_id": "no-such-game"}),
    )
    code, details, response = await call(stub, request)
    assert code == OK, details
    assert response.result_code == "not_found"
    assert_signed(response, request, stack.server_public_key)
    assert decode_error_response(response.payload_bytes)[0] == "not_found"


async def test_the_client_sdk_talks_to_the_real_service(stack):
    session = stack.new_session("sdk")
    async with EdgeClient(
        command_addr=stack.gateway.target,
        device_session_id=session.device_session_id,
        device_key=DeviceKey(bytes(session.key)),
        server_public_key=stack.server_public_key,
    ) as client:
        body = await client.call_json("user.account.get", {})
    assert body["account"]["user_id"] == session.user_id


# --- rejections, in pipeline order -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "details"),
    [
        (lambda r: r.ClearField("protocol_version"), "protocol_version must not be empty"),
        (lambda r: r.ClearField("device_session_id"), "device_session_id must not be empty"),
        (lambda r: r.ClearField("message_type"), "message_type must not be empty"),
        (lambda r: setattr(r, "message_type", "user account"), "message_type is malformed"),
        (lambda r: r.ClearField("timestamp_ms"), "timestamp_ms must be positive"),
        (lambda r: r.ClearField("request_id"), "request_id must not be empty"),
        (lambda r: setattr(r, "request_id", "has space"), "request_id is malformed"),
        (lambda r: r.ClearField("payload_hash"), "payload_hash must not be empty"),
        (lambda r: r.ClearField("signature"), "signature must not be empty"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_malformed_envelope_is_invalid_argument(stack, stub, mutate, details):
    session = stack.new_session()
    request = session.request("user.account.get", encode_request("user.account.get"))
    mutate(request)
    assert await call(stub, request) == (grpc.StatusCode.INVALID_ARGUMENT, details, None)


async def test_unsupported_protocol_version(stack, stub):
    session = stack.new_session()
    request = session.request("user.account.get", b"", protocol_version="v2")
    assert await call(stub, request) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "unsupported protocol_version",
        None,
    )


async def test_unknown_session(stub):
    stranger = DeviceSession("no-such-session", nacl.signing.SigningKey.generate())
    assert await call(stub, stranger.request("user.account.get", b"")) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "unknown device session",
        None,
    )


async def test_revoked_session_from_a_stream_snapshot(stack, stub):
    session = crafted_session(stack, status=SessionStatus.REVOKED)
    outcome = await until(
        stub, lambda: session.request("test.unrouted"), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert outcome == (grpc.StatusCode.FAILED_PRECONDITION, "device session is revoked", None)


async def test_payload_hash_of_the_wrong_length(stack, stub):
    session = stack.new_session()
    for claimed in (b"\x00" * 31, b"\x00" * 33, hashlib.sha256(b"").hexdigest().encode()):
        request = session.request("user.account.get", b"abc", claimed_hash=claimed)
        assert await call(stub, request) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "payload_hash must be a 32-byte SHA-256 digest",
            None,
        )


async def test_payload_hash_that_does_not_match(stack, stub):
    session = stack.new_session()
    request = session.request(
        "user.account.get", b"abc", claimed_hash=hashlib.sha256(b"abd").digest()
    )
    assert await call(stub, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "payload_hash does not match payload_bytes",
        None,
    )


async def test_invalid_signatures(stack, stub):
    session = stack.new_session()
    flipped = session.request("user.account.get", encode_request("user.account.get"))
    flipped.signature = bytes([flipped.signature[0] ^ 1]) + flipped.signature[1:]
    truncated = session.request("user.account.get", encode_request("user.account.get"))
    truncated.signature = truncated.signature[:63]
    random_key = session.request(
        "user.account.get",
        encode_request("user.account.get"),
        signing_key=nacl.signing.SigningKey.generate(),
    )
    # A signed field changed after signing: the signature no longer covers the request.
    retargeted = session.request("user.account.get", encode_request("user.account.get"))
    retargeted.message_type = "user.sessions.list"
    for request in (flipped, truncated, random_key, retargeted):
        assert await call(stub, request) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "invalid request signature",
            None,
        )


async def test_signature_by_another_sessions_key(stack, stub):
    victim, attacker = stack.new_session(), stack.new_session()
    request = victim.request(
        "user.account.get", encode_request("user.account.get"), signing_key=attacker.key
    )
    assert await call(stub, request) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "invalid request signature",
        None,
    )


@pytest.mark.parametrize(
    "bad_key",
    ["not base64 at all!", base64.b64encode(b"\x01" * 31).decode(), ""],
    ids=["not-base64", "31-bytes", "empty"],
)
async def test_malformed_cached_public_key_fails_closed(stack, stub, bad_key):
    session = crafted_session(stack, public_key=bad_key)
    outcome = await until(
        stub, lambda: session.request("test.unrouted"), grpc.StatusCode.UNAVAILABLE
    )
    assert outcome == (grpc.StatusCode.UNAVAILABLE, "session cache is unavailable", None)


@pytest.mark.parametrize("skew_ms", [-6 * 60_000, 6 * 60_000], ids=["past", "future"])
async def test_stale_requests(stack, stub, skew_ms):
    session = stack.new_session()
    request = session.request(
        "user.account.get", encode_request("user.account.get"), timestamp_ms=now_ms() + skew_ms
    )
    assert await call(stub, request) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "request timestamp is outside the freshness window",
        None,
    )


async def test_replay_is_detected_per_session(stack, stub):
    first, second = stack.new_session(), stack.new_session()
    request = first.request("user.account.get", encode_request("user.account.get"))
    code, details, _ = await call(stub, request)
    assert code == OK, details
    assert await call(stub, request) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "request replay detected",
        None,
    )
    # The same request_id in another device session is a different reservation.
    other = second.request(
        "user.account.get", encode_request("user.account.get"), request_id=request.request_id
    )
    code, details, response = await call(stub, other)
    assert code == OK, details
    assert response.request_id == request.request_id


async def test_unrouted_message_type(stack, stub):
    session = stack.new_session()
    assert await call(stub, session.request("test.unrouted", b"")) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "message_type is not routed",
        None,
    )


async def test_adapter_rejects_a_payload_that_is_not_the_request_table(stack, stub):
    session = stack.new_session()
    request = session.request("user.account.get", b"\x01\x02\x03")
    assert await call(stub, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "payload_bytes is not a valid user.AccountGetRequest",
        None,
    )


async def test_subscribe_events_belongs_to_push_hub(stack, stub):
    session = stack.new_session()
    signed = session.request("gateway.subscribe_events", b"")
    request = pb.SubscribeEventsRequest(
        protocol_version=signed.protocol_version,
        device_session_id=signed.device_session_id,
        message_type=signed.message_type,
        timestamp_ms=signed.timestamp_ms,
        request_id=signed.request_id,
        payload_hash=signed.payload_hash,
        signature=signed.signature,
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.SubscribeEvents(request, timeout=5):
            pytest.fail("no event may arrive")
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert info.value.details() == "method is not allowed"


async def test_oversized_request_is_refused_before_any_work(stack, stub):
    """connectrpc refuses a body over GATEWAY_AUTHENTICATED_GRPC_MAX_MESSAGE_BYTES from its
    length prefix: the catalog's RESOURCE_EXHAUSTED, and the handler never runs (nothing
    is counted, nothing reaches the backend)."""
    session = stack.new_session()
    # Commands the backend served (not the harness's own session lookup, whose access-log
    # line may land after new_session returns).
    commands = lambda: stack.backend.log().count("/api/v1/user/")  # noqa: E731
    backend_commands = commands()
    before = counted(stack.gateway.metrics())
    request = session.request("user.account.get", b"\x00" * (1_048_576 + 1))
    code, details, _ = await call(stub, request)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == "request is too large"
    assert counted(stack.gateway.metrics()) == before
    assert commands() == backend_commands
    # Just under the bound is handled normally (here: rejected by the adapter as not a table).
    request = session.request("user.account.get", b"\x00" * 1_000_000)
    code, details, _ = await call(stub, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT


# --- revocation while requests flow ---------------------------------------------------------


async def test_revocation_on_the_stream_stops_the_next_request_at_the_edge(stack, stub):
    email = f"revoke-{uuid.uuid4().hex[:8]}@example.com"
    keeper = stack.backend.new_session(email)
    doomed = stack.backend.new_session(email)
    assert keeper.user_id == doomed.user_id

    results: list[tuple] = []
    stop = asyncio.Event()

    async def flow() -> None:
        while not stop.is_set():
            request = doomed.request("user.account.get", encode_request("user.account.get"))
            results.append(await call(stub, request))
            await asyncio.sleep(0.01)

    flowing = asyncio.create_task(flow())
    try:
        await asyncio.sleep(0.2)
        revoke = keeper.request(
            "user.sessions.revoke",
            encode_request("user.sessions.revoke", {"device_session_id": doomed.device_session_id}),
        )
        code, details, response = await call(stub, revoke)
        assert code == OK, details
        assert response.result_code == "ok"
        # The snapshot travels backend -> Redis stream -> gateway cache.
        deadline = time.monotonic() + 5
        while not any(r[0] == grpc.StatusCode.FAILED_PRECONDITION for r in results):
            assert time.monotonic() < deadline, results[-3:]
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await flowing
    first_reject = next(
        i for i, r in enumerate(results) if r[0] == grpc.StatusCode.FAILED_PRECONDITION
    )
    assert all(r[0] == OK for r in results[:first_reject])
    assert all(
        r == (grpc.StatusCode.FAILED_PRECONDITION, "device session is revoked", None)
        for r in results[first_reject:]
    )

    # Rejected at the edge: no session lookup, no user route reaches the backend any more.
    await asyncio.sleep(0.3)
    backend_lines = len(stack.backend.log().splitlines())
    for _ in range(5):
        request = doomed.request("user.account.get", encode_request("user.account.get"))
        assert await call(stub, request) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "device session is revoked",
            None,
        )
    await asyncio.sleep(0.3)
    assert len(stack.backend.log().splitlines()) == backend_lines
    # The keeper is untouched.
    code, details, _ = await call(
        stub, keeper.request("user.account.get", encode_request("user.account.get"))
    )
    assert code == OK, details


# --- metrics ---------------------------------------------------------------------------------


async def test_metrics_families_and_labels(stack, stub):
    session = stack.new_session()
    code, _, _ = await call(
        stub, session.request("user.account.get", encode_request("user.account.get"))
    )
    assert code == OK
    await call(stub, session.request("test.unrouted", b""))
    with stack.redis() as client:
        client.xadd(SESSION_STREAM, {b"v": b"1", b"kind": b"session.snapshot", b"session": b"{"})
        client.xadd(SESSION_STREAM, {b"v": b"9"})
    deadline = time.monotonic() + 20
    while True:
        text = stack.gateway.metrics()
        # Both entries: the reader may have counted one before it reads the other.
        dropped = all(
            f'gateway_internal_event_drops_total{{reason="{reason}"' in text
            for reason in ("invalid_session_record", "unsupported_version")
        )
        if dropped or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert "# TYPE gateway_authenticated_grpc_requests_total counter" in text
    assert "# TYPE gateway_authenticated_grpc_duration_seconds histogram" in text
    assert "# TYPE gateway_internal_event_drops_total counter" in text
    assert (
        'gateway_authenticated_grpc_requests_total{message_type="user.account.get",'
        'reject_reason="",result_code="ok",rpc="ExecuteCommand"}'
    ) in text
    # Unrouted (attacker-chosen) message types never become label values.
    assert 'message_type="test.unrouted"' not in text
    assert (
        'gateway_authenticated_grpc_requests_total{message_type="other",'
        'reject_reason="route_not_found",result_code="UNIMPLEMENTED",rpc="ExecuteCommand"}'
    ) in text
    assert (
        'gateway_internal_event_drops_total{reason="invalid_session_record",stream="session_events"}'
    ) in text
    assert (
        'gateway_internal_event_drops_total{reason="unsupported_version",stream="session_events"}'
    ) in text
