"""Clients for every protocol the authenticated port speaks, and a raw HTTP client for garbage.

``Wire`` names one way of talking to ``galaxy.gateway.v1.EdgeGateway`` on a
service's single port: Connect (binary or JSON codec, HTTP/1.1 or h2c),
gRPC-Web (binary, HTTP/1.1 or h2c) through the ``connectrpc`` client on
``pyqwest``, and native gRPC through ``grpcio``. ``open_client`` gives one
uniform interface over them: ``execute`` (unary ExecuteCommand) and
``subscribe`` (the SubscribeEvents server stream). Every RPC error, on every
wire, becomes ``RpcFailure(code, message)`` with the gRPC code name, so tests
can compare the catalog's code and message literally across protocols.

The pyqwest transports record the HTTP version of every response they get,
which is how the tests prove that "h2c" really went over HTTP/2 (prior
knowledge, no upgrade) and "HTTP/1.1" really did not.

``raw_post`` sends hand-built bodies (garbage, truncated frames, wrong content
types) over HTTP/1.1 or h2c and ``wire_status`` reads the status back from
whatever the server answered: a Connect unary error (HTTP status + JSON), a
Connect end-of-stream frame, gRPC-Web ``grpc-status`` in the headers or in the
trailer frame of the body, or gRPC trailers.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

import grpc
import grpc.aio
import pyqwest
from connectrpc.client import ConnectClient
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.protocol import ProtocolType

from edgecore.rpc.codecs import ProtoBinaryCodec, ProtoJsonCodec
from galaxy.gateway.v1 import edge_gateway_pb2 as pb
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

__all__ = [
    "CALL_TIMEOUT",
    "CLIENT_WIRES",
    "CONNECT_HTTP_STATUS",
    "EXECUTE_COMMAND",
    "EXECUTE_COMMAND_PATH",
    "SUBSCRIBE_EVENTS",
    "SUBSCRIBE_EVENTS_PATH",
    "EventStream",
    "GatewayClient",
    "RawResponse",
    "RpcFailure",
    "Wire",
    "WireStatus",
    "frame",
    "open_client",
    "raw_post",
    "wire_status",
]

CALL_TIMEOUT: Final = 30.0
"""A generous bound on any single network wait: a hang fails the test, never slows it."""

SERVICE: Final = "galaxy.gateway.v1.EdgeGateway"
EXECUTE_COMMAND_PATH: Final = f"/{SERVICE}/ExecuteCommand"
SUBSCRIBE_EVENTS_PATH: Final = f"/{SERVICE}/SubscribeEvents"

EXECUTE_COMMAND: Final = MethodInfo(
    name="ExecuteCommand",
    service_name=SERVICE,
    input=pb.ExecuteCommandRequest,
    output=pb.ExecuteCommandResponse,
    idempotency_level=IdempotencyLevel.UNKNOWN,
    stream_type=StreamType.UNARY,
)
SUBSCRIBE_EVENTS: Final = MethodInfo(
    name="SubscribeEvents",
    service_name=SERVICE,
    input=pb.SubscribeEventsRequest,
    output=pb.GatewayEvent,
    idempotency_level=IdempotencyLevel.UNKNOWN,
    stream_type=StreamType.SERVER_STREAM,
)

# The Connect protocol's HTTP status for a unary error, by code (connectrpc.com/docs/protocol).
CONNECT_HTTP_STATUS: Final = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


@dataclass(frozen=True)
class Wire:
    """One protocol + codec + HTTP version a client can use on the authenticated port."""

    id: str
    family: str  # "connect", "grpc-web" or "grpc"
    codec: str  # "proto" or "json"
    http2: bool

    @property
    def expected_http_version(self) -> str:
        return "HTTP/2" if self.http2 else "HTTP/1.1"


CLIENT_WIRES: Final = (
    Wire("connect-proto-http1", "connect", "proto", http2=False),
    Wire("connect-proto-h2c", "connect", "proto", http2=True),
    Wire("connect-json-http1", "connect", "json", http2=False),
    Wire("connect-json-h2c", "connect", "json", http2=True),
    Wire("grpc-web-http1", "grpc-web", "proto", http2=False),
    Wire("grpc-web-h2c", "grpc-web", "proto", http2=True),
    Wire("grpc-grpcio", "grpc", "proto", http2=True),
)


class RpcFailure(Exception):
    """An RPC error as the client saw it: the gRPC code name and the message, verbatim.

    ``metadata`` is what grpcio reports beside the status (initial and
    trailing); the Connect and gRPC-Web wires' headers are in the exchanges.
    """

    def __init__(self, code: str, message: str, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.metadata = dict(metadata or {})


def _connect_failure(error: ConnectError) -> RpcFailure:
    name = error.code.name
    return RpcFailure("CANCELLED" if name == "CANCELED" else name, error.message)


def _grpc_failure(error: grpc.aio.AioRpcError) -> RpcFailure:
    metadata = [*(error.initial_metadata() or ()), *(error.trailing_metadata() or ())]
    return RpcFailure(
        error.code().name, error.details() or "", {str(k): str(v) for k, v in metadata}
    )


def _version_name(version: Any) -> str:
    if version == pyqwest.HTTPVersion.HTTP1:
        return "HTTP/1.1"
    if version == pyqwest.HTTPVersion.HTTP2:
        return "HTTP/2"
    return str(version)


@dataclass
class Exchange:
    """What the transport saw of one response (before the RPC client read it)."""

    http_version: str
    status: int
    headers: dict[str, str]


class RecordingTransport:
    """A pyqwest transport that remembers the HTTP version, status and headers it received."""

    def __init__(self, *, http2: bool) -> None:
        version = pyqwest.HTTPVersion.HTTP2 if http2 else pyqwest.HTTPVersion.HTTP1
        self._inner = pyqwest.HTTPTransport(http_version=version)
        self.exchanges: list[Exchange] = []

    async def execute(self, request: pyqwest.Request) -> pyqwest.Response:
        response = await self._inner.execute(request)
        self.exchanges.append(
            Exchange(
                _version_name(response.http_version),
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
            )
        )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class EventStream:
    """An open SubscribeEvents call: ``next()`` is the next event or raises ``RpcFailure``."""

    def __init__(self, reader: Any, closer: Any) -> None:
        self._reader = reader
        self._closer = closer

    async def next(self, timeout: float = CALL_TIMEOUT) -> pb.GatewayEvent:
        async with asyncio.timeout(timeout):
            event: pb.GatewayEvent = await self._reader()
        return event

    async def close(self) -> None:
        await self._closer()


class GatewayClient:
    """ExecuteCommand and SubscribeEvents over one ``Wire``, errors as ``RpcFailure``."""

    def __init__(self, wire: Wire, address: str, headers: Mapping[str, str] | None) -> None:
        self.wire = wire
        self.address = address
        self.headers = dict(headers or {})
        self.transport: RecordingTransport | None = None
        self._connect: ConnectClient | None = None
        self._channel: grpc.aio.Channel | None = None
        if wire.family == "grpc":
            self._channel = grpc.aio.insecure_channel(
                address, options=[("grpc.use_local_subchannel_pool", 1)]
            )
            self._stub = pb_grpc.EdgeGatewayStub(self._channel)
        else:
            self.transport = RecordingTransport(http2=wire.http2)
            self._connect = ConnectClient(
                f"http://{address}",
                protocol=ProtocolType.CONNECT
                if wire.family == "connect"
                else ProtocolType.GRPC_WEB,
                codec=ProtoJsonCodec() if wire.codec == "json" else ProtoBinaryCodec(),
                http_client=pyqwest.Client(self.transport),
            )

    @property
    def exchanges(self) -> list[Exchange]:
        return self.transport.exchanges if self.transport is not None else []

    @property
    def http_versions(self) -> set[str]:
        """The HTTP versions of every response so far (grpcio speaks only HTTP/2)."""
        if self.transport is None:
            return {"HTTP/2"}
        return {exchange.http_version for exchange in self.transport.exchanges}

    async def execute(self, request: Any) -> pb.ExecuteCommandResponse:
        async with asyncio.timeout(CALL_TIMEOUT):
            if self._connect is None:
                try:
                    response: pb.ExecuteCommandResponse = await self._stub.ExecuteCommand(
                        request, metadata=tuple(self.headers.items()) or None
                    )
                except grpc.aio.AioRpcError as exc:
                    raise _grpc_failure(exc) from None
                return response
            try:
                return await self._connect.execute_unary(
                    request=request, method=EXECUTE_COMMAND, headers=self.headers
                )
            except ConnectError as exc:
                raise _connect_failure(exc) from None

    async def subscribe(self, request: Any) -> EventStream:
        """Open the stream; the first ``next()`` is where the server's answer to the open shows."""
        if self._connect is None:
            call = self._stub.SubscribeEvents(request, metadata=tuple(self.headers.items()) or None)

            async def read_grpc() -> pb.GatewayEvent:
                try:
                    message = await call.read()
                except grpc.aio.AioRpcError as exc:
                    raise _grpc_failure(exc) from None
                if message is grpc.aio.EOF:
                    raise RpcFailure(call_code_name(await call.code()), await call.details())
                return message  # type: ignore[no-any-return]

            async def cancel_grpc() -> None:
                call.cancel()

            return EventStream(read_grpc, cancel_grpc)

        iterator = self._connect.execute_server_stream(
            request=request, method=SUBSCRIBE_EVENTS, headers=self.headers
        )

        async def read_connect() -> pb.GatewayEvent:
            try:
                return await anext(iterator)
            except ConnectError as exc:
                raise _connect_failure(exc) from None
            except StopAsyncIteration:
                raise RpcFailure("OK", "stream ended") from None

        return EventStream(read_connect, iterator.aclose)

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        if self.transport is not None:
            await self.transport.aclose()


def call_code_name(code: Any) -> str:
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


@asynccontextmanager
async def open_client(
    wire: Wire, address: str, *, headers: Mapping[str, str] | None = None
) -> AsyncIterator[GatewayClient]:
    client = GatewayClient(wire, address, headers)
    try:
        yield client
    finally:
        await client.aclose()


# ---------------------------------------------------------------------------- raw HTTP


def frame(data: bytes, flags: int = 0) -> bytes:
    """One enveloped message (Connect streaming, gRPC-Web, gRPC): flags, 4-byte length, data."""
    return bytes([flags]) + struct.pack(">I", len(data)) + data


@dataclass
class RawResponse:
    http_version: str
    status: int
    headers: dict[str, str]
    body: bytes
    trailers: dict[str, str] = field(default_factory=dict)


async def raw_post(
    address: str,
    path: str,
    *,
    content_type: str | None,
    body: bytes,
    http2: bool,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
) -> RawResponse:
    """One hand-built request over HTTP/1.1 or h2c (prior knowledge); the whole answer."""
    version = pyqwest.HTTPVersion.HTTP2 if http2 else pyqwest.HTTPVersion.HTTP1
    request_headers = dict(headers or {})
    if content_type is not None:
        request_headers["content-type"] = content_type
    transport = pyqwest.HTTPTransport(http_version=version)
    try:
        client = pyqwest.Client(transport)
        async with asyncio.timeout(CALL_TIMEOUT):
            async with client.stream(
                method, f"http://{address}{path}", headers=request_headers, content=body
            ) as response:
                chunks = [bytes(chunk) async for chunk in response.content]
                return RawResponse(
                    http_version=_version_name(response.http_version),
                    status=response.status,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    body=b"".join(chunks),
                    trailers={k.lower(): v for k, v in response.trailers.items()},
                )
    finally:
        await transport.aclose()


@dataclass(frozen=True)
class WireStatus:
    """The status a raw response carried, and how it carried it."""

    family: str  # "connect-unary", "connect-stream", "grpc-web" or "grpc"
    code: str
    message: str
    http_status: int


def _frames(body: bytes) -> list[tuple[int, bytes]]:
    frames = []
    offset = 0
    while offset < len(body):
        if len(body) - offset < 5:
            raise AssertionError(f"truncated frame header in the response: {body[offset:]!r}")
        flags = body[offset]
        (length,) = struct.unpack(">I", body[offset + 1 : offset + 5])
        data = body[offset + 5 : offset + 5 + length]
        if len(data) != length:
            raise AssertionError(f"truncated frame in the response: {body!r}")
        frames.append((flags, data))
        offset += 5 + length
    return frames


def _grpc_status(fields: Mapping[str, str], family: str, http_status: int) -> WireStatus | None:
    if "grpc-status" not in fields:
        return None
    code = int(fields["grpc-status"])
    name = grpc.StatusCode.OK.name
    for status in grpc.StatusCode:
        if status.value[0] == code:
            name = status.name
    return WireStatus(family, name, unquote(fields.get("grpc-message", "")), http_status)


def wire_status(response: RawResponse) -> WireStatus:
    """The RPC status of a raw response, whatever protocol rendered it."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("application/grpc-web"):
        status = _grpc_status(response.headers, "grpc-web", response.status)
        if status is None:
            trailer = [data for flags, data in _frames(response.body) if flags & 0x80]
            assert trailer, f"gRPC-Web response without a status: {response}"
            fields = {}
            for line in trailer[-1].decode("latin-1").split("\r\n"):
                if ":" in line:
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
            status = _grpc_status(fields, "grpc-web", response.status)
        assert status is not None, f"gRPC-Web trailer frame without grpc-status: {response}"
        return status
    if content_type.startswith("application/grpc"):
        status = _grpc_status(response.headers, "grpc", response.status) or _grpc_status(
            response.trailers, "grpc", response.status
        )
        assert status is not None, f"gRPC response without grpc-status: {response}"
        return status
    if content_type.startswith("application/connect+"):
        end = [data for flags, data in _frames(response.body) if flags & 0x02]
        assert end, f"Connect stream without an end-of-stream frame: {response}"
        error = json.loads(end[-1]).get("error")
        if error is None:
            return WireStatus("connect-stream", "OK", "", response.status)
        return WireStatus(
            "connect-stream", _code_name(error["code"]), error.get("message", ""), response.status
        )
    assert content_type == "application/json", f"unexpected response: {response}"
    error = json.loads(response.body)
    return WireStatus(
        "connect-unary", _code_name(error["code"]), error.get("message", ""), response.status
    )


def _code_name(connect_code: str) -> str:
    """A Connect code (``invalid_argument``) as the gRPC code name (``INVALID_ARGUMENT``)."""
    assert connect_code.islower(), f"not a Connect code: {connect_code!r}"
    name = connect_code.upper()
    return "CANCELLED" if name == "CANCELED" else name
