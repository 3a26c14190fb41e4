"""Pluggable public handlers for ``browser_bootstrap`` and ``browser_asset`` traffic.

The edge has already classified, rate-limited and method-checked the request
(GET/HEAD only, no body) before a handler runs. A handler is a plain ASGI app:

* ``NotConfiguredBrowserHandler`` (the default): ``404 not_found`` JSON;
* ``StaticDirectoryHandler``: files under one directory. ``/``, ``/index.html``
  and the client-side routes under ``/app`` answer the directory's ``index.html``
  (single-page-app fallback); other paths map to files; traversal outside the
  directory, dot-files and anything that is not a regular file are 404;
* ``ProxyBrowserHandler``: forwards to one upstream with httpx (bounded by its
  own timeout; an unreachable upstream is ``503 service_unavailable``), passing
  only a fixed list of request and response headers.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Final, Protocol

import httpx

from edgecore.errors import Reject
from public_rest.classifier import BROWSER_BOOTSTRAP
from public_rest.context import current_context
from public_rest.errors import JSON_CONTENT_TYPE, PublicError

__all__ = [
    "BrowserHandler",
    "NotConfiguredBrowserHandler",
    "ProxyBrowserHandler",
    "StaticDirectoryHandler",
    "send_error",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_STATIC_FILE_BYTES: Final = 32 << 20
_FORWARD_REQUEST_HEADERS: Final = (
    b"accept",
    b"accept-encoding",
    b"accept-language",
    b"if-none-match",
    b"if-modified-since",
    b"range",
    b"user-agent",
)
_FORWARD_RESPONSE_HEADERS: Final = frozenset(
    {
        "content-type", "content-length", "content-encoding", "content-language",
        "cache-control", "etag", "last-modified", "expires", "vary", "accept-ranges",
        "content-range", "location",
    }
)  # fmt: skip


class BrowserHandler(Protocol):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


async def send_error(send: Send, error: PublicError, *, head: bool = False) -> None:
    body = error.body
    headers = [
        (b"content-type", JSON_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class NotConfiguredBrowserHandler:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_error(
            send, PublicError.of(Reject.ROUTE_NOT_FOUND), head=scope.get("method") == "HEAD"
        )


class StaticDirectoryHandler:
    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        index: str = "index.html",
        asset_max_age: int = 3600,
    ) -> None:
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(str(root))
        self._index = index
        self._asset_cache = f"public, max-age={asset_max_age}".encode()

    def _resolve(self, path: str, route_class: str) -> Path | None:
        if route_class == BROWSER_BOOTSTRAP and (
            path in ("/", "/index.html", "/app") or path.startswith("/app/")
        ):
            candidate = self._file(path) if path.startswith("/app/") else None
            return candidate or self._file("/" + self._index)
        return self._file(path)

    def _file(self, path: str) -> Path | None:
        parts = [p for p in path.split("/") if p]
        if not parts or any(p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
            return None
        candidate = self.root.joinpath(*parts)
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not resolved.is_relative_to(self.root) or not resolved.is_file():
            return None
        return resolved

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = scope.get("method") == "HEAD"
        context = current_context()
        route_class = context.route_class if context is not None else BROWSER_BOOTSTRAP
        target = self._resolve(str(scope.get("path", "/")), route_class)
        if target is None:
            await send_error(send, PublicError.of(Reject.ROUTE_NOT_FOUND), head=head)
            return
        stat = target.stat()
        if stat.st_size > MAX_STATIC_FILE_BYTES:
            await send_error(send, PublicError.of(Reject.ROUTE_NOT_FOUND), head=head)
            return
        etag = f'W/"{stat.st_mtime_ns:x}-{stat.st_size:x}"'.encode()
        content_type, _ = mimetypes.guess_type(target.name)
        content_type = content_type or "application/octet-stream"
        if content_type.startswith("text/") or content_type in (
            "application/javascript",
            "application/json",
            "image/svg+xml",
        ):
            content_type += "; charset=utf-8"
        is_index = target.name == self._index
        headers = [
            (b"content-type", content_type.encode()),
            (b"etag", etag),
            (b"cache-control", b"no-cache" if is_index else self._asset_cache),
            (b"x-content-type-options", b"nosniff"),
        ]
        if _header(scope, b"if-none-match") == etag:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b"" if head else await asyncio.to_thread(target.read_bytes)
        headers.append((b"content-length", str(stat.st_size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


class ProxyBrowserHandler:
    def __init__(
        self,
        upstream: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=upstream.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = str(scope.get("method", "GET"))
        head = method == "HEAD"
        headers = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", ())
            if key in _FORWARD_REQUEST_HEADERS
        }
        raw_path = scope.get("raw_path") or str(scope.get("path", "/")).encode()
        url = bytes(raw_path).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + bytes(scope["query_string"]).decode("latin-1")
        request = self._client.build_request(method, url, headers=headers)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError:
            await send_error(
                send,
                PublicError.of(
                    Reject.DOWNSTREAM_UNAVAILABLE, reason="browser_upstream_unavailable"
                ),
                head=head,
            )
            return
        try:
            out = [
                (k.encode("latin-1"), v.encode("latin-1"))
                for k, v in response.headers.multi_items()
                if k.lower() in _FORWARD_RESPONSE_HEADERS
            ]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": out}
            )
            if not head:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()
