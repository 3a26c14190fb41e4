"""The service runtime both authenticated services share (edge-grpc, push-hub).

A service brings its endpoints and its dependencies (``RpcService``); the
runtime brings everything around them, once:

* the ASGI app Envoy serves (pyvoy): connectrpc with the catalog codecs and
  interceptors, ``grpc.health.v1`` on the same port, CORS, the drain gate;
* start-up on ASGI ``lifespan.startup``: the service's ``start`` (which
  refuses with ``StartupError``), the admin /metrics listener, the health
  follower; the outcome is reported to the launcher (``control.py``);
* health: NOT_SERVING until ``ready()`` first holds, then re-checked every
  ``health_interval``; NOT_SERVING for good once the drain begins;
* the graceful stop: on ``drain`` from the launcher, health goes
  NOT_SERVING, new calls are refused, the service's own ``drain`` runs (push-hub
  ends its streams), and calls in flight get up to ``GATEWAY_SHUTDOWN_TIMEOUT``;
* shutdown on ``lifespan.shutdown``: every resource the service and the
  runtime pushed on one ``AsyncExitStack`` is closed in reverse order, each
  step bounded by ``GATEWAY_SHUTDOWN_TIMEOUT`` and isolated from the others'
  failures (``bounded_close``), then the tracer provider is flushed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Protocol

from connectrpc.method import StreamType
from connectrpc.server import ConnectASGIApplication, Endpoint
from opentelemetry.sdk.trace import TracerProvider

from edgecore.config.sections import (
    AdminHttpSettings,
    AuthenticatedGrpcSettings,
    ShutdownSettings,
    TelemetrySettings,
)
from edgecore.rpc.asgi import Message, Receive, RpcFront, Scope, Send
from edgecore.rpc.codecs import PROTO_CODECS
from edgecore.rpc.control import Report, ReportWriter, control_fd
from edgecore.rpc.cors import CorsPolicy
from edgecore.rpc.gateway import GATEWAY_SERVICE
from edgecore.rpc.health import HEALTH_SERVICE, HealthState, health_endpoints
from edgecore.rpc.interceptors import CatalogErrors
from edgecore.rpc.tracing import TracedRpcs
from edgecore.telemetry import AdminServer, configure_tracing

__all__ = [
    "LazyApp",
    "NO_EXPORTER_SAMPLER",
    "RpcService",
    "RuntimeSettings",
    "ServiceRuntime",
    "StartupError",
    "bounded_close",
    "default_sampler_without_exporter",
]

NO_EXPORTER_SAMPLER: Final = "parentbased_always_off"

_log = logging.getLogger("edgecore.rpc")


class StartupError(Exception):
    """The service must not start; the message is one line, safe to print (no secrets)."""


class RpcService(Protocol):
    """What a service hands the runtime (consumer-side interface)."""

    name: str

    def endpoints(self) -> Mapping[str, Endpoint[Any, Any]]:
        """``/galaxy.gateway.v1.EdgeGateway/<Method>`` -> its endpoint."""
        ...

    async def start(self, resources: AsyncExitStack) -> None:
        """Connect dependencies, start background work; push every close on ``resources``.

        Raises ``StartupError`` to refuse to start.
        """
        ...

    async def ready(self) -> bool:
        """Whether the service can serve now (Redis answers, readers connected)."""
        ...

    async def drain(self) -> None:
        """The service's own part of a graceful stop (called once, before the wait)."""
        ...


class _AuthenticatedServiceSettings(Protocol):
    """The sections every authenticated service's settings have (EdgeGrpc/PushHubSettings)."""

    @property
    def grpc(self) -> AuthenticatedGrpcSettings: ...
    @property
    def shutdown(self) -> ShutdownSettings: ...
    @property
    def admin(self) -> AdminHttpSettings: ...
    @property
    def telemetry(self) -> TelemetrySettings: ...


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    max_message_bytes: int
    shutdown_timeout: timedelta
    cors_allowed_origins: tuple[str, ...]
    admin: AdminHttpSettings
    telemetry: TelemetrySettings
    health_interval: timedelta = timedelta(seconds=1)

    @classmethod
    def of(
        cls, settings: _AuthenticatedServiceSettings, *, health_interval: timedelta
    ) -> RuntimeSettings:
        return cls(
            max_message_bytes=settings.grpc.max_message_bytes,
            shutdown_timeout=settings.shutdown.timeout,
            cors_allowed_origins=settings.grpc.cors_allowed_origins,
            admin=settings.admin,
            telemetry=settings.telemetry,
            health_interval=health_interval,
        )


def default_sampler_without_exporter(exporter: str, environ: MutableMapping[str, str]) -> None:
    """With no trace exporter, record spans only under a sampled parent.

    Tracing stays enabled (ids and context propagation work), but a span that
    nothing can export costs CPU at every call (about 40 us a request, measured
    on edge-grpc) and memory for as long as a stream lives. An operator's own
    OTEL_TRACES_SAMPLER always wins; the SDK reads it when the provider is built.
    """
    if exporter == "none":
        environ.setdefault("OTEL_TRACES_SAMPLER", NO_EXPORTER_SAMPLER)


async def bounded_close(step: str, close: Callable[[], Awaitable[object]], seconds: float) -> None:
    """One shutdown step: bounded, and a failure never skips the steps after it."""
    try:
        async with asyncio.timeout(seconds):
            await close()
    except TimeoutError:
        _log.warning("shutdown step timed out", extra={"step": step, "timeout_s": seconds})
    except Exception as exc:
        _log.warning("shutdown step failed", extra={"step": step, "error": type(exc).__name__})


class _ConnectApp(ConnectASGIApplication[Any]):
    @property
    def path(self) -> str:
        return f"/{GATEWAY_SERVICE}"


class ServiceRuntime:
    """The ASGI application of one service process (served by pyvoy inside Envoy)."""

    def __init__(
        self,
        service: RpcService,
        settings: RuntimeSettings,
        *,
        metrics_render: Callable[[], bytes] | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.health = HealthState([GATEWAY_SERVICE])
        self._metrics_render = metrics_render
        self._report = ReportWriter()
        self._resources = AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self._tracer_provider: TracerProvider | None = None
        self._front: RpcFront | None = None
        self._draining = False
        self.admin: AdminServer | None = None

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self._front is None:  # only before start-up completed
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await self._front(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except StartupError as exc:
                    self._report.send(Report("refused", str(exc)))
                    await self._close()
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                except Exception as exc:
                    reason = f"unexpected start-up failure ({type(exc).__name__})"
                    _log.error("start-up failed", extra={"error": type(exc).__name__})
                    self._report.send(Report("refused", reason))
                    await self._close()
                    await send({"type": "lifespan.startup.failed", "message": reason})
                    return
                self._report.send(Report("started"))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.drain()
                await self._close()
                _log.info(f"{self.service.name} stopped")
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ start-up

    async def start(self) -> None:
        settings = self.settings
        default_sampler_without_exporter(settings.telemetry.traces_exporter, os.environ)
        self._tracer_provider = configure_tracing(settings.telemetry, self.service.name)
        await self.service.start(self._resources)
        endpoints: dict[str, Any] = {
            **self.service.endpoints(),
            **health_endpoints(self.health),
        }
        app = _ConnectApp(
            service=None,
            endpoints=lambda _: endpoints,
            interceptors=(CatalogErrors(), TracedRpcs(self._tracer_provider, {HEALTH_SERVICE})),
            read_max_bytes=settings.max_message_bytes,
            compressions=None,
            codecs=PROTO_CODECS,
        )
        self._front = RpcFront(
            app,
            stream_paths={path for path, endpoint in endpoints.items() if _is_stream(endpoint)},
            cors=CorsPolicy(settings.cors_allowed_origins),
        )
        await self._start_admin()
        self._spawn(self._follow_health(), "health")
        fd = control_fd()
        if fd is not None:
            self._follow_control(fd)

    async def _start_admin(self) -> None:
        admin = self.settings.admin
        if admin.addr is None or self._metrics_render is None:
            return
        server = AdminServer(admin, self._metrics_render)
        try:
            await server.start()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {admin.addr} (GATEWAY_ADMIN_HTTP_ADDR): "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        self.admin = server
        self._push_close("admin listener", server.close)

    def _push_close(self, step: str, close: Callable[[], Awaitable[object]]) -> None:
        budget = self.settings.shutdown_timeout.total_seconds()
        self._resources.push_async_callback(bounded_close, step, close, budget)

    def _spawn(self, coroutine: Any, name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coroutine, name=name))

    # ------------------------------------------------------------------ health

    async def _follow_health(self) -> None:
        interval = self.settings.health_interval.total_seconds()
        serving: bool | None = None
        while not self._draining:
            healthy = await self.service.ready()
            if healthy != serving and not self._draining:
                self.health.set_all(healthy)
                if serving is not None or healthy:  # start-up begins NOT_SERVING: no news
                    log = _log.info if healthy else _log.warning
                    log("health changed", extra={"status": "SERVING" if healthy else "NOT_SERVING"})
                serving = healthy
            await asyncio.sleep(interval)

    # ------------------------------------------------------------------ graceful stop

    def _follow_control(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)

        def readable() -> None:
            try:
                data = os.read(fd, 64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            loop.remove_reader(fd)
            # "drain"; or EOF: the launcher is gone, and nothing else will ever stop us.
            self._spawn(self._drain_and_report(orphaned=not data), "drain")

        loop.add_reader(fd, readable)

    async def _drain_and_report(self, *, orphaned: bool) -> None:
        await self.drain()
        self._report.send(Report("drained"))
        if orphaned:
            os.kill(os.getpid(), signal.SIGTERM)  # Envoy's own stop: lifespan shutdown follows

    async def drain(self) -> None:
        """Health NOT_SERVING, new calls refused, the service drains, in-flight calls finish."""
        if self._draining:
            return
        self._draining = True
        budget = self.settings.shutdown_timeout.total_seconds()
        in_flight = self._front.in_flight if self._front is not None else 0
        _log.info(
            f"{self.service.name} stopping",
            extra={"shutdown_timeout_s": budget, "in_flight": in_flight},
        )
        self.health.enter_graceful_shutdown()
        if self._front is not None:
            self._front.begin_drain()
        await bounded_close("service drain", self.service.drain, budget)
        if self._front is not None and not await self._front.wait_idle(budget):
            _log.warning(
                "calls still in flight at the end of the shutdown budget",
                extra={"in_flight": self._front.in_flight, "shutdown_timeout_s": budget},
            )

    async def _close(self) -> None:
        self._draining = True
        self.health.close()
        budget = self.settings.shutdown_timeout.total_seconds()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=budget)
        await self._resources.aclose()
        provider, self._tracer_provider = self._tracer_provider, None
        if provider is not None:
            await bounded_close(
                "tracer provider", lambda: asyncio.to_thread(_flush, provider, budget), budget
            )


def _is_stream(endpoint: Endpoint[Any, Any]) -> bool:
    return endpoint.method.stream_type is not StreamType.UNARY


def _flush(provider: TracerProvider, budget: float) -> None:
    provider.force_flush(timeout_millis=int(budget * 1000))
    provider.shutdown()


class LazyApp:
    """The module-level ASGI app pyvoy imports: built from the environment at first use.

    Importing the module (tests, type checks) reads no configuration; Envoy's
    first event (``lifespan.startup``) builds the runtime.
    """

    def __init__(self, build: Callable[[], ServiceRuntime]) -> None:
        self._build = build
        self._runtime: ServiceRuntime | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._runtime is None:
            self._runtime = self._build()
        await self._runtime(scope, receive, send)
