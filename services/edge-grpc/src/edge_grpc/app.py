"""Wiring and lifecycle of edge-grpc: Redis, the session stream, the pipeline, gRPC, admin.

Start-up (``EdgeGrpcApp.start``) refuses to continue, with one clear reason
(``StartupError``), when the backend secret is unusable, Redis does not
answer a bounded PING, a listener cannot bind, or routes are wired twice.
The response-signer key is loaded by the caller (``__main__``) so its error
is the key loader's own message.

Health (``grpc.health.v1``): NOT_SERVING until Redis answered PING and the
session-events reader is connected, then SERVING, re-checked every
``HEALTH_INTERVAL``; NOT_SERVING for good once shutdown begins.

Shutdown (``EdgeGrpcApp.stop``), each step bounded by
``GATEWAY_SHUTDOWN_TIMEOUT``: health NOT_SERVING, gRPC graceful stop
(in-flight calls finish, new ones are refused), the stream reader, the
admin listener, the backend client, Redis, the tracer provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping, MutableMapping
from datetime import timedelta
from typing import Any, Final

import grpc
import grpc.aio
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_health.v1._async import HealthServicer  # type: ignore[import-untyped]
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from edge_grpc.live_routes import LiveRouter, RouteTableFollower
from edge_grpc.passthrough import PassthroughClient, new_passthrough_http_client
from edge_grpc.replay import RespReplayStore
from edge_grpc.responses import ResponseSigner
from edge_grpc.routing import CompositeRouter, DownstreamExecutor
from edge_grpc.servicer import EdgeGatewayServicer
from edgecore.backend.client import BackendClient, build_backend_client
from edgecore.backend.commands import BackendRouter
from edgecore.catalog import MESSAGE_TYPES
from edgecore.config import EdgeGrpcSettings, HostPort
from edgecore.downstream import DownstreamClient
from edgecore.fbjson import default_codec
from edgecore.internal_auth import HmacSecretError
from edgecore.pipeline import VerificationPipeline
from edgecore.pipeline.audit import AuthenticatedTelemetry
from edgecore.ratelimit import TokenBucketLimiter
from edgecore.redis_client import RedisStartupError, create_redis, ping_or_raise
from edgecore.routes import (
    PassthroughRoute,
    RouteTableKey,
    RouteTableKeyError,
    RouteTableReader,
    load_route_table_key,
)
from edgecore.session_cache import InProcessSessionCache
from edgecore.session_events import SessionEventsHandler
from edgecore.signing import Signer
from edgecore.stream_reader import StreamTailer
from edgecore.telemetry import AdminServer, MetricsRegistry, configure_tracing
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

__all__ = [
    "EDGE_GATEWAY_SERVICE",
    "HEALTH_INTERVAL",
    "EdgeGrpcApp",
    "StartupError",
    "default_sampler_without_exporter",
    "drop_reason_label",
    "grpc_bind_address",
    "traced",
]

_log = logging.getLogger("edge_grpc")

EDGE_GATEWAY_SERVICE: Final = "galaxy.gateway.v1.EdgeGateway"
HEALTH_INTERVAL: Final = timedelta(seconds=1)
SESSION_EVENTS_LABEL: Final = "session_events"
# XREAD BLOCK time of the session-events reader (the socket timeout widens by as much).
_STREAM_BLOCK: Final = timedelta(seconds=5)
_SERVING: Final = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING: Final = health_pb2.HealthCheckResponse.NOT_SERVING


class StartupError(Exception):
    """The service must not start; the message is one line, safe to print (no secrets)."""


_HEALTH_PREFIX: Final = "/grpc.health.v1.Health/"


def traced(handler_call_details: Any) -> bool:
    """OTel filter: every RPC but health checks. (The library's ``filters.health_check``
    does typing.Protocol isinstance checks per call, a measurable cost on the hot path.)"""
    method = handler_call_details.method
    if isinstance(method, bytes):
        return not method.startswith(_HEALTH_PREFIX.encode())
    return not method.startswith(_HEALTH_PREFIX)


NO_EXPORTER_SAMPLER: Final = "parentbased_always_off"


def default_sampler_without_exporter(exporter: str, environ: MutableMapping[str, str]) -> None:
    """With no trace exporter, sample only what a sampled caller asks for.

    OTEL_TRACES_EXPORTER unset/none keeps the tracing runtime enabled (spans,
    trace ids and context propagation work) but nothing can read a recorded
    span, and recording one costs ~40 us per request. So unless the operator
    chose OTEL_TRACES_SAMPLER, spans are recorded only under a sampled parent.
    The SDK reads the variable when configure_tracing builds the provider.
    """
    if exporter == "none":
        environ.setdefault("OTEL_TRACES_SAMPLER", NO_EXPORTER_SAMPLER)


def grpc_bind_address(addr: HostPort) -> str:
    """``:9090`` -> ``[::]:9090`` (every interface, as Go's net.Listen); v6 hosts bracketed."""
    host = addr.host or "[::]"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{addr.port}"


_DROP_REASONS: Final = (
    ("missing or unsupported entry version", "unsupported_version"),
    ("unknown session event kind", "unknown_kind"),
    ("unknown field", "unknown_field"),
    ("missing field", "missing_field"),
    ("session record", "invalid_record"),
)


def drop_reason_label(reason: str) -> str:
    """A bounded metric label for a malformed-entry reason (the reason text may name fields)."""
    for prefix, label in _DROP_REASONS:
        if reason.startswith(prefix):
            return label
    return "malformed"


class EdgeGrpcApp:
    """One edge-grpc process: ``await start()``, serve, ``await stop()``."""

    def __init__(
        self,
        settings: EdgeGrpcSettings,
        *,
        signer: Signer,
        extra_routes: Mapping[str, DownstreamClient] | None = None,
    ) -> None:
        self.settings = settings
        self._signer = signer
        self._extra_routes = dict(extra_routes or {})
        self.metrics = MetricsRegistry()
        self.port: int | None = None
        self.health = HealthServicer()
        self.router = CompositeRouter()
        # Built-in routes first, then the live passthrough table (docs/routes.md).
        self.live_router = LiveRouter(
            self.router,
            self._passthrough_client,
            timeout_ceiling=settings.grpc.downstream_timeout,
        )
        self.route_follower: RouteTableFollower | None = None
        self._route_key: RouteTableKey | None = None
        self._passthrough_http: httpx.AsyncClient | None = None
        self._server: Any = None
        self._admin: AdminServer | None = None
        self._backend: BackendClient | None = None
        self._redis: Redis | None = None
        self._stream_redis: Redis | None = None
        self._tailer: StreamTailer | None = None
        self._tracer_provider: TracerProvider | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.session_cache: InProcessSessionCache | None = None
        self.replay: RespReplayStore | None = None

    @property
    def admin_port(self) -> int | None:
        return self._admin.port if self._admin is not None else None

    # ---------------------------------------------------------------- start-up

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self._close_resources()
            raise

    async def _start(self) -> None:
        # Until Redis and the stream reader are confirmed, nobody should route traffic here.
        await self.health.set("", _NOT_SERVING)
        await self.health.set(EDGE_GATEWAY_SERVICE, _NOT_SERVING)
        await self._connect_dependencies()
        default_sampler_without_exporter(self.settings.telemetry.traces_exporter, os.environ)
        self._tracer_provider = configure_tracing(self.settings.telemetry, "edge-grpc")
        servicer = self._build_servicer()
        await self._start_routes()
        address = await self._listen(servicer)
        await self._start_admin()
        self._spawn(self._follow_health(), "health")
        admin = self.settings.admin.addr
        _log.info(
            "edge-grpc started",
            extra={
                "grpc_addr": f"{address.rsplit(':', 1)[0]}:{self.port}",
                "admin_addr": f"{admin.host}:{self.admin_port}" if admin is not None else "",
                "routes": len(self.router),
                "passthrough_routes": len(self.live_router.passthrough_types),
                "route_table": "off" if self._route_key is None else "following",
                "route_table_version": self.live_router.version,
                "backend": "configured" if self._backend is not None else "unset",
            },
        )

    async def _connect_dependencies(self) -> None:
        """The backend client (its secret) and Redis (a bounded PING): refuse to start without."""
        settings = self.settings
        try:
            self._backend = build_backend_client(settings.backend)
        except HmacSecretError as exc:
            raise StartupError(str(exc)) from None
        if settings.routes.table_key_path is not None:
            try:
                self._route_key = load_route_table_key(settings.routes.table_key_path)
            except RouteTableKeyError as exc:
                raise StartupError(str(exc)) from None
        if self._backend is None:
            _log.warning(
                "GATEWAY_BACKEND_HTTP_URL is unset: user.* and lobby.* commands fail closed "
                "as downstream unavailable"
            )
        self._redis = create_redis(settings.redis)
        self._stream_redis = create_redis(settings.redis, blocking_read=_STREAM_BLOCK)
        try:
            await ping_or_raise(self._redis, settings.redis.operation_timeout)
        except RedisStartupError as exc:
            raise StartupError(
                f"Redis at {settings.redis.master_addr} (GATEWAY_REDIS_MASTER_ADDR) "
                f"is not usable: {exc}"
            ) from None

    def _build_servicer(self) -> EdgeGatewayServicer:
        """Session cache and its stream reader, replay store, pipeline, routes, signer."""
        settings = self.settings
        assert self._stream_redis is not None
        telemetry = AuthenticatedTelemetry(self.metrics, is_known_type=self.live_router.is_routed)
        drops = self.metrics.counter(
            "gateway.internal_event_drops",
            "Malformed internal stream entries that were logged and dropped.",
            ["stream", "reason"],
        )
        drops.labels(SESSION_EVENTS_LABEL, "malformed")  # the family shows up before any drop
        self.session_cache = InProcessSessionCache(
            self._backend,
            max_entries=settings.session_cache.max_entries,
            ttl=settings.session_cache.ttl,
            negative_ttl=settings.session_cache.negative_ttl,
        )
        self._tailer = StreamTailer(
            self._stream_redis,
            settings.events.session_events_stream,
            SessionEventsHandler(self.session_cache, on_drop=_count_drop(drops)),
            base_backoff=settings.events.reconnect_base_backoff,
            max_backoff=settings.events.reconnect_max_backoff,
            block_ms=int(_STREAM_BLOCK.total_seconds() * 1000),
        )
        self._spawn(self._tailer.run(), "session-events")
        self.replay = RespReplayStore(
            settings.redis,
            key_prefix=settings.replay.key_prefix,
            reserve_timeout=settings.replay.reserve_timeout,
        )
        pipeline = VerificationPipeline(
            sessions=self.session_cache,
            replay=self.replay,
            limiter=TokenBucketLimiter(),
            anti_abuse=settings.anti_abuse,
            freshness_window=settings.grpc.freshness_window,
        )
        self.router.include(BackendRouter(self._backend, default_codec()), MESSAGE_TYPES)
        for message_type, client in self._extra_routes.items():
            try:
                self.router.add(message_type, client)
            except ValueError as exc:
                raise StartupError(str(exc)) from None
        return EdgeGatewayServicer(
            pipeline=pipeline,
            executor=DownstreamExecutor(self.live_router, timeout=settings.grpc.downstream_timeout),
            signer=ResponseSigner(self._signer),
            telemetry=telemetry,
        )

    async def _start_routes(self) -> None:
        """Load the route table and follow it (only with GATEWAY_ROUTES_TABLE_KEY_PATH)."""
        if self._route_key is None:
            return  # the start-up line says route_table=off
        assert self._redis is not None and self._stream_redis is not None
        settings = self.settings
        self._passthrough_http = new_passthrough_http_client(
            client_id=settings.backend.gateway_client_id
        )
        version = self.metrics.gauge(
            "gateway.route_table_version", "Version of the route table in force (0: none)."
        )
        count = self.metrics.gauge(
            "gateway.route_table_routes", "Passthrough routes in the route table in force."
        )
        refused = self.metrics.counter(
            "gateway.route_table_refusals",
            "Route table snapshots refused (malformed, or not sealed with our key).",
            ["reason"],
        )
        version.set(0)

        def applied(table_version: int, routes: int) -> None:
            version.set(table_version)
            count.set(routes)

        self.route_follower = RouteTableFollower(
            RouteTableReader(
                self._redis, self._route_key, snapshot_key=settings.routes.snapshot_key
            ),
            self.live_router,
            stream_client=self._stream_redis,
            stream=settings.routes.events_stream,
            resync_interval=settings.routes.resync_interval,
            base_backoff=settings.events.reconnect_base_backoff,
            max_backoff=settings.events.reconnect_max_backoff,
            on_applied=applied,
            on_refused=lambda reason: refused.labels(reason).inc(),
        )
        await self.route_follower.start()
        self._spawn(self.route_follower.run(), "route-table")

    def _passthrough_client(self, route: PassthroughRoute) -> DownstreamClient:
        assert self._passthrough_http is not None
        return PassthroughClient(
            route, self._passthrough_http, key_id=self.settings.backend.gateway_client_id
        )

    async def _listen(self, servicer: EdgeGatewayServicer) -> str:
        self._server = grpc.aio.server(
            interceptors=[
                aio_server_interceptor(  # type: ignore[no-untyped-call]
                    tracer_provider=self._tracer_provider, filter_=traced
                )
            ],
            options=self._grpc_options(),
        )
        pb_grpc.add_EdgeGatewayServicer_to_server(servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        address = grpc_bind_address(self.settings.grpc.addr)
        try:
            port = self._server.add_insecure_port(address)
        except RuntimeError:
            port = 0
        if not port:
            raise StartupError(
                f"cannot listen on {address} (GATEWAY_AUTHENTICATED_GRPC_ADDR): address in use "
                "or not available"
            )
        self.port = port
        await self._server.start()
        return address

    async def _start_admin(self) -> None:
        admin = self.settings.admin
        if admin.addr is None:
            return
        self._admin = AdminServer(admin, self.metrics.render)
        try:
            await self._admin.start()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {admin.addr} (GATEWAY_ADMIN_HTTP_ADDR): "
                f"{exc.strerror or type(exc).__name__}"
            ) from None

    def _grpc_options(self) -> list[tuple[str, Any]]:
        grpc_settings = self.settings.grpc
        return [
            # Oversized requests are refused by gRPC itself (RESOURCE_EXHAUSTED) before any
            # decoding or verification work.
            ("grpc.max_receive_message_length", grpc_settings.max_message_bytes),
            (
                "grpc.server_handshake_timeout_ms",
                int(grpc_settings.connection_timeout.total_seconds() * 1000),
            ),
            # Two processes must never share a port silently.
            ("grpc.so_reuseport", 0),
        ]

    def _spawn(self, coroutine: Any, name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coroutine, name=name))

    # ---------------------------------------------------------------- health

    async def _redis_answers(self) -> bool:
        assert self._redis is not None
        try:
            async with asyncio.timeout(self.settings.redis.operation_timeout.total_seconds()):
                await self._redis.ping()
        except (TimeoutError, RedisError, OSError):
            return False
        return True

    async def _follow_health(self) -> None:
        assert self._tailer is not None
        serving: bool | None = None
        interval = HEALTH_INTERVAL.total_seconds()
        while not self._stopping:
            if serving is None:
                # Start-up: SERVING as soon as the reader is connected (PING already passed).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._tailer.connected.wait()
            healthy = self._tailer.connected.is_set() and await self._redis_answers()
            if healthy != serving and not self._stopping:
                status = _SERVING if healthy else _NOT_SERVING
                await self.health.set("", status)
                await self.health.set(EDGE_GATEWAY_SERVICE, status)
                log = _log.info if healthy else _log.warning
                log("health changed", extra={"status": "SERVING" if healthy else "NOT_SERVING"})
                serving = healthy
            await asyncio.sleep(interval)

    # ---------------------------------------------------------------- shutdown

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        budget = self.settings.shutdown.timeout.total_seconds()
        _log.info("edge-grpc stopping", extra={"shutdown_timeout_s": budget})
        await self.health.enter_graceful_shutdown()
        if self._server is not None:
            # In-flight calls get the whole budget; new calls are refused at once.
            await self._server.stop(budget)
            self._server = None
        await self._close_resources()
        _log.info("edge-grpc stopped")

    async def _close_resources(self) -> None:
        self._stopping = True
        budget = self.settings.shutdown.timeout.total_seconds()
        if self._server is not None:
            await self._server.stop(0)
            self._server = None
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=budget)
        if self.replay is not None:
            await _bounded(self.replay.aclose(), budget)
        if self._admin is not None:
            await _bounded(self._admin.close(), budget)
            self._admin = None
        if self._backend is not None:
            await _bounded(self._backend.aclose(), budget)
            self._backend = None
        if self._passthrough_http is not None:
            await _bounded(self._passthrough_http.aclose(), budget)
            self._passthrough_http = None
        for client in (self._redis, self._stream_redis):
            if client is not None:
                await _bounded(client.aclose(), budget)
        self._redis = self._stream_redis = None
        if self._tracer_provider is not None:
            provider, self._tracer_provider = self._tracer_provider, None
            await _bounded(asyncio.to_thread(_flush_and_shutdown, provider, budget), budget)


def _count_drop(counter: Counter) -> Any:
    def on_drop(stream: str, reason: str) -> None:
        counter.labels(stream, drop_reason_label(reason)).inc()

    return on_drop


def _flush_and_shutdown(provider: TracerProvider, budget: float) -> None:
    provider.force_flush(timeout_millis=int(budget * 1000))
    provider.shutdown()


async def _bounded(awaitable: Any, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await awaitable
    except TimeoutError:
        _log.warning("shutdown step timed out", extra={"timeout_s": seconds})
    except Exception as exc:
        _log.warning("shutdown step failed", extra={"error": type(exc).__name__})
