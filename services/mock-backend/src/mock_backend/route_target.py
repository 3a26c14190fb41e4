"""A passthrough route target for development and tests: `python -m mock_backend.route_target`.

It is what a team's service behind a GatewayRoute looks like (docs/routes.md):
every ``POST /routes/...`` must carry a valid internal-route signature
(``HmacVerifierMiddleware``, the same verifier the mock backend uses) made
with the route's secret; an unsigned or forged call is refused before it is
recorded. The path picks the behaviour, so one target serves every test:

* ``/routes/echo``    200, the payload back unchanged, result code ``ok``;
* ``/routes/slow``    the same after ``ROUTE_TARGET_SLOW_MS`` (default 3000);
* ``/routes/broken``  503 (the gateway answers UNAVAILABLE);
* ``/routes/nocode``  200 without a result code (a contract breach: INTERNAL).

``GET /_received`` (unsigned: it is the test's window) lists what was
accepted: path, the context headers and the payload's length and SHA-256.

Environment: ``ROUTE_TARGET_ADDR`` (host:port), ``ROUTE_TARGET_HMAC_SECRET_PATH``,
optional ``ROUTE_TARGET_SLOW_MS``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from granian.constants import Interfaces
from granian.server.embed import Server

from edgecore.internal_auth import (
    HmacSecretError,
    HmacVerifierMiddleware,
    MemoryNonceStore,
    load_hmac_secret,
    verified_caller,
)

__all__ = ["CONTENT_TYPE", "RouteTarget", "main"]

CONTENT_TYPE: Final = "application/x-flatbuffers"
_CONTEXT_HEADERS: Final = (
    "x-user-id", "x-device-session-id", "x-message-type", "x-request-id", "x-trace-id",
)  # fmt: skip
_MAX_BODY: Final = 4 << 20

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
logger = logging.getLogger("mock_backend.route_target")


class RouteTarget:
    """The ASGI app behind the verifier: records and answers by path."""

    def __init__(self, *, slow_ms: int = 3000) -> None:
        self.received: list[dict[str, Any]] = []
        self._slow = slow_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/_received" and method == "GET":
            await _answer(send, 200, json.dumps(self.received).encode(), "application/json")
            return
        if not path.startswith("/routes/") or method != "POST":
            await _answer(send, 404, b"", "text/plain")
            return
        body = await _read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        caller = verified_caller(scope)
        self.received.append(
            {
                "path": path,
                "key_id": caller.key_id if caller is not None else None,
                **{name: headers.get(name) for name in _CONTEXT_HEADERS},
                "payload_len": len(body),
                "payload_sha256": hashlib.sha256(body).hexdigest(),
            }
        )
        if path == "/routes/slow":
            await asyncio.sleep(self._slow)
        if path == "/routes/broken":
            await _answer(send, 503, b"", "text/plain")
        elif path == "/routes/nocode":
            await _answer(send, 200, body, CONTENT_TYPE)
        else:
            await _answer(send, 200, body, CONTENT_TYPE, result_code="ok")


def build_app(secret: bytes, *, slow_ms: int = 3000) -> tuple[Any, RouteTarget]:
    target = RouteTarget(slow_ms=slow_ms)
    app = HmacVerifierMiddleware(
        target,
        secret=secret,
        nonce_store=MemoryNonceStore(),
        protected_prefixes=("/routes/",),
        allowed_content_types=(CONTENT_TYPE,),
        max_body_bytes=_MAX_BODY,
    )
    return app, target


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(
    send: Send, status: int, body: bytes, content_type: str, *, result_code: str | None = None
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if result_code is not None:
        headers.append((b"x-galaxy-result-code", result_code.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def main() -> int:
    addr = os.environ.get("ROUTE_TARGET_ADDR", "127.0.0.1:8090")
    host, _, port = addr.rpartition(":")
    try:
        secret = load_hmac_secret(os.environ.get("ROUTE_TARGET_HMAC_SECRET_PATH", ""))
        slow_ms = int(os.environ.get("ROUTE_TARGET_SLOW_MS", "3000"))
        port_number = int(port)
    except (HmacSecretError, ValueError) as exc:
        print(f"route-target: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")  # fmt: skip
    app, _ = build_app(secret, slow_ms=slow_ms)
    code = asyncio.run(_serve(app, host or "127.0.0.1", port_number))
    # As mock_backend.__main__: skip finalisation, the embedded server's threads can abort it.
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)


async def _serve(app: Any, host: str, port: int) -> int:
    server = Server(app, address=host, port=port, interface=Interfaces.ASGI,
                    log_access=False, websockets=False)  # fmt: skip
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    logger.info("route target listening on %s:%d", host, port)
    await server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
