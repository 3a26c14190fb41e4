"""CORS for browser clients (connect-web over Connect or gRPC-Web) from an allow-list.

``GATEWAY_AUTHENTICATED_GRPC_CORS_ALLOWED_ORIGINS`` lists exact origins; empty
turns CORS off (no header is ever added). A preflight from an allowed origin
gets 204 with the methods, request headers and max-age a Connect or gRPC-Web
client needs; one from any other origin gets 403 and no CORS header, so the
browser refuses the call. Responses to allowed origins expose the gRPC-Web
status headers (a unary Connect error is in the body and needs none) and
``retry-after`` of a rate-limit reject. No
credentials: requests are authenticated by their signatures, not cookies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["ALLOWED_HEADERS", "EXPOSED_HEADERS", "CorsPolicy"]

# What @connectrpc/connect-web sends (Connect and gRPC-Web), plus W3C trace context.
ALLOWED_HEADERS: Final = (
    "content-type",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-accept-encoding",
    "connect-content-encoding",
    "grpc-timeout",
    "grpc-accept-encoding",
    "x-grpc-web",
    "x-user-agent",
    "traceparent",
    "tracestate",
)
EXPOSED_HEADERS: Final = (
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "connect-content-encoding",
    "content-encoding",
    "retry-after",
)
ALLOWED_METHODS: Final = "POST, GET"
MAX_AGE_SECONDS: Final = 7200


class CorsPolicy:
    __slots__ = ("_origins", "preflight_headers", "response_headers")

    def __init__(self, origins: Iterable[str]) -> None:
        self._origins = frozenset(origins)
        self.preflight_headers: tuple[tuple[bytes, bytes], ...] = (
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", ", ".join(ALLOWED_HEADERS).encode()),
            (b"access-control-max-age", str(MAX_AGE_SECONDS).encode()),
            (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        )
        self.response_headers: tuple[tuple[bytes, bytes], ...] = (
            (b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode()),
            (b"vary", b"Origin"),
        )

    def __bool__(self) -> bool:
        return bool(self._origins)

    def allows(self, origin: bytes) -> bool:
        try:
            return origin.decode("ascii") in self._origins
        except UnicodeDecodeError:
            return False
