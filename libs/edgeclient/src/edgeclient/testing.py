"""Stand-ins of the gateway for tests of clients: real sockets, real Ed25519.

:class:`StandInGateway` is a small ``grpc.aio`` EdgeGateway server on
127.0.0.1. It verifies each request the way the gateway does (envelope,
session, payload hash, client signature, freshness, replay) with the
specification's gRPC codes and messages, routes ExecuteCommand to per-test
handlers, and answers with responses and events signed by its own response
signer. Hooks can tamper with a response or event *after* signing, to prove
that clients reject it.

Its streams are resumable like push-hub's: every published event gets a
``position`` (``<epoch>:<n>-0``) and is kept in one history (the stand-in has a
single user), a SubscribeEvents payload may be a ``gateway.SubscribeEventsOptions``
asking to resume after a position (the bootstrap carries it, the missed events
follow, then live ones), and ``forget_history`` makes older positions answer
OUT_OF_RANGE "resume position is older than the event history".

:class:`StandInPublicRest` is a threaded HTTP server for the two public auth
routes; a confirmed login registers the device key with the stand-in gateway.

Neither is a gateway: no Redis, no rate limits, no downstream services.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self

import grpc
import grpc.aio

from edgeclient.envelope import now_ms
from edgecore.backend.routes import CONFIRM_EMAIL_CODE_PATH, SEND_EMAIL_CODE_PATH
from edgecore.catalog import (
    PROTOCOL_VERSION,
    SERVER_TIME_EVENT_TYPE,
    SUBSCRIBE_EVENTS_MESSAGE_TYPE,
)
from edgecore.errors import Reject as _Spec
from edgecore.payloads import (
    decode_subscribe_options,
    encode_error_response,
    encode_server_time_event,
)
from edgecore.signing import (
    PAYLOAD_HASH_SIZE,
    Signer,
    event_signing_input,
    payload_hash,
    payload_hash_matches,
    request_signing_input,
    response_signing_input,
    verify_signature,
)
from galaxy.gateway.v1 import edge_gateway_pb2 as pb
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

__all__ = [
    "HISTORY_GONE",
    "HISTORY_UNAVAILABLE",
    "INVALID_SUBSCRIBE_OPTIONS",
    "HistoryEntry",
    "Reject",
    "ReceivedCommand",
    "StandInGateway",
    "StandInPublicRest",
    "business_error",
    "ok",
]

FRESHNESS_WINDOW_MS: Final = 5 * 60 * 1000


class Reject(Exception):
    """Raised by a handler (or the pipeline) to end the call with a gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ReceivedCommand:
    """A request that passed the stand-in's verification."""

    device_session_id: str
    message_type: str
    request_id: str
    trace_id: str
    timestamp_ms: int
    payload: bytes


Outcome = tuple[str, bytes]
"""(result_code, payload_bytes) answered by a handler."""

Handler = Callable[[ReceivedCommand], Outcome | Awaitable[Outcome]]


def ok(payload: bytes) -> Outcome:
    return "ok", payload


def business_error(code: str, message: str) -> Outcome:
    return code, encode_error_response(code, message)


@dataclass(frozen=True, slots=True)
class _Close:
    code: grpc.StatusCode
    message: str


@dataclass(slots=True)
class _Stream:
    device_session_id: str
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    ready: bool = False  # past its bootstrap (and replay): counted by active_streams


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One published event as the stand-in's history keeps it."""

    seq: int
    position: str
    event_type: str
    event_id: str
    payload: bytes
    request_id: str
    trace_id: str
    device_session_id: str | None


def _status(spec: _Spec) -> tuple[grpc.StatusCode, str]:
    return grpc.StatusCode[spec.value.grpc_code.name], spec.value.message


HISTORY_GONE: Final = _status(_Spec.EVENT_HISTORY_GONE)
HISTORY_UNAVAILABLE: Final = _status(_Spec.EVENT_HISTORY_UNAVAILABLE)
INVALID_SUBSCRIBE_OPTIONS: Final = _status(_Spec.INVALID_SUBSCRIBE_OPTIONS)


class StandInGateway:
    """EdgeGateway stand-in; use ``async with StandInGateway() as gateway``."""

    def __init__(self, server_seed: bytes | None = None) -> None:
        self.signer = Signer(server_seed) if server_seed is not None else Signer.generate()
        self.sessions: dict[str, bytes] = {}
        """device_session_id -> raw client public key."""
        self.revoked: set[str] = set()
        self.handlers: dict[str, Handler] = {}
        self.received: list[ReceivedCommand] = []
        self.initial_events: list[tuple[str, bytes]] = []
        """(event_type, payload) sent to every new stream right after the bootstrap,
        without a position (they are not in the history)."""
        self.open_rejects: list[tuple[grpc.StatusCode, str]] = []
        """Statuses the next SubscribeEvents opens end with, one each, after verification."""
        self.epoch = secrets.token_hex(8)
        self.history: list[HistoryEntry] = []
        self._head = 0
        self._floor = 0  # positions below this are gone (forget_history)
        self.response_tamper: Callable[[Any], None] | None = None
        """Called with each signed ExecuteCommandResponse before it is sent."""
        self.event_tamper: Callable[[Any], None] | None = None
        """Called with each signed GatewayEvent before it is sent."""
        self.port = 0
        self._seen: set[tuple[str, str]] = set()
        self._streams: list[_Stream] = []
        self._stream_change = asyncio.Condition()
        self._server: grpc.aio.Server | None = None

    @property
    def server_public_key(self) -> bytes:
        return self.signer.public_key

    @property
    def server_public_key_b64(self) -> str:
        return base64.b64encode(self.signer.public_key).decode("ascii")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> str:
        server = grpc.aio.server()
        pb_grpc.add_EdgeGatewayServicer_to_server(_Servicer(self), server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        return self.address

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def register_session(self, device_session_id: str, client_public_key: bytes) -> None:
        self.sessions[device_session_id] = bytes(client_public_key)

    @property
    def active_streams(self) -> int:
        return sum(1 for s in self._streams if s.ready)

    async def wait_for_streams(self, count: int, seconds: float = 10.0) -> None:
        """Wait until at least ``count`` streams are past their bootstrap and registered."""
        async with asyncio.timeout(seconds), self._stream_change:
            await self._stream_change.wait_for(lambda: self.active_streams >= count)

    def position(self, seq: int) -> str:
        return f"{self.epoch}:{seq}-0"

    @property
    def head_position(self) -> str:
        """The position of the newest published event (where a stream opened now starts)."""
        return self.position(self._head)

    def forget_history(self) -> None:
        """Drop every event published so far: resuming before the head is OUT_OF_RANGE."""
        self.history.clear()
        self._floor = self._head

    def _parse_position(self, text: str) -> int:
        """The sequence number of a position, or a Reject like push-hub's."""
        epoch, _, entry = text.partition(":")
        ms, _, seq = entry.partition("-")
        if not epoch or not ms.isdigit() or seq != "0":
            raise Reject(*INVALID_SUBSCRIBE_OPTIONS)
        if epoch != self.epoch:
            raise Reject(*HISTORY_GONE)  # a position of another (lost) history
        if int(ms) > self._head:
            raise Reject(*INVALID_SUBSCRIBE_OPTIONS)  # never issued
        if int(ms) < self._floor:
            raise Reject(*HISTORY_GONE)
        return int(ms)

    async def publish(
        self,
        event_type: str,
        payload: bytes,
        *,
        event_id: str | None = None,
        request_id: str = "",
        trace_id: str = "",
        device_session_id: str | None = None,
    ) -> int:
        """Sign one event, add it to the history and queue it to every matching stream
        (opened ones included, behind their replay); returns how many ready streams."""
        self._head += 1
        entry = HistoryEntry(
            self._head,
            self.position(self._head),
            event_type,
            event_id or str(uuid.uuid4()),
            payload,
            request_id,
            trace_id,
            device_session_id,
        )
        self.history.append(entry)
        event = self._sign_entry(entry)
        targets = [
            s
            for s in self._streams
            if device_session_id is None or s.device_session_id == device_session_id
        ]
        for stream in targets:
            stream.queue.put_nowait(event)
        return sum(1 for s in targets if s.ready)

    def _sign_entry(self, entry: HistoryEntry) -> Any:
        return self.sign_event(
            entry.event_type,
            entry.event_id,
            entry.payload,
            entry.request_id,
            entry.trace_id,
            position=entry.position,
        )

    async def close_streams(
        self, code: grpc.StatusCode, message: str, *, device_session_id: str | None = None
    ) -> None:
        """End matching streams with a gRPC status (e.g. FAILED_PRECONDITION on revoke)."""
        for stream in list(self._streams):
            if device_session_id is None or stream.device_session_id == device_session_id:
                await stream.queue.put(_Close(code, message))

    def sign_event(
        self,
        event_type: str,
        event_id: str,
        payload: bytes,
        request_id: str,
        trace_id: str,
        *,
        position: str = "",
    ) -> Any:
        timestamp = now_ms()
        digest = payload_hash(payload)
        signature = self.signer.sign(
            event_signing_input(
                event_type=event_type,
                event_id=event_id,
                timestamp_ms=timestamp,
                request_id=request_id,
                trace_id=trace_id,
                payload_hash=digest,
            )
        )
        event = pb.GatewayEvent(
            event_type=event_type,
            event_id=event_id,
            timestamp_ms=timestamp,
            payload_bytes=payload,
            payload_hash=digest,
            signature=signature,
            request_id=request_id,
            trace_id=trace_id,
            position=position,
        )
        if self.event_tamper is not None:
            self.event_tamper(event)
        return event

    def sign_response(self, request_id: str, result_code: str, payload: bytes) -> Any:
        timestamp = now_ms()
        digest = payload_hash(payload)
        signature = self.signer.sign(
            response_signing_input(
                protocol_version=PROTOCOL_VERSION,
                request_id=request_id,
                timestamp_ms=timestamp,
                result_code=result_code,
                payload_hash=digest,
            )
        )
        response = pb.ExecuteCommandResponse(
            protocol_version=PROTOCOL_VERSION,
            request_id=request_id,
            timestamp_ms=timestamp,
            result_code=result_code,
            payload_bytes=payload,
            payload_hash=digest,
            signature=signature,
        )
        if self.response_tamper is not None:
            self.response_tamper(response)
        return response

    def verify_request(self, request: Any) -> ReceivedCommand:
        """The gateway's ingress checks, in the specification's order and wording."""
        fields = (request.protocol_version, request.device_session_id, request.message_type)
        if not all(fields) or not request.request_id or not request.signature:
            raise Reject(grpc.StatusCode.INVALID_ARGUMENT, "request envelope is malformed")
        if request.protocol_version != PROTOCOL_VERSION:
            raise Reject(grpc.StatusCode.FAILED_PRECONDITION, "unsupported protocol_version")
        key = self.sessions.get(request.device_session_id)
        if key is None:
            raise Reject(grpc.StatusCode.UNAUTHENTICATED, "unknown device session")
        if request.device_session_id in self.revoked:
            raise Reject(grpc.StatusCode.FAILED_PRECONDITION, "device session is revoked")
        claimed = bytes(request.payload_hash)
        if len(claimed) != PAYLOAD_HASH_SIZE:
            raise Reject(
                grpc.StatusCode.INVALID_ARGUMENT, "payload_hash must be a 32-byte SHA-256 digest"
            )
        payload = bytes(request.payload_bytes)
        if not payload_hash_matches(payload, claimed):
            raise Reject(
                grpc.StatusCode.INVALID_ARGUMENT, "payload_hash does not match payload_bytes"
            )
        try:
            signing_input = request_signing_input(
                protocol_version=request.protocol_version,
                device_session_id=request.device_session_id,
                message_type=request.message_type,
                timestamp_ms=request.timestamp_ms,
                request_id=request.request_id,
                payload_hash=claimed,
            )
        except ValueError:
            raise Reject(
                grpc.StatusCode.INVALID_ARGUMENT, "request envelope is malformed"
            ) from None
        if not verify_signature(key, signing_input, bytes(request.signature)):
            raise Reject(grpc.StatusCode.UNAUTHENTICATED, "invalid request signature")
        if abs(now_ms() - request.timestamp_ms) > FRESHNESS_WINDOW_MS:
            raise Reject(
                grpc.StatusCode.FAILED_PRECONDITION,
                "request timestamp is outside the freshness window",
            )
        replay_key = (request.device_session_id, request.request_id)
        if replay_key in self._seen:
            raise Reject(grpc.StatusCode.FAILED_PRECONDITION, "request replay detected")
        self._seen.add(replay_key)
        return ReceivedCommand(
            device_session_id=request.device_session_id,
            message_type=request.message_type,
            request_id=request.request_id,
            trace_id=request.trace_id,
            timestamp_ms=request.timestamp_ms,
            payload=payload,
        )

    def _open_stream(self, command: ReceivedCommand) -> tuple[_Stream, int, list[HistoryEntry]]:
        """Register a stream and take what it is owed, with no await in between (so an
        event is either replayed or queued, never both or neither): where it starts and
        the history entries after that meant for it."""
        try:
            resume = decode_subscribe_options(command.payload)
        except ValueError:
            raise Reject(*INVALID_SUBSCRIBE_OPTIONS) from None
        if self.open_rejects:
            raise Reject(*self.open_rejects.pop(0))
        start = self._head if resume is None else self._parse_position(resume)
        session = command.device_session_id
        replay = [
            e for e in self.history if e.seq > start and e.device_session_id in (None, session)
        ]
        stream = _Stream(session)
        self._streams.append(stream)
        return stream, start, replay

    async def _register(self, stream: _Stream) -> None:
        async with self._stream_change:
            stream.ready = True
            self._stream_change.notify_all()

    async def _unregister(self, stream: _Stream) -> None:
        async with self._stream_change:
            if stream in self._streams:
                self._streams.remove(stream)
            self._stream_change.notify_all()


class _Servicer(pb_grpc.EdgeGatewayServicer):  # type: ignore[misc]
    def __init__(self, gateway: StandInGateway) -> None:
        self.gateway = gateway

    async def ExecuteCommand(self, request: Any, context: Any) -> Any:
        gateway = self.gateway
        try:
            command = gateway.verify_request(request)
            handler = gateway.handlers.get(command.message_type)
            if handler is None:
                raise Reject(grpc.StatusCode.UNIMPLEMENTED, "message_type is not routed")
            gateway.received.append(command)
            answer = handler(command)
            outcome = answer if isinstance(answer, tuple) else await answer
        except Reject as reject:
            await context.abort(reject.code, reject.message)
        result_code, payload = outcome
        return gateway.sign_response(command.request_id, result_code, payload)

    async def SubscribeEvents(self, request: Any, context: Any) -> AsyncIterator[Any]:
        gateway = self.gateway
        try:
            command = gateway.verify_request(request)
            if command.message_type != SUBSCRIBE_EVENTS_MESSAGE_TYPE:
                raise Reject(grpc.StatusCode.INVALID_ARGUMENT, "unexpected stream message_type")
            gateway.received.append(command)
            stream, start, replay = gateway._open_stream(command)
        except Reject as reject:
            await context.abort(reject.code, reject.message)
        try:
            yield gateway.sign_event(
                SERVER_TIME_EVENT_TYPE,
                command.request_id,
                encode_server_time_event(now_ms()),
                "",
                command.trace_id,
                position=gateway.position(start),
            )
            for event_type, payload in gateway.initial_events:
                yield gateway.sign_event(event_type, str(uuid.uuid4()), payload, "", "")
            for entry in replay:
                yield gateway._sign_entry(entry)
            await gateway._register(stream)
            while True:
                item = await stream.queue.get()
                if isinstance(item, _Close):
                    await context.abort(item.code, item.message)
                yield item
        finally:
            await gateway._unregister(stream)


class StandInPublicRest:
    """The public auth routes on a threaded HTTP server; ``with StandInPublicRest(...)``.

    Every challenge accepts ``code``. ``fail_next`` makes the next request fail
    with ``(status, code, message)`` in the public error shape.
    """

    def __init__(self, gateway: StandInGateway | None = None, *, code: str = "123456") -> None:
        self.gateway = gateway
        self.code = code
        self.challenges: dict[str, str] = {}
        self.sent: list[tuple[str, str | None]] = []
        """(email, Accept-Language) of each send-email-code."""
        self.confirmed: list[dict[str, str]] = []
        self.fail_next: tuple[int, str, str] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> str:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                owner._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            failure, self.fail_next = self.fail_next, None
            if failure is not None:
                status, answer = failure[0], _error(failure[1], failure[2])
            elif not isinstance(body, dict):
                status, answer = 400, _error("invalid_request", "body must be a JSON object")
            elif request.path == SEND_EMAIL_CODE_PATH:
                status, answer = self._send(body, request.headers.get("Accept-Language"))
            elif request.path == CONFIRM_EMAIL_CODE_PATH:
                status, answer = self._confirm(body)
            else:
                status, answer = 404, _error("not_found", "no such route")
        data = json.dumps(answer).encode("utf-8")
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _send(self, body: dict[str, Any], language: str | None) -> tuple[int, dict[str, Any]]:
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            return 400, _error("invalid_request", "email must be an e-mail address")
        challenge_id = "ch-" + uuid.uuid4().hex[:16]
        self.challenges[challenge_id] = email
        self.sent.append((email, language))
        return 200, {"challenge_id": challenge_id}

    def _confirm(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        values = {
            k: body.get(k) for k in ("challenge_id", "code", "client_public_key", "time_zone")
        }
        if not all(isinstance(v, str) and v for v in values.values()):
            return 400, _error("invalid_request", "all confirm fields are required strings")
        strings = {k: str(v) for k, v in values.items()}
        if strings["challenge_id"] not in self.challenges or strings["code"] != self.code:
            return 400, _error("invalid_code", "the code is wrong or has expired")
        try:
            key = base64.b64decode(strings["client_public_key"], validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            return 400, _error("invalid_request", "client_public_key must be base64 of 32 bytes")
        del self.challenges[strings["challenge_id"]]
        device_session_id = "ds-" + uuid.uuid4().hex[:16]
        if self.gateway is not None:
            self.gateway.register_session(device_session_id, key)
        self.confirmed.append({**strings, "device_session_id": device_session_id})
        return 200, {"device_session_id": device_session_id}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
