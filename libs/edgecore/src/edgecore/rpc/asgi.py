"""The HTTP front of an authenticated service: one ASGI app for Connect, gRPC and gRPC-Web.

In order, for each HTTP request:

1. CORS (``cors.py``): preflights are answered here, allowed origins get
   their response headers;
2. a content type no protocol/codec of this service reads is refused here
   with the catalog's INVALID_ARGUMENT, in the error format of the protocol
   the client spoke (connectrpc would answer HTTP 415, which gRPC clients
   report as UNKNOWN);
3. once draining (graceful stop), a new call is refused with the catalog's
   UNAVAILABLE "gateway is shutting down"; health checks are still answered;
4. the connectrpc application, which negotiates the protocol per request.
   Calls in flight are counted, so a graceful stop can wait for them.

``receive`` is wrapped (``_HeldReceive``) because pyvoy answers ``receive()``
at once with an empty body event once the request body is complete, where
ASGI says it waits for the disconnect. connectrpc watches ``receive()`` for
disconnects while a handler runs, so every open server stream spun a CPU core
(measured: one idle stream, 100% of a core). Past the body, the wrapper asks
pyvoy once per ``DISCONNECT_POLL`` instead, and returns only a disconnect: an
idle stream whose client vanished is noticed within that time (a write to it
fails at once). Each poll costs about 0.1 ms of CPU; 30 s keeps 1,000 idle
streams near 0.08 CPU-s per 10 s (docs/protocols.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from datetime import timedelta
from typing import Any, Final
from urllib.parse import quote

from edgecore.errors import ErrorSpec, GrpcCode, Reject
from edgecore.rpc.cors import CorsPolicy
from edgecore.rpc.status import CONNECT_CODES

__all__ = ["DISCONNECT_POLL", "RpcFront", "supported_content_type"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DISCONNECT_POLL: Final = timedelta(seconds=30)

_UNARY_TYPES: Final = frozenset(
    {"application/proto", "application/json"}
    | {f"application/{p}{c}" for p in ("grpc", "grpc-web") for c in ("", "+proto", "+json")}
)
_STREAM_TYPES: Final = frozenset(
    {"application/connect+proto", "application/connect+json"}
    | {f"application/{p}{c}" for p in ("grpc", "grpc-web") for c in ("", "+proto", "+json")}
)
_HEALTH_PREFIX: Final = "/grpc.health.v1.Health/"
# The Connect protocol's HTTP status for the codes refused here before connectrpc runs.
_CONNECT_HTTP_STATUS: Final = {GrpcCode.INVALID_ARGUMENT: 400, GrpcCode.UNAVAILABLE: 503}


def supported_content_type(content_type: str, *, stream: bool) -> bool:
    """Whether a protocol and codec this server speaks reads a body of this type."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in (_STREAM_TYPES if stream else _UNARY_TYPES)


class _HeldReceive:
    __slots__ = ("_body_done", "_poll", "_receive")

    def __init__(self, receive: Receive, poll: float) -> None:
        self._receive = receive
        self._poll = poll
        self._body_done = False

    async def __call__(self) -> Message:
        if not self._body_done:
            message = await self._receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                self._body_done = True
            return message
        while True:
            await asyncio.sleep(self._poll)
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return message


class RpcFront:
    """``app`` behind CORS, the content-type check and the held ``receive``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        stream_paths: Collection[str],
        cors: CorsPolicy,
        disconnect_poll: timedelta = DISCONNECT_POLL,
    ) -> None:
        self._app = app
        self._stream_paths = frozenset(stream_paths)
        self._cors = cors
        self._poll = disconnect_poll.total_seconds()
        self._draining = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        """Calls being served now, health checks excluded."""
        return self._in_flight

    def begin_drain(self) -> None:
        """From now on new calls are refused; those in flight go on."""
        self._draining = True

    async def wait_idle(self, seconds: float) -> bool:
        """True once no call is in flight, False if ``seconds`` passed first."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        origin = None
        if self._cors:
            origin = _header(scope, b"origin")
            if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
                await self._preflight(origin, send)
                return
            if origin is not None and self._cors.allows(origin):
                send = self._with_cors_headers(send, origin)
        path = scope["path"]
        health = path.startswith(_HEALTH_PREFIX)
        content_type = (_header(scope, b"content-type") or b"").decode("latin-1")
        if scope["method"] == "POST":
            stream = path in self._stream_paths
            if not supported_content_type(content_type, stream=stream):
                await _refuse(content_type, Reject.MALFORMED_REQUEST.spec, send)
                return
        if health:
            await self._app(scope, _HeldReceive(receive, self._poll), send)
            return
        if self._draining:
            await _refuse(content_type, Reject.SHUTTING_DOWN.spec, send)
            return
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._app(scope, _HeldReceive(receive, self._poll), send)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _preflight(self, origin: bytes | None, send: Send) -> None:
        if origin is None or not self._cors.allows(origin):
            await _respond(send, 403, [(b"content-type", b"text/plain")], b"origin not allowed\n")
            return
        headers = [(b"access-control-allow-origin", origin), *self._cors.preflight_headers]
        await _respond(send, 204, headers, b"")

    def _with_cors_headers(self, send: Send, origin: bytes) -> Send:
        extra = [(b"access-control-allow-origin", origin), *self._cors.response_headers]

        async def cors_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        return cors_send


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers,
                "trailers": False})  # fmt: skip
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _refuse(content_type: str, spec: ErrorSpec, send: Send) -> None:
    """The catalog error ``spec`` in the protocol the client spoke (by its content type)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("application/grpc"):
        # A trailers-only response: the status travels in the headers.
        family = (
            b"application/grpc-web"
            if media.startswith("application/grpc-web")
            else (b"application/grpc")
        )
        headers = [
            (b"content-type", family),
            (b"grpc-status", str(int(spec.grpc_code)).encode()),
            (b"grpc-message", quote(spec.message, safe=" ").encode()),
        ]
        await _respond(send, 200, headers, b"")
        return
    code = CONNECT_CODES[spec.grpc_code].value
    body = b'{"code":"%s","message":"%s"}' % (code.encode(), spec.message.encode())
    status = _CONNECT_HTTP_STATUS[spec.grpc_code]
    await _respond(send, status, [(b"content-type", b"application/json")], body)
