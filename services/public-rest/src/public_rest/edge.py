"""The public edge: an ASGI wrapper in front of the Litestar app and the browser handler.

Every HTTP request, whatever its path, goes through the same steps in order:

1. classify (``PublicTrafficClassifier``; the answer is normalized);
2. per-IP token bucket of the class (TCP peer only) -> ``429 rate_limited`` + ``Retry-After``;
3. method allow-list -> ``405 method_not_allowed`` + ``Allow``; unknown
   ``public_misc`` paths -> ``404 not_found``;
4. body limit of the class: ``Content-Length`` above the limit -> ``413`` without
   buffering anything; otherwise the body is read here, counted chunk by chunk,
   and refused with ``413`` as soon as it passes the limit, all within
   ``GATEWAY_PUBLIC_HTTP_READ_TIMEOUT`` from the request's start. A refused body
   is never buffered; at most 64 KiB more of it is read and discarded (0.5 s at
   most) so that the client can read the 413 before the connection closes. A
   body whose framing breaks (``http.disconnect`` before its end) is ``400``;
5. dispatch: browser classes to the browser handler, the rest to Litestar, which
   sees the already-read body.

Afterwards the request is counted (``gateway.public_http.requests``/``duration``),
rejects are counted per class and reason, repeated failures feed the audit
tracker, and the request's server span (when spans are exported) closes. Every
response carries ``X-Request-Id``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final

from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from edgecore.errors import Reject
from public_rest.audit import FailureTracker
from public_rest.browser import BrowserHandler, send_error
from public_rest.classifier import (
    BROWSER_ASSET,
    BROWSER_BOOTSTRAP,
    PUBLIC_MISC,
    PublicTrafficClassifier,
    RouteClass,
    normalize_route_class,
)
from public_rest.context import RequestContext, reset_context, use_context
from public_rest.errors import PublicError
from public_rest.metrics import PublicRestMetrics
from public_rest.policy import ROUTE_METHODS, PublicPolicy, peer_ip

__all__ = ["ABUSE_SIGNALS", "MALFORMED_FIELDS", "ASGIApp", "PublicEdge"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger("public_rest.edge")

# Reject reasons that are the client's doing (fed to the audit tracker).
ABUSE_SIGNALS: Final = frozenset(
    {
        "rate_limited", "identity_rate_limited", "request_too_large", "method_not_allowed",
        "malformed_request", "route_not_found", "auth_service_error", "body_read_timeout",
    }
)  # fmt: skip
# How much of a refused body is read and discarded before the 413 (see _drain).
DRAIN_MAX_BYTES: Final = 64 * 1024
DRAIN_MAX_SECONDS: Final = 0.5
# Field labels of gateway.public_http.malformed_requests (anything else: unknown_field).
MALFORMED_FIELDS: Final = frozenset(
    {
        "body", "email", "challenge_id", "code", "client_public_key", "time_zone",
        "content_type", "content_length",
    }
)  # fmt: skip


class _HeaderGetter(Getter[list[tuple[bytes, bytes]]]):
    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in carrier if k == name]
        return values or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_GETTER: Final = _HeaderGetter()


def _route_template(route_class: RouteClass, path: str) -> str:
    if path in ROUTE_METHODS:
        return path
    if route_class == BROWSER_BOOTSTRAP:
        return "/app/*" if path.startswith("/app/") else path
    if route_class == BROWSER_ASSET:
        for prefix in ("/assets/", "/static/", "/app/"):
            if path.startswith(prefix):
                return prefix + "*"
        return "/*"
    return "unmatched"


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class PublicEdge:
    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: PublicPolicy,
        classifier: PublicTrafficClassifier,
        browser: BrowserHandler,
        metrics: PublicRestMetrics,
        tracker: FailureTracker,
        read_timeout: float,
        trace_requests: bool = True,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.app = app
        self.policy = policy
        self.classifier = classifier
        self.browser = browser
        self.metrics = metrics
        self.tracker = tracker
        self.read_timeout = read_timeout
        self._tracer = tracer or trace.get_tracer("public_rest")
        self._trace_requests = trace_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self.app(scope, receive, send)
        elif kind == "websocket":  # not part of the public surface
            await send({"type": "websocket.close", "code": 1008})

    def _classify(self, method: str, path: str) -> RouteClass:
        try:
            return normalize_route_class(self.classifier.classify(method, path))
        except Exception as exc:
            _log.error("classifier failed", extra={"exc_kind": type(exc).__name__})
            return PUBLIC_MISC

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        route_class = self._classify(method, path)
        ip = peer_ip(scope.get("client"))
        request_id = os.urandom(16).hex()
        context = RequestContext(
            request_id=request_id,
            route_class=route_class,
            peer_ip=ip,
            method=method,
            route=_route_template(route_class, path),
        )
        token = use_context(context)
        status = 0
        request_id_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", ()), request_id_header]
            await send(message)

        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        if self._trace_requests:
            span = self._tracer.start_span(
                f"{method} {context.route}",
                context=propagate.extract(headers, getter=_GETTER),
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": method,
                    "http.route": context.route,
                    "public_rest.route_class": route_class,
                },
            )
        else:
            span = trace.INVALID_SPAN
        try:
            with trace.use_span(span, end_on_exit=False):
                await self._handle(scope, receive, send_wrapper, context, headers)
        except Exception as exc:
            context.result = context.result or "internal_error"
            _log.error(
                "request failed",
                extra={"exc_kind": type(exc).__name__, "request_id": request_id},
            )
            if status == 0:
                await send_error(send_wrapper, PublicError.of(Reject.INTERNAL_ERROR))
        finally:
            reset_context(token)
            result = context.result or ("ok" if 0 < status < 400 else _reason_for(status))
            if span.is_recording():
                span.set_attributes(
                    {"http.response.status_code": status, "public_rest.result": result}
                )
            if status >= 500 or status == 0:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            self._account(context, status, result, time.perf_counter() - started)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        context: RequestContext,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        route_class = context.route_class
        head = context.method == "HEAD"

        decision = self.policy.check_ip(route_class, context.peer_ip)
        if not decision.allowed:
            await self._reject(send, PublicError.rate_limited(decision.retry_after), context, head)
            return

        allowed = self.policy.allowed_methods(route_class, scope["path"])
        if allowed is None:
            await self._reject(send, PublicError.of(Reject.ROUTE_NOT_FOUND), context, head)
            return
        if context.method not in allowed:
            error = PublicError.of(Reject.METHOD_NOT_ALLOWED, headers={"Allow": ", ".join(allowed)})
            await self._reject(send, error, context, head)
            return

        limit = self.policy.for_class(route_class).max_body_bytes
        try:
            receive = await self._read_body(receive, headers, limit, context)
        except PublicError as error:
            await self._reject(send, error, context, head)
            return

        if route_class in (BROWSER_BOOTSTRAP, BROWSER_ASSET):
            await self.browser(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _read_body(
        self,
        receive: Receive,
        headers: list[tuple[bytes, bytes]],
        limit: int,
        context: RequestContext,
    ) -> Receive:
        chunked = _header(headers, b"transfer-encoding") is not None
        length = await self._declared_length(receive, headers, limit, context)
        if not chunked and not length:
            return receive  # no body (no framing at all, or Content-Length: 0)

        chunks: list[bytes] = []
        total = 0
        try:
            async with asyncio.timeout(self.read_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _broken_body(context, total)
                    chunk = message.get("body", b"")
                    total += len(chunk)
                    if total > limit:
                        if message.get("more_body", False):
                            await _drain(receive)
                        raise PublicError.of(Reject.REQUEST_TOO_LARGE)
                    if chunk:
                        chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            context.extra["field"] = "body"
            raise PublicError.of(
                Reject.MALFORMED_REQUEST,
                "request body was not received within the read timeout",
                reason="body_read_timeout",
            ) from None

        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    @staticmethod
    async def _declared_length(
        receive: Receive,
        headers: list[tuple[bytes, bytes]],
        limit: int,
        context: RequestContext,
    ) -> int | None:
        """The Content-Length, if any; 413 before buffering when it exceeds the limit."""
        length_header = _header(headers, b"content-length")
        if length_header is None:
            return None
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0:
            context.extra["field"] = "content_length"
            raise PublicError.malformed("Content-Length must be a non-negative integer")
        if length > limit:
            if length <= limit + DRAIN_MAX_BYTES:
                await _drain(receive)
            raise PublicError.of(Reject.REQUEST_TOO_LARGE)
        return length

    async def _reject(
        self, send: Send, error: PublicError, context: RequestContext, head: bool
    ) -> None:
        context.result = error.reason
        await send_error(send, error, head=head)

    def _account(self, context: RequestContext, status: int, result: str, seconds: float) -> None:
        route_class = context.route_class
        self.metrics.observe(route_class, context.method, status, result, seconds)
        if result == "ok":
            return
        self.metrics.rejects.labels(route_class, result).inc()
        if result == "malformed_request":
            field = context.extra.get("field", "body")
            self.metrics.malformed.labels(
                route_class, field if field in MALFORMED_FIELDS else "unknown_field"
            ).inc()
        if result in ABUSE_SIGNALS:
            self.tracker.record(route_class, result, context.peer_ip)
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug(
                "public request rejected",
                extra={
                    "request_id": context.request_id,
                    "route_class": route_class,
                    "route": context.route,
                    "method": context.method,
                    "status": status,
                    "result": result,
                },
            )


def _broken_body(context: RequestContext, received: int) -> PublicError:
    """The body ended before its framing did: ``400 invalid_request``, one log line.

    Granian answers ``http.disconnect`` from ``receive()`` both when the client
    vanished mid-body and when hyper refused the body's framing (a chunk size
    such as ``zz`` or one past 64 bits, a body cut short by EOF); the app cannot
    tell which. Answering nothing made Granian send its own text/plain 500; the
    catalog's 400 reaches a client that is still there and is dropped otherwise.
    The line carries fixed fields only (no bytes of the request), and the
    per-IP bucket checked before any body is read bounds how often one peer
    can cause it.
    """
    context.extra["field"] = "body"
    _log.info(
        "request body ended before its framing was complete",
        extra={
            "request_id": context.request_id,
            "route_class": context.route_class,
            "route": context.route,
            "method": context.method,
            "received_bytes": received,
        },
    )
    return PublicError.of(Reject.MALFORMED_REQUEST)


async def _drain(receive: Receive) -> None:
    """Discard a little more of a refused body (bounded in bytes and time, never kept).

    Answering while the client is still sending makes the server close a socket
    with unread data, and the peer's TCP stack may then drop the 413 before the
    client reads it (a reset). Reading up to ``DRAIN_MAX_BYTES`` more for at most
    ``DRAIN_MAX_SECONDS`` lets ordinary clients see the answer; anything larger
    is cut off without further reading.
    """
    drained = 0
    try:
        async with asyncio.timeout(DRAIN_MAX_SECONDS):
            while drained <= DRAIN_MAX_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        return


_STATUS_REASONS: Final = {
    0: "no_response",
    404: "route_not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    429: "rate_limited",
    502: "upstream_error",
    503: "upstream_error",
    504: "upstream_error",
}


def _reason_for(status: int) -> str:
    """The result label of a response whose handler did not name one."""
    if status in _STATUS_REASONS:
        return _STATUS_REASONS[status]
    return "internal_error" if status >= 500 else "client_error"
