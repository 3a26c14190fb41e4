"""Serving the app: Granian's embedded server in this process, the admin listener beside it.

One process, one asyncio loop, one Granian worker: the rate limiter, the
metrics and the admin ``/metrics`` listener all live where the requests are
counted (scale out with replicas, not workers). Listener budgets map onto
Granian as follows (docs/public-rest.md):

* ``GATEWAY_PUBLIC_HTTP_READ_HEADER_TIMEOUT`` -> ``HTTP1Settings.header_read_timeout``;
  hyper applies the same timer while a kept-alive connection waits for its next
  request, so an idle connection is closed after this budget as well;
* ``GATEWAY_PUBLIC_HTTP_READ_TIMEOUT`` -> enforced by the edge while it reads the
  body (from the start of the request), since Granian has no such option;
* ``GATEWAY_PUBLIC_HTTP_IDLE_TIMEOUT`` -> not configurable in Granian 2.8 for
  HTTP/1.1; the effective idle limit is the header budget above (shorter);
* ``GATEWAY_SHUTDOWN_TIMEOUT`` -> the budget of the graceful stop after SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server

from edgecore.backend.client import BackendClient
from edgecore.config import HostPort, PublicRestSettings
from edgecore.telemetry import AdminServer, configure_logging, configure_tracing
from public_rest.app import PublicRestApp, build_app_from_settings
from public_rest.auth import BackendAuthServiceClient
from public_rest.browser import BrowserHandler, ProxyBrowserHandler
from public_rest.metrics import PublicRestMetrics
from public_rest.readiness import Readiness, TcpProbe, upstream_address

__all__ = ["GranianOptions", "PublicRestProcess", "granian_options", "listen_host", "serve"]

_log = logging.getLogger("public_rest")
SERVICE = "public-rest"

# Granian's own loggers go through the root JSON handler, warnings and above.
_GRANIAN_LOGGING: dict[str, Any] = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": False},
    }
}


def listen_host(addr: HostPort) -> str:
    """``:8080`` (empty host) binds every IPv4 interface, like Go's listener on IPv4."""
    return addr.host or "0.0.0.0"  # noqa: S104 - an empty host means all interfaces


@dataclass(frozen=True, slots=True)
class GranianOptions:
    address: str
    port: int
    header_read_timeout_ms: int
    backlog: int = 1024

    def kwargs(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "port": self.port,
            "interface": Interfaces.ASGI,
            "http": HTTPModes.http1,
            "websockets": False,
            "backlog": self.backlog,
            "http1_settings": HTTP1Settings(
                header_read_timeout=self.header_read_timeout_ms, keep_alive=True
            ),
            "log_level": LogLevels.warning,
            "log_dictconfig": _GRANIAN_LOGGING,
            "log_access": False,
        }


def _ms(value: timedelta) -> int:
    return max(1, round(value.total_seconds() * 1000))


def granian_options(settings: PublicRestSettings) -> GranianOptions:
    return GranianOptions(
        address=listen_host(settings.http.addr),
        port=settings.http.addr.port,
        header_read_timeout_ms=_ms(settings.http.read_header_timeout),
    )


async def _bounded(label: str, budget: float, close: Callable[[], Any]) -> None:
    try:
        async with asyncio.timeout(budget):
            result = close()
            if asyncio.iscoroutine(result):
                await result
    except Exception as exc:
        _log.warning("close failed", extra={"component": label, "exc_kind": type(exc).__name__})


async def serve(
    settings: PublicRestSettings,
    backend: BackendClient | None,
    browser: BrowserHandler | None = None,
) -> int:
    """Run until SIGTERM/SIGINT, then stop within GATEWAY_SHUTDOWN_TIMEOUT; the exit code."""
    return await PublicRestProcess(settings, backend, browser).run()


class PublicRestProcess:
    def __init__(
        self,
        settings: PublicRestSettings,
        backend: BackendClient | None,
        browser: BrowserHandler | None = None,
    ) -> None:
        self.settings = settings
        self.browser = browser
        self.provider = configure_tracing(settings.telemetry, SERVICE)
        self.metrics = PublicRestMetrics()
        self.auth = BackendAuthServiceClient(backend) if backend is not None else None
        probe = None
        if backend is not None and settings.backend.http_url is not None:
            host, port = upstream_address(settings.backend.http_url)
            probe = TcpProbe(host, port)
        self.app: PublicRestApp = build_app_from_settings(
            settings,
            auth_client=self.auth,
            readiness=Readiness(probe),
            browser=browser,
            metrics=self.metrics,
        )
        self.options = granian_options(settings)
        self.server = Server(self.app.asgi, **self.options.kwargs())
        # Granian configures logging in its constructor; ours must win.
        configure_logging(settings.logging.level, SERVICE)
        if settings.logging.level != "debug":
            # httpx logs every upstream call at INFO; the edge has its own accounting.
            for name in ("httpx", "httpcore"):
                logging.getLogger(name).setLevel(logging.WARNING)
        self.admin = AdminServer(settings.admin, self.metrics.render)
        self.budget = settings.shutdown.timeout.total_seconds()
        self.stopping = asyncio.Event()

    def request_stop(self) -> None:
        """SIGTERM/SIGINT: not ready any more, stop accepting, let in-flight requests end."""
        if self.stopping.is_set():
            return
        _log.info("shutdown requested", extra={"budget_seconds": self.budget})
        self.app.readiness.shutting_down = True
        self.stopping.set()
        self.server.stop()  # type: ignore[no-untyped-call]

    async def run(self) -> int:
        try:
            await self.admin.start()
        except OSError as exc:
            _log.error("admin listener failed to start", extra={"exc_kind": type(exc).__name__})
            return 1
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        serving = asyncio.create_task(self.server.serve())
        _log.info(
            "public-rest listening",
            extra={
                "addr": f"{self.options.address}:{self.options.port}",
                "admin": str(self.settings.admin.addr) if self.settings.admin.addr else "disabled",
                "upstream": "configured" if self.auth is not None else "none",
                "browser": type(self.browser).__name__ if self.browser is not None else "none",
            },
        )
        code = await self._wait(serving)
        await self._close()
        _log.info("public-rest stopped")
        return code

    async def _wait(self, serving: asyncio.Task[None]) -> int:
        stop_wait = asyncio.create_task(self.stopping.wait())
        done, _ = await asyncio.wait({serving, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if serving in done:
            stop_wait.cancel()
            failure = serving.exception()
            if failure is None:
                return 0
            _log.error("listener failed", extra={"exc_kind": type(failure).__name__})
            return 1
        try:
            async with asyncio.timeout(self.budget):
                await serving
        except TimeoutError:
            _log.warning("graceful stop exceeded GATEWAY_SHUTDOWN_TIMEOUT; abandoning requests")
            serving.cancel()
            with contextlib.suppress(BaseException):
                await serving
        except Exception as exc:
            _log.error("listener failed while stopping", extra={"exc_kind": type(exc).__name__})
            return 1
        return 0

    async def _close(self) -> None:
        await _bounded("admin", self.budget, self.admin.close)
        if self.auth is not None:
            await _bounded("backend", self.budget, self.auth.aclose)
        if isinstance(self.browser, ProxyBrowserHandler):
            await _bounded("browser", self.budget, self.browser.aclose)
        await _bounded("tracing", self.budget, lambda: asyncio.to_thread(self.provider.shutdown))
