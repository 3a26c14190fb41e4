"""Every protocol on each authenticated port: Connect, gRPC-Web and gRPC, HTTP/1.1 and h2c.

One real system for the module (Redis, mock backend, public-rest, edge-grpc,
push-hub as processes, ``edgecore.testing.system.System``), with CORS allowed
for ``https://play.example.com`` on both authenticated services. On each
service's single port (GATEWAY_AUTHENTICATED_GRPC_ADDR) this proves:

* the happy paths on every client wire (``protocol_clients.CLIENT_WIRES``):
  a verified ``user.account.get`` through edge-grpc, and a SubscribeEvents
  stream on push-hub that gets the signed ``gateway.server_time`` bootstrap and
  then a published client event; every signature is checked against the
  server public key; the HTTP version each pyqwest transport saw is asserted,
  so "h2c" really is HTTP/2 and "http1" really is HTTP/1.1;
* one reject per step of the verification pipeline (docs/edge-grpc.md), plus
  the wrong method and an oversized body, on every wire, with the catalog's
  code and message compared literally;
* undecodable bodies on every protocol (garbage protobuf, invalid UTF-8 in
  ``request_id``, truncated frames, malformed JSON, wrong content types):
  INVALID_ARGUMENT "request envelope is malformed" in the protocol the client
  spoke, and no error line in the service's log;
* CORS: preflights from the allowed and from another origin, and the headers
  on actual responses.

Each test that talks to a service checks that service's log for error lines
written during the test: a rejected (sentinel) request whose audit line must
appear in the log first makes that check independent of log relay timing.
Each test logs in a fresh device session: the per-session rate limit is set
low (``SESSION_BURST`` tokens, no practical refill), so the rate-limit reject is
deterministic, and no test can starve another.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc
import grpc.aio
import httpx
import pytest
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgeclient import jsonapi
from edgeclient.envelope import now_ms, sign_request, verify_event, verify_response
from edgeclient.errors import ResponseVerificationError
from edgeclient.keys import DeviceKey
from edgecore.catalog import PROTOCOL_VERSION, SERVER_TIME_EVENT_TYPE
from edgecore.payloads import decode_server_time_event
from edgecore.rpc.asgi import DISCONNECT_POLL
from edgecore.streams import ClientEvent, StreamPublisher
from edgecore.testing.redis_server import RedisServer
from edgecore.testing.system import System, SystemPorts
from galaxy.gateway.v1 import edge_gateway_pb2 as pb
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc
from tests.e2e.harness import Gateway, Player, Secrets

from .protocol_clients import (
    CLIENT_WIRES,
    CONNECT_HTTP_STATUS,
    EXECUTE_COMMAND_PATH,
    SUBSCRIBE_EVENTS_PATH,
    GatewayClient,
    RpcFailure,
    Wire,
    frame,
    open_client,
    raw_post,
    wire_status,
)

pytestmark = pytest.mark.integration

ALLOWED_ORIGIN: Final = "https://play.example.com"
OTHER_ORIGIN: Final = "https://evil.example.com"
MAX_MESSAGE_BYTES: Final = 1_048_576  # GATEWAY_AUTHENTICATED_GRPC_MAX_MESSAGE_BYTES default
SESSION_BURST: Final = 4
SESSION_EVENTS_STREAM: Final = "gateway:session_events"
EDGE: Final = "edge-grpc"
HUB: Final = "push-hub"
SERVICES: Final = (EDGE, HUB)
MALFORMED: Final = ("INVALID_ARGUMENT", "request envelope is malformed")

_RUN: Final = uuid.uuid4().hex[:8]
# Shared budgets are raised so nothing here limits another test; the per-session limit is
# the one the rate-limit reject exhausts: SESSION_BURST tokens, refilled once a day.
_AUTHENTICATED_ENV: Final = {
    **{
        f"GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_{dim}_RATE_LIMIT_{part}": value
        for dim in ("IP", "USER", "MESSAGE_CLASS", "SESSION_LOOKUP")
        for part, value in (("REQUESTS", "100000"), ("BURST", "10000"))
    },
    "GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_SESSION_RATE_LIMIT_REQUESTS": "1",
    "GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_SESSION_RATE_LIMIT_WINDOW": "24h",
    "GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_SESSION_RATE_LIMIT_BURST": str(SESSION_BURST),
    "GATEWAY_AUTHENTICATED_GRPC_CORS_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
    "GATEWAY_AUTHENTICATED_DOWNSTREAM_TIMEOUT": "5s",
    "GATEWAY_SHUTDOWN_TIMEOUT": "3s",
}
PROTOCOL_ENV: Final = {
    "public-rest": {
        "GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_PUBLIC_AUTH_RATE_LIMIT_REQUESTS": "100000",
        "GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_PUBLIC_AUTH_RATE_LIMIT_BURST": "10000",
        "GATEWAY_SHUTDOWN_TIMEOUT": "3s",
    },
    # Its own route-table key: a table another suite sealed under another key (same
    # Redis) would otherwise be refused with an error line in this log.
    EDGE: {
        **_AUTHENTICATED_ENV,
        "GATEWAY_REDIS_ROUTE_TABLE_KEY": f"protocols-{_RUN}:route_table",
        "GATEWAY_REDIS_ROUTE_EVENTS_STREAM": f"protocols-{_RUN}:route_events",
    },
    HUB: _AUTHENTICATED_ENV,
}


# ---------------------------------------------------------------------------- fixtures


def _wait_serving(address: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} never reported SERVING")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def system(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    if not redis_server.running:
        redis_server.start()
    system = System(
        run_dir=tmp_path_factory.mktemp("protocols"),
        redis_host=redis_server.host,
        redis_port=redis_server.port,
        redis_password=redis_server.password,
        ports=SystemPorts.free(),
        extra_env=PROTOCOL_ENV,
    )
    try:
        system.start()
        for service in SERVICES:
            _wait_serving(address_of(system, service))
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def gateway(system: System) -> Gateway:
    return Gateway(system, Secrets())


@pytest.fixture
async def player(gateway: Gateway) -> Player:
    """A fresh device session (and user): its own rate-limit bucket."""
    return await gateway.login(name="protocols")


@pytest.fixture
async def publisher(redis_server: RedisServer) -> AsyncIterator[StreamPublisher]:
    client = aioredis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password
    )
    try:
        yield StreamPublisher(client, session_stream=SESSION_EVENTS_STREAM)
    finally:
        await client.aclose()


def address_of(system: System, service: str) -> str:
    return f"127.0.0.1:{system.ports.of(service)}"


# ---------------------------------------------------------------------------- signing


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def envelope(
    player: Player,
    message_type: str,
    *,
    payload: bytes = b"",
    request_id: str | None = None,
    timestamp_ms: int | None = None,
    protocol_version: str = PROTOCOL_VERSION,
    device_session_id: str | None = None,
    key: DeviceKey | None = None,
    trace_id: str = "",
    replace: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of a request signed exactly as a client signs it; ``replace`` tampers after."""
    signed = sign_request(
        key or player.key,
        device_session_id=device_session_id or player.device_session_id,
        message_type=message_type,
        timestamp_ms=timestamp_ms if timestamp_ms is not None else now_ms(),
        request_id=request_id or unique("req"),
        payload=payload,
        protocol_version=protocol_version,
    )
    return {**signed.envelope_fields(), "trace_id": trace_id, **(replace or {})}


def account_get_payload() -> bytes:
    return jsonapi.encode_request("user.account.get", {})


# ---------------------------------------------------------------------------- logs


def _error_lines(text: str) -> list[str]:
    bad = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                level = json.loads(line).get("level")
            except ValueError:
                level = None
            if level in ("error", "critical") or '"level":"error"' in line:
                bad.append(line)
        elif "Traceback (most recent call last)" in line:
            bad.append(line)
    return bad


async def _log_barrier(system: System, service: str) -> None:
    """Wait until everything the service logged before now is in its log file.

    A request refused at step 2 writes one audit line naming its request id; once that
    line is in the file, so is every line the service wrote before it.
    """
    request_id = unique("log-barrier")
    key = DeviceKey.generate()
    signed = sign_request(
        key,
        device_session_id="ds-log-barrier",
        message_type="user.account.get" if service == EDGE else "gateway.subscribe_events",
        timestamp_ms=now_ms(),
        request_id=request_id,
        payload=b"",
        protocol_version="v0",
    )
    async with grpc.aio.insecure_channel(address_of(system, service)) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            if service == EDGE:
                await stub.ExecuteCommand(
                    pb.ExecuteCommandRequest(**signed.envelope_fields()), timeout=30
                )
            else:
                call = stub.SubscribeEvents(pb.SubscribeEventsRequest(**signed.envelope_fields()))
                await asyncio.wait_for(call.read(), 30)
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    log = system.logs_dir / f"{service}.log"
    async with asyncio.timeout(30):
        while request_id not in log.read_text("utf-8", errors="replace"):
            await asyncio.sleep(0.02)


@asynccontextmanager
async def no_error_logged(system: System, service: str) -> AsyncIterator[None]:
    """The block writes no error line (and no traceback) to the service's log."""
    log: Path = system.logs_dir / f"{service}.log"
    start = log.stat().st_size
    yield
    await _log_barrier(system, service)
    with log.open("rb") as stream:
        stream.seek(start)
        written = stream.read().decode("utf-8", errors="replace")
    assert _error_lines(written) == [], f"{service} logged errors:\n{written[-6000:]}"


# ---------------------------------------------------------------------------- calls


async def first_answer(client: GatewayClient, method: str, fields: dict[str, Any]) -> Any:
    """The response (ExecuteCommand) or first event (SubscribeEvents); raises RpcFailure."""
    if method == "ExecuteCommand":
        return await client.execute(pb.ExecuteCommandRequest(**fields))
    stream = await client.subscribe(pb.SubscribeEventsRequest(**fields))
    try:
        return await stream.next()
    finally:
        await stream.close()


def assert_wire(client: GatewayClient, wire: Wire) -> None:
    """Every response this client got came over the HTTP version the wire names."""
    assert client.http_versions == {wire.expected_http_version}


def own_method(service: str) -> str:
    return "ExecuteCommand" if service == EDGE else "SubscribeEvents"


def other_method(service: str) -> str:
    return "SubscribeEvents" if service == EDGE else "ExecuteCommand"


# ---------------------------------------------------------------------------- health


@pytest.mark.parametrize("service", SERVICES)
async def test_health_is_served_on_the_same_port(system: System, service: str) -> None:
    address = address_of(system, service)
    async with grpc.aio.insecure_channel(address) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="galaxy.gateway.v1.EdgeGateway"), timeout=30
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    raw = await raw_post(
        address,
        "/grpc.health.v1.Health/Check",
        content_type="application/json",
        body=b"{}",
        http2=False,
        headers={"connect-protocol-version": "1"},
    )
    assert (raw.status, json.loads(raw.body)) == (200, {"status": "SERVING"})


# ---------------------------------------------------------------------------- happy paths


@pytest.mark.parametrize("wire", CLIENT_WIRES, ids=lambda w: w.id)
async def test_verified_command_through_edge_grpc(
    system: System, gateway: Gateway, player: Player, wire: Wire
) -> None:
    request_id = unique("account")
    fields = envelope(
        player, "user.account.get", payload=account_get_payload(), request_id=request_id
    )
    async with no_error_logged(system, EDGE):
        async with open_client(wire, address_of(system, EDGE)) as client:
            response = await client.execute(pb.ExecuteCommandRequest(**fields))
        assert_wire(client, wire)

    result = verify_response(
        response, expected_request_id=request_id, server_public_key=gateway.server_key
    )
    assert result.ok
    account = jsonapi.decode_result("user.account.get", result)
    assert account["account"]["user_id"] == player.user_id
    # The check above is a real one: one flipped bit in the signature fails it.
    tampered = pb.ExecuteCommandResponse()
    tampered.CopyFrom(response)
    tampered.signature = bytes([response.signature[0] ^ 1]) + response.signature[1:]
    with pytest.raises(ResponseVerificationError):
        verify_response(
            tampered, expected_request_id=request_id, server_public_key=gateway.server_key
        )


@pytest.mark.parametrize("wire", CLIENT_WIRES, ids=lambda w: w.id)
async def test_event_stream_through_push_hub(
    system: System, gateway: Gateway, player: Player, publisher: StreamPublisher, wire: Wire
) -> None:
    request_id = unique("subscribe")
    trace_id = unique("trace")
    fields = envelope(player, "gateway.subscribe_events", request_id=request_id, trace_id=trace_id)
    event_id = unique("event")
    payload = f"invite for {player.user_id} over {wire.id}".encode()
    async with no_error_logged(system, HUB):
        async with open_client(wire, address_of(system, HUB)) as client:
            stream = await client.subscribe(pb.SubscribeEventsRequest(**fields))
            try:
                bootstrap = await stream.next()
                await publisher.publish_client_event(
                    ClientEvent(
                        user_id=player.user_id,
                        device_session_id=player.device_session_id,
                        event_type="lobby.invite.received",
                        event_id=event_id,
                        payload=payload,
                        request_id="req-upstream",
                        trace_id="trace-upstream",
                    )
                )
                published = await stream.next()
            finally:
                await stream.close()
        assert_wire(client, wire)

    first = verify_event(bootstrap, server_public_key=gateway.server_key)
    assert (first.event_type, first.event_id) == (SERVER_TIME_EVENT_TYPE, request_id)
    assert (first.request_id, first.trace_id) == (request_id, trace_id)
    assert decode_server_time_event(first.payload) > 0
    second = verify_event(published, server_public_key=gateway.server_key)
    assert (second.event_type, second.event_id, second.payload) == (
        "lobby.invite.received",
        event_id,
        payload,
    )
    assert (second.request_id, second.trace_id) == ("req-upstream", "trace-upstream")


# ---------------------------------------------------------------------------- pipeline rejects


@dataclass
class RejectContext:
    system: System
    service: str
    client: GatewayClient
    player: Player

    @property
    def method(self) -> str:
        return own_method(self.service)

    @property
    def message_type(self) -> str:
        return "user.account.get" if self.service == EDGE else "gateway.subscribe_events"

    @property
    def payload(self) -> bytes:
        return account_get_payload() if self.service == EDGE else b""

    def fields(self, **overrides: Any) -> dict[str, Any]:
        overrides.setdefault("payload", self.payload)
        message_type = overrides.pop("message_type", self.message_type)
        return envelope(self.player, message_type, **overrides)

    async def send(self, fields: dict[str, Any], method: str | None = None) -> Any:
        return await first_answer(self.client, method or self.method, fields)


async def _exhaust_session_budget(ctx: RejectContext) -> None:
    """Spend the session's rate-limit tokens over grpcio, until the limiter refuses."""
    async with grpc.aio.insecure_channel(address_of(ctx.system, ctx.service)) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        for _ in range(SESSION_BURST + 2):
            try:
                if ctx.service == EDGE:
                    # Passes step 9 (spending a token), then fails cheaply at step 11.
                    await stub.ExecuteCommand(
                        pb.ExecuteCommandRequest(
                            **ctx.fields(message_type="protocols.not-routed", payload=b"")
                        ),
                        timeout=30,
                    )
                else:
                    call = stub.SubscribeEvents(pb.SubscribeEventsRequest(**ctx.fields()))
                    try:
                        await asyncio.wait_for(call.read(), 30)
                    finally:
                        call.cancel()
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return
                if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:
                    raise
        raise AssertionError("the per-session rate limit never refused")


async def _replay(ctx: RejectContext) -> None:
    fields = ctx.fields()
    await ctx.send(fields)  # accepted the first time
    await ctx.send(fields)


async def _rate_limited(ctx: RejectContext) -> None:
    await _exhaust_session_budget(ctx)
    if ctx.service == EDGE:
        await ctx.send(ctx.fields(message_type="protocols.not-routed", payload=b""))
    else:
        await ctx.send(ctx.fields())


async def _wrong_method(ctx: RejectContext) -> None:
    if ctx.service == EDGE:
        await ctx.send(
            ctx.fields(message_type="gateway.subscribe_events", payload=b""),
            "SubscribeEvents",
        )
    else:
        await ctx.send(
            ctx.fields(message_type="user.account.get", payload=account_get_payload()),
            "ExecuteCommand",
        )


RejectStep = Callable[[RejectContext], Awaitable[None]]


@dataclass(frozen=True)
class RejectCase:
    id: str
    services: tuple[str, ...]
    code: str
    message: str
    run: RejectStep


def _send(**overrides: Any) -> RejectStep:
    async def run(ctx: RejectContext) -> None:
        resolved = {k: v(ctx) if callable(v) else v for k, v in overrides.items()}
        await ctx.send(ctx.fields(**resolved))

    return run


REJECT_CASES: Final = (
    # step 1: a required field missing
    RejectCase(
        "step1-empty-request-id",
        SERVICES,
        "INVALID_ARGUMENT",
        "request_id must not be empty",
        _send(replace={"request_id": ""}),
    ),
    RejectCase(
        "step1-wrong-message-type",
        (HUB,),
        "INVALID_ARGUMENT",
        "message_type must be gateway.subscribe_events",
        _send(message_type="user.account.get"),
    ),
    RejectCase(
        "step2-protocol-version",
        SERVICES,
        "FAILED_PRECONDITION",
        "unsupported protocol_version",
        _send(protocol_version="v2"),
    ),
    RejectCase(
        "step4-unknown-session",
        SERVICES,
        "UNAUTHENTICATED",
        "unknown device session",
        _send(device_session_id=lambda ctx: unique("ds_unknown")),
    ),
    RejectCase(
        "step5-payload-hash-length",
        (EDGE,),
        "INVALID_ARGUMENT",
        "payload_hash must be a 32-byte SHA-256 digest",
        _send(replace={"payload_hash": bytes(16)}),
    ),
    RejectCase(
        "step5-payload-hash-mismatch",
        SERVICES,
        "INVALID_ARGUMENT",
        "payload_hash does not match payload_bytes",
        _send(replace={"payload_bytes": b"tampered"}),
    ),
    RejectCase(
        "step6-bad-signature",
        SERVICES,
        "UNAUTHENTICATED",
        "invalid request signature",
        _send(key=lambda ctx: DeviceKey.generate()),
    ),
    RejectCase(
        "step7-stale-timestamp",
        SERVICES,
        "FAILED_PRECONDITION",
        "request timestamp is outside the freshness window",
        _send(timestamp_ms=lambda ctx: now_ms() - 10 * 60 * 1000),
    ),
    RejectCase("step8-replay", SERVICES, "FAILED_PRECONDITION", "request replay detected", _replay),
    RejectCase(
        "step9-rate-limit",
        SERVICES,
        "RESOURCE_EXHAUSTED",
        "authenticated request rate limit exceeded",
        _rate_limited,
    ),
    RejectCase(
        "step11-unrouted-message-type",
        (EDGE,),
        "UNIMPLEMENTED",
        "message_type is not routed",
        _send(message_type="protocols.not-routed", payload=b""),
    ),
    RejectCase(
        "step11-adapter-rejects-payload",
        (EDGE,),
        "INVALID_ARGUMENT",
        "payload_bytes is not a valid user.AccountGetRequest",
        _send(payload=b"\x01\x02"),
    ),
    RejectCase("wrong-method", SERVICES, "UNIMPLEMENTED", "method is not allowed", _wrong_method),
    RejectCase(
        "oversized-body",
        SERVICES,
        "RESOURCE_EXHAUSTED",
        "request is too large",
        # Zeros: the compressing clients (gzip by default) send a few KiB that inflate past
        # the limit, so the bound holds on the decompressed size too.
        _send(payload=bytes(MAX_MESSAGE_BYTES + 1)),
    ),
)


def _reject_params() -> list[Any]:
    return [
        pytest.param(service, case, wire, id=f"{service}-{case.id}-{wire.id}")
        for service in SERVICES
        for case in REJECT_CASES
        if service in case.services
        for wire in CLIENT_WIRES
    ]


@pytest.mark.parametrize(("service", "case", "wire"), _reject_params())
async def test_pipeline_rejects_on_every_protocol(
    system: System, player: Player, service: str, case: RejectCase, wire: Wire
) -> None:
    async with no_error_logged(system, service):
        async with open_client(wire, address_of(system, service)) as client:
            ctx = RejectContext(system, service, client, player)
            with pytest.raises(RpcFailure) as failure:
                await case.run(ctx)
        assert (failure.value.code, failure.value.message) == (case.code, case.message)
        assert_wire(client, wire)
        if case.id == "step9-rate-limit":
            # The bucket refills one token per 24 h: the wait is whole seconds within that.
            seen = failure.value.metadata if wire.family == "grpc" else client.exchanges[-1].headers
            assert 1 <= int(seen.get("retry-after", "0")) <= 24 * 3600
        if wire.family != "grpc":
            # Connect unary: the error is an HTTP status + JSON body; Connect streams and
            # gRPC-Web carry it in a 200 response (end-of-stream frame, grpc-status).
            called = own_method(service) if case.id != "wrong-method" else other_method(service)
            unary_connect = wire.family == "connect" and called == "ExecuteCommand"
            expected = CONNECT_HTTP_STATUS[case.code] if unary_connect else 200
            assert client.exchanges[-1].status == expected


# ---------------------------------------------------------------------------- garbage bodies

# Bytes that are not a protobuf message of either request type (checked below).
GARBAGE: Final = random.Random(20260601).randbytes(256)
_LIKE_A_REQUEST: Final = pb.ExecuteCommandRequest(
    protocol_version="v1", device_session_id="ds", message_type="user.account.get", request_id="R"
).SerializeToString()
# request_id (field 5, length-delimited) holding two bytes that are not UTF-8.
INVALID_UTF8_REQUEST_ID: Final = _LIKE_A_REQUEST.replace(b"\x2a\x01R", b"\x2a\x02\xff\xfe")
INVALID_UTF8_JSON: Final = b'{"protocolVersion": "v1", "requestId": "\xff\xfe"}'
MALFORMED_JSON: Final = b'{"protocolVersion": "v1", "requestId": '


def _not_protobuf(data: bytes) -> bytes:
    for message in (pb.ExecuteCommandRequest, pb.SubscribeEventsRequest):
        try:
            message.FromString(data)
        except Exception:
            continue
        raise AssertionError(f"{data[:16]!r}... parses as {message.__name__}")
    return data


@dataclass(frozen=True)
class RawWire:
    id: str
    family: str  # what the request speaks: "connect", "grpc-web" or "grpc"
    codec: str
    http2: bool

    def content_type(self, service: str) -> str:
        if self.family == "connect":
            if service == EDGE:  # unary
                return "application/proto" if self.codec == "proto" else "application/json"
            return f"application/connect+{self.codec}"
        return f"application/{self.family}+{self.codec}"

    def enveloped(self, service: str) -> bool:
        return self.family != "connect" or service == HUB

    def headers(self) -> dict[str, str]:
        if self.family == "connect":
            return {"connect-protocol-version": "1"}
        if self.family == "grpc-web":
            return {"x-grpc-web": "1"}
        return {"te": "trailers"}

    def answer_family(self, service: str) -> str:
        if self.family == "connect":
            return "connect-unary" if service == EDGE else "connect-stream"
        return self.family


RAW_WIRES: Final = (
    RawWire("connect-proto-http1", "connect", "proto", http2=False),
    RawWire("connect-proto-h2c", "connect", "proto", http2=True),
    RawWire("connect-json-http1", "connect", "json", http2=False),
    RawWire("connect-json-h2c", "connect", "json", http2=True),
    RawWire("grpc-web-http1", "grpc-web", "proto", http2=False),
    RawWire("grpc-web-h2c", "grpc-web", "proto", http2=True),
    RawWire("grpc-h2c", "grpc", "proto", http2=True),
)


@dataclass(frozen=True)
class Garbage:
    id: str
    content_type: str
    body: bytes
    headers: dict[str, str]
    http2: bool
    answer_family: str


def _garbage_params() -> list[Any]:
    params = []

    def add(service: str, garbage: Garbage, test_id: str, marks: Any = ()) -> None:
        params.append(pytest.param(service, garbage, id=f"{service}-{test_id}", marks=marks))

    for service in SERVICES:
        for wire in RAW_WIRES:
            bodies: dict[str, bytes] = {}
            if wire.codec == "proto":
                bodies["random-bytes"] = _not_protobuf(GARBAGE)
                bodies["invalid-utf8-request-id"] = _not_protobuf(INVALID_UTF8_REQUEST_ID)
                sample = _LIKE_A_REQUEST
            else:
                bodies["malformed-json"] = MALFORMED_JSON
                bodies["invalid-utf8-in-json-string"] = INVALID_UTF8_JSON
                sample = b'{"protocolVersion": "v1", "requestId": "R"}'
            if wire.enveloped(service):
                bodies = {key: frame(body) for key, body in bodies.items()}
                bodies["truncated-frame"] = frame(sample)[:-3]
                bodies["truncated-frame-header"] = frame(sample)[:3]
                if wire.codec == "proto":
                    bodies["compressed-flag-without-encoding"] = frame(sample, flags=0x01)
            for body_id, body in bodies.items():
                garbage = Garbage(
                    body_id,
                    wire.content_type(service),
                    body,
                    wire.headers(),
                    wire.http2,
                    wire.answer_family(service),
                )
                add(service, garbage, f"{wire.id}-{body_id}", ())
        # Content types no protocol of the port reads: refused in the client's own protocol.
        web_text = base64.b64encode(frame(_LIKE_A_REQUEST))
        for http2, version in ((False, "http1"), (True, "h2c")):
            add(
                service,
                Garbage("text-plain", "text/plain", b"hello", {}, http2, "connect-unary"),
                f"content-type-text-plain-{version}",
            )
            add(
                service,
                Garbage(
                    "grpc-web-text",
                    "application/grpc-web-text",
                    web_text,
                    {"x-grpc-web": "1"},
                    http2,
                    "grpc-web",
                ),
                f"content-type-grpc-web-text-{version}",
            )
        add(
            service,
            Garbage(
                "grpc-thrift",
                "application/grpc+thrift",
                frame(GARBAGE),
                {"te": "trailers"},
                True,
                "grpc",
            ),
            "content-type-grpc-thrift-h2c",
        )
    return params


@pytest.mark.parametrize(("service", "garbage"), _garbage_params())
async def test_undecodable_bodies_are_malformed_on_every_protocol(
    system: System, service: str, garbage: Garbage
) -> None:
    path = EXECUTE_COMMAND_PATH if service == EDGE else SUBSCRIBE_EVENTS_PATH
    async with no_error_logged(system, service):
        raw = await raw_post(
            address_of(system, service),
            path,
            content_type=garbage.content_type,
            body=garbage.body,
            http2=garbage.http2,
            headers=garbage.headers,
        )
    assert raw.http_version == ("HTTP/2" if garbage.http2 else "HTTP/1.1")
    status = wire_status(raw)
    assert (status.family, status.code, status.message) == (garbage.answer_family, *MALFORMED)
    if status.family == "connect-unary":
        assert status.http_status == 400
    else:
        assert status.http_status == 200


# ---------------------------------------------------------------------------- CORS


def _cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("access-control-")}


@pytest.mark.parametrize("service", SERVICES)
async def test_cors_preflight_from_the_allowed_origin(system: System, service: str) -> None:
    path = EXECUTE_COMMAND_PATH if service == EDGE else SUBSCRIBE_EVENTS_PATH
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.options(
            f"http://{address_of(system, service)}{path}",
            headers={
                "origin": ALLOWED_ORIGIN,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,connect-protocol-version",
            },
        )
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = {h.strip() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "connect-protocol-version", "x-grpc-web", "x-user-agent"} <= allowed
    assert int(answer.headers["access-control-max-age"]) > 0


@pytest.mark.parametrize("service", SERVICES)
async def test_cors_preflight_from_another_origin_is_refused(system: System, service: str) -> None:
    path = EXECUTE_COMMAND_PATH if service == EDGE else SUBSCRIBE_EVENTS_PATH
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.options(
            f"http://{address_of(system, service)}{path}",
            headers={"origin": OTHER_ORIGIN, "access-control-request-method": "POST"},
        )
    assert answer.status_code == 403
    assert _cors_headers(dict(answer.headers)) == {}


@pytest.mark.parametrize("wire", [w for w in CLIENT_WIRES if w.id in ("connect-proto-http1",
                                                                      "grpc-web-http1")],
                         ids=lambda w: w.id)  # fmt: skip
@pytest.mark.parametrize("service", SERVICES)
async def test_cors_headers_on_actual_responses(
    system: System, player: Player, service: str, wire: Wire
) -> None:
    """What a browser on the allowed origin reads: allow-origin and the exposed status headers."""
    seen: dict[str, dict[str, str]] = {}
    for origin in (ALLOWED_ORIGIN, OTHER_ORIGIN):
        fields = (
            envelope(player, "user.account.get", payload=account_get_payload())
            if service == EDGE
            else envelope(player, "gateway.subscribe_events")
        )
        async with open_client(wire, address_of(system, service), headers={"origin": origin}) as c:
            await first_answer(c, own_method(service), fields)
            seen[origin] = _cors_headers(c.exchanges[-1].headers)
    allowed = seen[ALLOWED_ORIGIN]
    assert allowed["access-control-allow-origin"] == ALLOWED_ORIGIN
    exposed = {h.strip() for h in allowed["access-control-expose-headers"].split(",")}
    assert {"grpc-status", "grpc-message"} <= exposed
    assert seen[OTHER_ORIGIN] == {}


# ---------------------------------------------------------------------------- a client that left


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


async def test_an_event_for_a_stream_the_client_left_logs_no_error(
    system: System, player: Player, publisher: StreamPublisher
) -> None:
    wire = next(w for w in CLIENT_WIRES if w.id == "connect-proto-h2c")
    metrics_url = f"http://127.0.0.1:{system.ports.admin_of(HUB)}/metrics"
    async with no_error_logged(system, HUB):
        async with open_client(wire, address_of(system, HUB)) as client:
            stream = await client.subscribe(
                pb.SubscribeEventsRequest(**envelope(player, "gateway.subscribe_events"))
            )
            await stream.next()
            await stream.close()  # RST_STREAM
            # A later call on the same HTTP/2 connection: Envoy has handled the reset by the
            # time it answers.
            with pytest.raises(RpcFailure):
                await first_answer(
                    client,
                    "SubscribeEvents",
                    envelope(player, "gateway.subscribe_events", protocol_version="v0"),
                )
        await publisher.publish_client_event(
            ClientEvent(
                user_id=player.user_id,
                event_type="lobby.invite.received",
                event_id=unique("event"),
                payload=b"nobody reads this",
            )
        )
        # Every stream of the module is closed by its client; wait until the hub has let
        # them all go (a write that fails, or the disconnect poll), ours included.
        bound = 3 * DISCONNECT_POLL.total_seconds()
        async with httpx.AsyncClient(timeout=30) as http, asyncio.timeout(bound):
            while _metric((await http.get(metrics_url)).text, "gateway_push_active_streams"):
                await asyncio.sleep(0.1)
