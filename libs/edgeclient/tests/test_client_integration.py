"""EdgeClient and PublicAuthClient against stand-ins on real 127.0.0.1 sockets.

The stand-in gateway verifies each request's Ed25519 signature itself and
answers with responses and events signed by its own key, so these tests run
the whole signing and verification path over gRPC.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from edgeclient import (
    BusinessError,
    DeviceKey,
    EdgeClient,
    EventHistoryGoneError,
    EventVerificationError,
    GatewayError,
    PublicApiError,
    PublicAuthClient,
    RequestEncodingError,
    ResponseVerificationError,
    UnknownMessageTypeError,
    VerifiedEvent,
)
from edgeclient.client import Reconnect
from edgeclient.jsonapi import decode_event
from edgeclient.testing import (
    HISTORY_GONE,
    HISTORY_UNAVAILABLE,
    ReceivedCommand,
    Reject,
    StandInGateway,
    StandInPublicRest,
    business_error,
    ok,
)
from edgecore.catalog import SERVER_TIME_EVENT_TYPE, SUBSCRIBE_EVENTS_MESSAGE_TYPE
from edgecore.fbjson import default_codec
from edgecore.payloads import decode_server_time_event, decode_subscribe_options
from edgecore.signing import event_signing_input, payload_hash

pytestmark = pytest.mark.integration

SESSION = "ds-test-1"
ACCOUNT = {
    "account": {"user_id": "u-1", "email": "ann@example.com", "display_name": "Ann"},
    "settings": {"preferred_language": "en", "time_zone": "Europe/Berlin"},
}
INVITE = {"invite_id": "inv-1", "game_id": "g-1", "game_name": "Andromeda"}


@pytest.fixture
async def gateway() -> AsyncIterator[StandInGateway]:
    async with StandInGateway() as gw:
        codec = default_codec()
        gw.handlers["user.account.get"] = lambda cmd: ok(
            codec.encode("user.AccountGetResponse", ACCOUNT)
        )
        yield gw


@pytest.fixture
def device_key(gateway: StandInGateway) -> DeviceKey:
    key = DeviceKey.generate()
    gateway.register_session(SESSION, key.public_key)
    return key


@pytest.fixture
async def client(gateway: StandInGateway, device_key: DeviceKey) -> AsyncIterator[EdgeClient]:
    async with EdgeClient(
        command_addr=gateway.address,
        device_session_id=SESSION,
        device_key=device_key,
        server_public_key=gateway.server_public_key,
    ) as edge:
        yield edge


# --- ExecuteCommand ----------------------------------------------------------


async def test_verified_call(gateway: StandInGateway, client: EdgeClient) -> None:
    payload = default_codec().encode("user.AccountGetRequest", {})
    result = await client.execute(
        "user.account.get", payload, request_id="req-1", trace_id="trace-1"
    )
    assert result.ok
    assert result.request_id == "req-1"
    assert default_codec().decode("user.AccountGetResponse", result.payload)["account"] == {
        **ACCOUNT["account"],
        "created_at_ms": 0,
        "updated_at_ms": 0,
    }
    [received] = gateway.received
    assert received.request_id == "req-1"
    assert received.trace_id == "trace-1"
    assert received.payload == payload


async def test_call_json_round_trip(client: EdgeClient) -> None:
    answer = await client.call_json("user.account.get", {})
    assert answer["account"]["display_name"] == "Ann"
    assert answer["settings"]["time_zone"] == "Europe/Berlin"


async def test_default_request_ids_are_unique(gateway: StandInGateway, client: EdgeClient) -> None:
    await client.call_json("user.account.get")
    await client.call_json("user.account.get")
    first, second = (cmd.request_id for cmd in gateway.received)
    assert first != second


def _flip_signature(response: Any) -> None:
    response.signature = bytes([response.signature[0] ^ 0x80]) + response.signature[1:]


def _wrong_request_id(response: Any) -> None:
    response.request_id = "someone-else"


def _payload_swapped(response: Any) -> None:
    response.payload_bytes = b"\x00" + response.payload_bytes


def _hash_swapped(response: Any) -> None:
    response.payload_hash = payload_hash(b"other")


def _wrong_version(response: Any) -> None:
    response.protocol_version = "v2"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_flip_signature, "signature is not valid"),
        (_wrong_request_id, "does not answer request"),
        (_payload_swapped, "payload_hash does not match payload_bytes"),
        (_hash_swapped, "payload_hash does not match payload_bytes"),
        (_wrong_version, "protocol_version"),
    ],
    ids=["bad-signature", "wrong-request-id", "payload-changed", "hash-changed", "version"],
)
async def test_unverifiable_response_raises(
    gateway: StandInGateway, client: EdgeClient, tamper: Any, reason: str
) -> None:
    gateway.response_tamper = tamper
    with pytest.raises(ResponseVerificationError, match=reason):
        await client.execute("user.account.get", b"")
    with pytest.raises(ResponseVerificationError):
        await client.call_json("user.account.get", {})


async def test_response_signed_by_another_key_raises(
    gateway: StandInGateway, device_key: DeviceKey
) -> None:
    async with EdgeClient(
        command_addr=gateway.address,
        device_session_id=SESSION,
        device_key=device_key,
        server_public_key=DeviceKey.generate().public_key,
    ) as edge:
        with pytest.raises(ResponseVerificationError, match="signature is not valid"):
            await edge.call_json("user.account.get")


async def test_business_error(gateway: StandInGateway, client: EdgeClient) -> None:
    gateway.handlers["lobby.invite.redeem"] = lambda cmd: business_error(
        "invite_not_found", "invite does not exist"
    )
    result = await client.execute("lobby.invite.redeem", b"")
    assert not result.ok
    assert result.result_code == "invite_not_found"
    with pytest.raises(BusinessError) as caught:
        await client.call_json("lobby.invite.redeem", {"invite_id": "inv-404"})
    assert (caught.value.result_code, caught.value.code, caught.value.message) == (
        "invite_not_found",
        "invite_not_found",
        "invite does not exist",
    )
    assert str(caught.value) == "business error invite_not_found: invite does not exist"


async def test_grpc_error_from_handler(gateway: StandInGateway, client: EdgeClient) -> None:
    def unavailable(cmd: ReceivedCommand) -> tuple[str, bytes]:
        raise Reject(grpc.StatusCode.UNAVAILABLE, "downstream service is unavailable")

    gateway.handlers["user.account.get"] = unavailable
    with pytest.raises(GatewayError) as caught:
        await client.call_json("user.account.get")
    assert caught.value.code_name == "UNAVAILABLE"
    assert caught.value.message == "downstream service is unavailable"


async def test_grpc_errors_of_the_ingress_pipeline(
    gateway: StandInGateway, client: EdgeClient, device_key: DeviceKey
) -> None:
    with pytest.raises(GatewayError) as caught:
        await client.execute("user.games.report", b"")
    assert (caught.value.code_name, caught.value.message) == (
        "UNIMPLEMENTED",
        "message_type is not routed",
    )

    await client.execute("user.account.get", b"", request_id="once")
    with pytest.raises(GatewayError) as caught:
        await client.execute("user.account.get", b"", request_id="once")
    assert (caught.value.code_name, caught.value.message) == (
        "FAILED_PRECONDITION",
        "request replay detected",
    )

    with pytest.raises(GatewayError) as caught:
        await client.execute("user.account.get", b"", timestamp_ms=1)
    assert caught.value.code_name == "FAILED_PRECONDITION"
    assert caught.value.message == "request timestamp is outside the freshness window"

    gateway.register_session(SESSION, DeviceKey.generate().public_key)  # another device's key
    with pytest.raises(GatewayError) as caught:
        await client.execute("user.account.get", b"")
    assert (caught.value.code_name, caught.value.message) == (
        "UNAUTHENTICATED",
        "invalid request signature",
    )

    gateway.register_session(SESSION, device_key.public_key)
    gateway.revoked.add(SESSION)
    with pytest.raises(GatewayError) as caught:
        await client.execute("user.account.get", b"")
    assert str(caught.value) == "gateway error FAILED_PRECONDITION: device session is revoked"


async def test_unreachable_gateway_is_a_gateway_error(device_key: DeviceKey) -> None:
    async with EdgeClient(
        command_addr="127.0.0.1:1",
        device_session_id=SESSION,
        device_key=device_key,
        server_public_key=device_key.public_key,
        timeout=2,
    ) as edge:
        with pytest.raises(GatewayError) as caught:
            await edge.execute("user.account.get", b"")
    assert caught.value.code_name in {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
    assert "\n" not in str(caught.value)


async def test_json_helpers_reject_bad_input(client: EdgeClient) -> None:
    with pytest.raises(UnknownMessageTypeError):
        await client.call_json("user.nothing.here", {})
    with pytest.raises(UnknownMessageTypeError):
        await client.call_json("garbage", {})
    with pytest.raises(RequestEncodingError, match=r"user\.AccountGetRequest"):
        await client.call_json("user.account.get", {"no_such_field": 1})


# --- SubscribeEvents ---------------------------------------------------------


async def _take(stream: AsyncIterator[VerifiedEvent], count: int) -> list[VerifiedEvent]:
    events = []
    async with asyncio.timeout(10):
        async for event in stream:
            events.append(event)
            if len(events) == count:
                break
    return events


async def test_subscribe_yields_verified_bootstrap_and_notifications(
    gateway: StandInGateway, client: EdgeClient
) -> None:
    invite = default_codec().encode("notification.LobbyInviteReceivedEvent", INVITE)
    async with contextlib.aclosing(client.subscribe(request_id="open-1", trace_id="t-9")) as stream:
        [bootstrap] = await _take(stream, 1)
        assert bootstrap.event_type == SERVER_TIME_EVENT_TYPE
        assert bootstrap.event_id == "open-1"
        assert bootstrap.trace_id == "t-9"
        assert abs(decode_server_time_event(bootstrap.payload) - bootstrap.timestamp_ms) < 5_000
        assert decode_event(bootstrap) == {
            "server_time_ms": decode_server_time_event(bootstrap.payload)
        }

        await gateway.wait_for_streams(1)
        delivered = await gateway.publish(
            "lobby.invite.received", invite, event_id="evt-1", request_id="r-7", trace_id="t-7"
        )
        assert delivered == 1
        await gateway.publish("lobby.future.kind", b"\x01\x02")
        first, second = await _take(stream, 2)

    assert (first.event_type, first.event_id, first.request_id, first.trace_id) == (
        "lobby.invite.received",
        "evt-1",
        "r-7",
        "t-7",
    )
    assert decode_event(first)["game_name"] == "Andromeda"
    assert decode_event(second) == {"payload_hex": "0102"}
    [opening] = gateway.received
    assert opening.message_type == SUBSCRIBE_EVENTS_MESSAGE_TYPE
    assert opening.payload == b""
    # Leaving the stream cancels the call and the stand-in drops it.
    async with asyncio.timeout(5):
        while gateway.active_streams:
            await asyncio.sleep(0.01)


async def test_tampered_event_raises_and_ends_the_stream(
    gateway: StandInGateway, client: EdgeClient
) -> None:
    stream = client.subscribe()
    [bootstrap] = await _take(stream, 1)
    await gateway.wait_for_streams(1)

    def tamper(event: Any) -> None:
        event.payload_bytes = b"forged"
        event.payload_hash = payload_hash(b"forged")

    gateway.event_tamper = tamper
    await gateway.publish("lobby.invite.received", b"genuine")
    with pytest.raises(EventVerificationError, match="signature is not valid"):
        await _take(stream, 1)
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert bootstrap.event_type == SERVER_TIME_EVENT_TYPE


async def test_bootstrap_must_answer_the_opening_request(
    gateway: StandInGateway, client: EdgeClient
) -> None:
    def resign_with_other_id(event: Any) -> None:
        event.event_id = "not-the-request-id"
        event.signature = gateway.signer.sign(
            event_signing_input(
                event_type=event.event_type,
                event_id=event.event_id,
                timestamp_ms=event.timestamp_ms,
                request_id=event.request_id,
                trace_id=event.trace_id,
                payload_hash=event.payload_hash,
            )
        )

    gateway.event_tamper = resign_with_other_id
    with pytest.raises(EventVerificationError, match="not the opening request_id"):
        await _take(client.subscribe(request_id="open-2"), 1)


async def test_bootstrap_must_come_first(gateway: StandInGateway, client: EdgeClient) -> None:
    def retype(event: Any) -> None:
        event.event_type = "lobby.invite.received"
        event.signature = gateway.signer.sign(
            event_signing_input(
                event_type=event.event_type,
                event_id=event.event_id,
                timestamp_ms=event.timestamp_ms,
                request_id=event.request_id,
                trace_id=event.trace_id,
                payload_hash=event.payload_hash,
            )
        )

    gateway.event_tamper = retype
    with pytest.raises(EventVerificationError, match=r"expected 'gateway\.server_time'"):
        await _take(client.subscribe(), 1)


async def test_stream_closed_with_status_raises_gateway_error(
    gateway: StandInGateway, client: EdgeClient
) -> None:
    stream = client.subscribe()
    await _take(stream, 1)
    await gateway.wait_for_streams(1)
    await gateway.close_streams(
        grpc.StatusCode.FAILED_PRECONDITION, "device session is revoked", device_session_id=SESSION
    )
    with pytest.raises(GatewayError) as caught:
        await _take(stream, 1)
    assert (caught.value.code_name, caught.value.message) == (
        "FAILED_PRECONDITION",
        "device session is revoked",
    )


async def test_subscribe_rejected_at_open(gateway: StandInGateway, client: EdgeClient) -> None:
    gateway.revoked.add(SESSION)
    with pytest.raises(GatewayError, match="FAILED_PRECONDITION: device session is revoked"):
        await _take(client.subscribe(), 1)


async def test_split_addresses_route_each_method(device_key: DeviceKey) -> None:
    seed = bytes(range(32))
    async with StandInGateway(seed) as commands, StandInGateway(seed) as events:
        for gw in (commands, events):
            gw.register_session(SESSION, device_key.public_key)
        commands.handlers["user.account.get"] = lambda cmd: ok(b"")
        async with EdgeClient(
            command_addr=commands.address,
            events_addr=events.address,
            device_session_id=SESSION,
            device_key=device_key,
            server_public_key=commands.server_public_key,
        ) as edge:
            assert (await edge.execute("user.account.get", b"")).ok
            [bootstrap] = await _take(edge.subscribe(), 1)
        assert bootstrap.event_type == SERVER_TIME_EVENT_TYPE
        assert [c.message_type for c in commands.received] == ["user.account.get"]
        assert [c.message_type for c in events.received] == [SUBSCRIBE_EVENTS_MESSAGE_TYPE]


# --- resuming streams --------------------------------------------------------


def _opened_from(gateway: StandInGateway) -> list[str | None]:
    """The resume position each SubscribeEvents open asked for (None: from now)."""
    return [decode_subscribe_options(c.payload) for c in gateway.received]


async def test_every_event_carries_its_position(
    gateway: StandInGateway, client: EdgeClient
) -> None:
    async with contextlib.aclosing(client.subscribe()) as stream:
        [bootstrap] = await _take(stream, 1)
        assert bootstrap.position == gateway.head_position
        await gateway.wait_for_streams(1)
        await gateway.publish("lobby.invite.received", b"\x01")
        await gateway.publish("lobby.invite.received", b"\x02")
        first, second = await _take(stream, 2)
    assert first.position == gateway.history[0].position
    assert second.position == gateway.history[1].position == gateway.head_position
    assert len({bootstrap.position, first.position, second.position}) == 3
    assert _opened_from(gateway) == [None]
    assert gateway.received[0].payload == b""  # no options: start from now


async def test_subscribe_resumes_after_a_position(
    gateway: StandInGateway, client: EdgeClient
) -> None:
    other = "ds-other"
    gateway.register_session(other, DeviceKey.generate().public_key)
    for n in range(1, 4):
        await gateway.publish("lobby.invite.received", b"", event_id=f"e{n}")
    resume = gateway.history[0].position  # after e1
    await gateway.publish("lobby.invite.received", b"", event_id="e4", device_session_id=other)
    await gateway.publish("lobby.invite.received", b"", event_id="e5", device_session_id=SESSION)

    stream = client.subscribe(request_id="open-r", resume_position=resume)
    async with contextlib.aclosing(stream):
        bootstrap, *missed = await _take(stream, 4)
        await gateway.wait_for_streams(1)
        await gateway.publish("lobby.invite.received", b"", event_id="e6")
        [live] = await _take(stream, 1)
    assert (bootstrap.event_type, bootstrap.event_id, bootstrap.position) == (
        SERVER_TIME_EVENT_TYPE,
        "open-r",
        resume,
    )
    assert [e.event_id for e in missed] == ["e2", "e3", "e5"]  # e4 was another session's
    assert [e.position for e in missed] == [gateway.history[i].position for i in (1, 2, 4)]
    assert live.event_id == "e6"
    assert _opened_from(gateway) == [resume]


async def test_resuming_from_a_position_the_history_lost_is_history_gone(
    gateway: StandInGateway, client: EdgeClient
) -> None:
    await gateway.publish("lobby.invite.received", b"")
    old = gateway.history[0].position
    await gateway.publish("lobby.invite.received", b"")
    gateway.forget_history()
    with pytest.raises(EventHistoryGoneError) as caught:
        await _take(client.subscribe(resume_position=old), 1)
    assert (caught.value.code_name, caught.value.message) == (
        "OUT_OF_RANGE",
        "resume position is older than the event history",
    )
    assert caught.value.resume_position == old
    assert caught.value.permanent
    # The head itself is still a valid place to resume from: nothing after it is missing.
    [bootstrap] = await _take(client.subscribe(resume_position=gateway.head_position), 1)
    assert bootstrap.position == gateway.head_position


async def test_malformed_resume_position_is_refused(client: EdgeClient) -> None:
    with pytest.raises(GatewayError) as caught:
        await _take(client.subscribe(resume_position="not a position"), 1)
    assert (caught.value.code_name, caught.value.message, caught.value.permanent) == (
        "INVALID_ARGUMENT",
        "subscribe options are malformed",
        True,
    )


async def test_a_bootstrap_that_did_not_resume_fails_verification(
    gateway: StandInGateway, client: EdgeClient
) -> None:
    await gateway.publish("lobby.invite.received", b"")
    resume = gateway.head_position
    await gateway.publish("lobby.invite.received", b"")

    def skip_ahead(event: Any) -> None:  # the position is not signed: no re-signing needed
        if event.event_type == SERVER_TIME_EVENT_TYPE:
            event.position = gateway.head_position

    gateway.event_tamper = skip_ahead
    with pytest.raises(EventVerificationError, match="did not resume from"):
        await _take(client.subscribe(resume_position=resume), 1)


async def test_follow_resumes_across_reconnects_without_gap_or_duplicate(
    gateway: StandInGateway, client: EdgeClient
) -> None:
    steps: list[Reconnect] = []
    stream = client.follow(on_reconnect=steps.append, base_backoff=0.05, random=lambda: 1.0)
    async with contextlib.aclosing(stream):
        [first_bootstrap] = await _take(stream, 1)
        await gateway.wait_for_streams(1)
        await gateway.publish("lobby.invite.received", b"", event_id="e1")
        [e1] = await _take(stream, 1)
        gateway.open_rejects.append(HISTORY_UNAVAILABLE)  # the next open is refused once
        await gateway.close_streams(grpc.StatusCode.UNAVAILABLE, "gateway is shutting down")
        # Published while no stream is open (or while the old one ends): still owed.
        await gateway.publish("lobby.invite.received", b"", event_id="e2")
        await gateway.publish("lobby.invite.received", b"", event_id="e3")
        second_bootstrap, e2, e3 = await _take(stream, 3)
        await gateway.wait_for_streams(1)
        await gateway.publish("lobby.invite.received", b"", event_id="e4")
        [e4] = await _take(stream, 1)
    assert second_bootstrap.event_type == SERVER_TIME_EVENT_TYPE
    assert second_bootstrap.position == e1.position
    assert [e.event_id for e in (e1, e2, e3, e4)] == ["e1", "e2", "e3", "e4"]
    assert _opened_from(gateway) == [None, e1.position, e1.position]
    assert [(s.cause and s.cause.message, s.resume_position) for s in steps] == [
        ("gateway is shutting down", e1.position),
        ("event history is unavailable", e1.position),
    ]
    assert first_bootstrap.position != e1.position


async def test_follow_ends_when_the_history_is_gone(
    gateway: StandInGateway, client: EdgeClient
) -> None:
    steps: list[Reconnect] = []
    stream = client.follow(on_reconnect=steps.append, base_backoff=0.01)
    async with contextlib.aclosing(stream):
        await _take(stream, 1)
        await gateway.wait_for_streams(1)
        await gateway.publish("lobby.invite.received", b"", event_id="e1")
        [e1] = await _take(stream, 1)
        await gateway.close_streams(*HISTORY_GONE)  # a live stream learns its history is gone
        with pytest.raises(EventHistoryGoneError) as caught:
            await _take(stream, 1)
    assert caught.value.resume_position == e1.position
    assert steps == []
    assert len(gateway.received) == 1


async def test_follow_from_a_lost_position_is_not_retried(
    gateway: StandInGateway, client: EdgeClient
) -> None:
    await gateway.publish("lobby.invite.received", b"")
    old = gateway.head_position
    await gateway.publish("lobby.invite.received", b"")
    gateway.forget_history()
    with pytest.raises(EventHistoryGoneError):
        await _take(client.follow(resume_position=old, base_backoff=0.01), 1)
    assert _opened_from(gateway) == [old]


# --- public REST -------------------------------------------------------------


@pytest.fixture
def public_rest(gateway: StandInGateway) -> Iterator[StandInPublicRest]:
    with StandInPublicRest(gateway) as rest:
        yield rest


async def test_public_login_creates_a_usable_session(
    gateway: StandInGateway, public_rest: StandInPublicRest
) -> None:
    key = DeviceKey.generate()
    async with PublicAuthClient(public_rest.url) as auth:
        challenge = await auth.send_email_code("ann@example.com", accept_language="ru, en;q=0.8")
        session = await auth.confirm_email_code(challenge, "123456", key.public_key_b64, "UTC")
    assert public_rest.sent == [("ann@example.com", "ru, en;q=0.8")]
    assert base64.b64decode(public_rest.confirmed[0]["client_public_key"]) == key.public_key
    assert public_rest.confirmed[0]["time_zone"] == "UTC"
    async with EdgeClient(
        command_addr=gateway.address,
        device_session_id=session,
        device_key=key,
        server_public_key=gateway.server_public_key,
    ) as edge:
        assert (await edge.call_json("user.account.get"))["account"]["user_id"] == "u-1"


async def test_public_api_errors(public_rest: StandInPublicRest) -> None:
    async with PublicAuthClient(public_rest.url + "/") as auth:
        with pytest.raises(PublicApiError) as caught:
            await auth.send_email_code("not-an-email")
        assert (caught.value.status, caught.value.code) == (400, "invalid_request")

        challenge = await auth.send_email_code("ann@example.com")
        with pytest.raises(PublicApiError) as caught:
            await auth.confirm_email_code(
                challenge, "000000", DeviceKey.generate().public_key_b64, "UTC"
            )
        assert (caught.value.status, caught.value.code, caught.value.message) == (
            400,
            "invalid_code",
            "the code is wrong or has expired",
        )

        public_rest.fail_next = (503, "service_unavailable", "auth service is unavailable")
        with pytest.raises(PublicApiError) as caught:
            await auth.send_email_code("ann@example.com")
        assert str(caught.value) == (
            "public API error (HTTP 503) service_unavailable: auth service is unavailable"
        )


async def test_public_api_unreachable() -> None:
    async with PublicAuthClient("http://127.0.0.1:1", timeout=2) as auth:
        with pytest.raises(PublicApiError) as caught:
            await auth.send_email_code("ann@example.com")
    assert caught.value.status == 0
    assert caught.value.code in {"unreachable", "timeout"}


def test_a_rate_limit_reports_its_retry_after_and_is_worth_retrying() -> None:
    import grpc.aio  # noqa: PLC0415

    from edgeclient.client import _gateway_error  # noqa: PLC0415

    def reject(code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, str], ...]) -> Any:
        return _gateway_error(
            grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details)
        )

    limited = reject(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "authenticated request rate limit exceeded",
        (("retry-after", "7"),),
    )
    assert limited.retry_after == 7
    assert str(limited) == (
        "gateway error RESOURCE_EXHAUSTED: authenticated request rate limit exceeded (retry in 7 s)"
    )
    assert not limited.permanent
    revoked = reject(grpc.StatusCode.FAILED_PRECONDITION, "device session is revoked", ())
    assert (revoked.retry_after, revoked.permanent) == (None, True)
    assert not reject(grpc.StatusCode.UNAVAILABLE, "gateway is shutting down", ()).permanent
    # UNAUTHENTICATED about this address's session lookups, not the session: retry later.
    lookups = reject(grpc.StatusCode.UNAUTHENTICATED, "session lookup rate limit exceeded", ())
    assert not lookups.permanent
    assert reject(grpc.StatusCode.UNAUTHENTICATED, "unknown device session", ()).permanent


async def test_a_public_rate_limit_says_when_to_retry() -> None:
    import httpx  # noqa: PLC0415

    from edgeclient.errors import PublicApiError  # noqa: PLC0415
    from edgeclient.public_auth import PublicAuthClient  # noqa: PLC0415

    def limited(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "rate_limited", "message": "rate limit exceeded"}}
        return httpx.Response(429, json=body, headers={"Retry-After": "42"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(limited))
    async with PublicAuthClient("http://public.test", http=http) as auth:
        with pytest.raises(PublicApiError) as err:
            await auth.send_email_code("ann@example.com")
    await http.aclose()
    assert (err.value.status, err.value.code, err.value.retry_after) == (429, "rate_limited", 42)
    assert str(err.value) == (
        "public API error (HTTP 429) rate_limited: rate limit exceeded (retry in 42 s)"
    )
