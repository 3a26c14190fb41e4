"""Readiness: can this process serve the public auth routes right now?

``GET /readyz`` is 200 only when all of these hold:

1. the process is not shutting down (SIGTERM flips it to 503 at once);
2. an auth upstream is configured (``GATEWAY_BACKEND_HTTP_URL``);
3. a TCP connection to the upstream's host and port succeeded within
   ``connect_timeout`` (0.5 s) on the latest probe. A probe result is reused for
   ``ttl`` (2 s) and concurrent checks share one probe, so ``/readyz`` never
   waits longer than ``connect_timeout`` and a burst of checks opens at most one
   connection.

The probe is a bare TCP connect (closed immediately): it proves the upstream
listens, without assuming any health route on the backend or signing a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_TTL", "Readiness", "TcpProbe", "upstream_address"]

DEFAULT_CONNECT_TIMEOUT: Final = 0.5
DEFAULT_TTL: Final = 2.0


def upstream_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return host, port


class TcpProbe:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self._timeout = connect_timeout
        self._ttl = ttl
        self._clock = clock
        self._checked_at: float | None = None
        self._ok = False
        self._inflight: asyncio.Future[bool] | None = None

    async def check(self) -> bool:
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self._ttl:
            return self._ok
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._probe())
        future = self._inflight
        try:
            return await asyncio.shield(future)
        finally:
            if future.done() and self._inflight is future:
                self._inflight = None

    async def _probe(self) -> bool:
        ok = False
        try:
            async with asyncio.timeout(self._timeout):
                _, writer = await asyncio.open_connection(self.host, self.port)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=self._timeout)
            ok = True
        except (OSError, TimeoutError):
            ok = False
        self._ok = ok
        self._checked_at = self._clock()
        return ok


class Readiness:
    def __init__(self, probe: TcpProbe | None) -> None:
        self.probe = probe
        self.shutting_down = False

    async def ready(self) -> bool:
        if self.shutting_down or self.probe is None:
            return False
        return await self.probe.check()
