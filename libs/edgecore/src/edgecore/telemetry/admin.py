"""The private admin listener: ``GET /metrics`` (and ``GET /healthz``), nothing else.

A deliberately small asyncio HTTP/1.1 server: one request per connection,
bounded header/read/idle budgets from ``GATEWAY_ADMIN_HTTP_*``, no request
bodies. It never shares a port with client traffic, and the chart's
NetworkPolicy lets only the monitoring selector reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from edgecore.config.sections import AdminHttpSettings

__all__ = ["AdminServer"]

_log = logging.getLogger("edgecore.admin")
_MAX_HEADER_BYTES: Final = 8192
_PROMETHEUS_TEXT: Final = b"text/plain; version=0.0.4; charset=utf-8"


class AdminServer:
    def __init__(self, settings: AdminHttpSettings, render_metrics: Callable[[], bytes]) -> None:
        self._settings = settings
        self._render = render_metrics
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int | None:
        if self._server is None or not self._server.sockets:
            return None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        addr = self._settings.addr
        if addr is None:
            return
        self._server = await asyncio.start_server(
            self._handle, host=addr.host or None, port=addr.port, limit=_MAX_HEADER_BYTES
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"),
                timeout=self._settings.read_header_timeout.total_seconds(),
            )
            status, content_type, body = self._respond(head)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            status, content_type, body = b"408 Request Timeout", b"text/plain", b"timeout\n"
        except Exception:
            _log.exception("admin request failed")
            status, content_type, body = b"500 Internal Server Error", b"text/plain", b"error\n"
        try:
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type
                + b"\r\nContent-Length: " + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n" + body
            )  # fmt: skip
            await asyncio.wait_for(
                writer.drain(), timeout=self._settings.read_timeout.total_seconds()
            )
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _respond(self, head: bytes) -> tuple[bytes, bytes, bytes]:
        request_line = head.split(b"\r\n", 1)[0]
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return b"400 Bad Request", b"text/plain", b"bad request\n"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if target not in (b"/metrics", b"/healthz"):
            return b"404 Not Found", b"text/plain", b"not found\n"
        if method not in (b"GET", b"HEAD"):
            return b"405 Method Not Allowed", b"text/plain", b"method not allowed\n"
        if target == b"/healthz":
            return b"200 OK", b"text/plain", b"ok\n"
        body = self._render()
        return b"200 OK", _PROMETHEUS_TEXT, body if method == b"GET" else b""
