"""Wiring of edge-grpc: Redis, the session stream, the pipeline, routes, the signer.

``EdgeGrpcApp`` is the ``RpcService`` the shared runtime (``edgecore.rpc``)
serves: the runtime owns the port (Connect, gRPC, gRPC-Web), health, the
admin listener, telemetry and the graceful stop. Start-up refuses to
continue, with one clear reason (``StartupError``), when the backend secret
is unusable, Redis does not answer a bounded PING, or routes are wired twice.
The response-signer key is loaded by the caller so its error is the key
loader's own message.

Ready (health SERVING) once Redis answers PING and the session-events reader
is connected; re-checked every ``HEALTH_INTERVAL``. Every resource is closed
on the runtime's exit stack in reverse order of opening, each step bounded by
``GATEWAY_SHUTDOWN_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any, Final

import httpx
from connectrpc.server import Endpoint
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
from edgecore.config import EdgeGrpcSettings
from edgecore.downstream import DownstreamClient
from edgecore.fbjson import default_codec
from edgecore.internal_auth import HmacSecretError
from edgecore.pipeline import VerificationPipeline
from edgecore.pipeline.audit import AuthenticatedTelemetry
from edgecore.ratelimit import TokenBucketLimiter
from edgecore.redis_client import RedisStartupError, create_redis, ping_or_raise
from edgecore.replay import ReplayStoreUnavailableError, seed_replay_epoch
from edgecore.routes import (
    PassthroughRoute,
    RouteTableKey,
    RouteTableKeyError,
    RouteTableReader,
    load_route_table_key,
)
from edgecore.rpc.runtime import RuntimeSettings, StartupError, bounded_close
from edgecore.session_cache import InProcessSessionCache
from edgecore.session_events import SessionEventsHandler
from edgecore.signing import Signer
from edgecore.stream_drops import drop_reason
from edgecore.stream_reader import StreamTailer
from edgecore.telemetry import MetricsRegistry

__all__ = [
    "HEALTH_INTERVAL",
    "SERVICE",
    "EdgeGrpcApp",
    "StartupError",
    "runtime_settings",
]

_log = logging.getLogger("edge_grpc")

SERVICE: Final = "edge-grpc"
HEALTH_INTERVAL: Final = timedelta(seconds=1)
SESSION_EVENTS_LABEL: Final = "session_events"
# XREAD BLOCK time of the session-events reader (the socket timeout widens by as much).
_STREAM_BLOCK: Final = timedelta(seconds=5)


def runtime_settings(settings: EdgeGrpcSettings) -> RuntimeSettings:
    return RuntimeSettings.of(settings, health_interval=HEALTH_INTERVAL)


class EdgeGrpcApp:
    """edge-grpc's part of one process; ``edgecore.rpc.runtime.ServiceRuntime`` serves it."""

    name = SERVICE

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
        self._backend: BackendClient | None = None
        self._redis: Redis | None = None
        self._stream_redis: Redis | None = None
        self._tailer: StreamTailer | None = None
        self._servicer: EdgeGatewayServicer | None = None
        self.session_cache: InProcessSessionCache | None = None
        self.replay: RespReplayStore | None = None

    # ---------------------------------------------------------------- RpcService

    def endpoints(self) -> dict[str, Endpoint[Any, Any]]:
        assert self._servicer is not None, "start() first"
        return self._servicer.endpoints()

    async def start(self, resources: AsyncExitStack) -> None:
        budget = self.settings.shutdown.timeout.total_seconds()

        def closing(step: str, close: Any) -> None:
            resources.push_async_callback(bounded_close, step, close, budget)

        tasks: list[asyncio.Task[None]] = []

        async def stop_tasks() -> None:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)

        await self._connect_dependencies(closing)
        self._servicer = self._build_servicer(tasks, closing)
        closing("background tasks", stop_tasks)  # closed first: nothing reads Redis after
        await self._start_routes(tasks, closing)
        settings = self.settings
        _log.info(
            "edge-grpc started",
            extra={
                "grpc_addr": str(settings.grpc.addr),
                "admin_addr": str(settings.admin.addr) if settings.admin.addr else "",
                "routes": len(self.router),
                "passthrough_routes": len(self.live_router.passthrough_types),
                "route_table": "off" if self._route_key is None else "following",
                "route_table_version": self.live_router.version,
                "backend": "configured" if self._backend is not None else "unset",
                "cors_origins": len(settings.grpc.cors_allowed_origins),
            },
        )

    async def ready(self) -> bool:
        if self._tailer is None or not self._tailer.connected.is_set():
            return False
        assert self._redis is not None
        redis_settings = self.settings.redis
        try:
            async with asyncio.timeout(redis_settings.operation_timeout.total_seconds()):
                await self._redis.ping()
            # Notices a Redis that lost its data before the next reservation does.
            await seed_replay_epoch(
                self._redis,
                key_prefix=self.settings.replay.key_prefix,
                operation_timeout=redis_settings.operation_timeout,
            )
        except (TimeoutError, RedisError, OSError, ReplayStoreUnavailableError):
            return False
        return True

    async def drain(self) -> None:
        """Nothing of its own: unary calls in flight are waited for by the runtime."""

    # ---------------------------------------------------------------- start-up

    async def _connect_dependencies(self, closing: Any) -> None:
        """The backend client (its secret) and Redis (a bounded PING): refuse to start without."""
        settings = self.settings
        try:
            self._backend = build_backend_client(settings.backend)
        except HmacSecretError as exc:
            raise StartupError(str(exc)) from None
        if self._backend is not None:
            closing("backend client", self._backend.aclose)
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
        closing("redis", self._redis.aclose)
        try:
            await ping_or_raise(self._redis, settings.redis.operation_timeout)
            # The replay floor exists before the first reservation, so only a loss moves it.
            await seed_replay_epoch(
                self._redis,
                key_prefix=settings.replay.key_prefix,
                operation_timeout=settings.redis.operation_timeout,
                startup=True,
            )
        except (RedisStartupError, ReplayStoreUnavailableError) as exc:
            raise StartupError(
                f"Redis at {settings.redis.master_addr} (GATEWAY_REDIS_MASTER_ADDR) "
                f"is not usable: {exc}"
            ) from None

    def _build_servicer(self, tasks: list[asyncio.Task[None]], closing: Any) -> EdgeGatewayServicer:
        """Session cache and its stream reader, replay store, pipeline, routes, signer."""
        settings = self.settings
        stream_redis = create_redis(settings.redis, blocking_read=_STREAM_BLOCK)
        closing("redis (streams)", stream_redis.aclose)
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
            stream_redis,
            settings.events.session_events_stream,
            SessionEventsHandler(self.session_cache, on_drop=_count_drop(drops)),
            base_backoff=settings.events.reader_base_backoff,
            max_backoff=settings.events.reader_max_backoff,
            block_ms=int(_STREAM_BLOCK.total_seconds() * 1000),
        )
        tasks.append(asyncio.create_task(self._tailer.run(), name="session-events"))
        self._stream_redis = stream_redis
        self.replay = RespReplayStore(
            settings.redis,
            key_prefix=settings.replay.key_prefix,
            reserve_timeout=settings.replay.reserve_timeout,
        )
        closing("replay store", self.replay.aclose)
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

    async def _start_routes(self, tasks: list[asyncio.Task[None]], closing: Any) -> None:
        """Load the route table and follow it (only with GATEWAY_ROUTES_TABLE_KEY_PATH)."""
        if self._route_key is None:
            return  # the start-up line says route_table=off
        assert self._redis is not None and self._stream_redis is not None
        settings = self.settings
        self._passthrough_http = new_passthrough_http_client(
            client_id=settings.backend.gateway_client_id
        )
        closing("passthrough http client", self._passthrough_http.aclose)
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
            base_backoff=settings.events.reader_base_backoff,
            max_backoff=settings.events.reader_max_backoff,
            on_applied=applied,
            on_refused=lambda reason: refused.labels(reason).inc(),
        )
        await self.route_follower.start()
        tasks.append(asyncio.create_task(self.route_follower.run(), name="route-table"))

    def _passthrough_client(self, route: PassthroughRoute) -> DownstreamClient:
        assert self._passthrough_http is not None
        return PassthroughClient(
            route, self._passthrough_http, key_id=self.settings.backend.gateway_client_id
        )


def _count_drop(counter: Counter) -> Any:
    def on_drop(stream: str, reason: str) -> None:
        counter.labels(stream, drop_reason(reason)).inc()

    return on_drop
