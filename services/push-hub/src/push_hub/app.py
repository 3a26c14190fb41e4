"""Wiring and lifecycle of one push-hub process.

Start-up (any failure refuses to start, with a reason safe to print):

1. the backend client (session lookups on a cache miss; none without
   GATEWAY_BACKEND_HTTP_URL, and then misses fail closed as unavailable);
2. a bounded PING of Redis (GATEWAY_REDIS_OPERATION_TIMEOUT);
3. the two stream readers (plain XREAD, each from its stream's current end);
4. the gRPC listener on GATEWAY_AUTHENTICATED_GRPC_ADDR (EdgeGateway + gRPC
   health) and the optional admin /metrics listener.

Health is SERVING once both readers are connected and Redis answers a bounded
PING, re-checked every half second (NOT_SERVING while Redis is unreachable).

Shutdown (SIGTERM/SIGINT): health goes NOT_SERVING, the PushHub closes first
(every open stream ends with UNAVAILABLE "gateway is shutting down"), then
the gRPC server stops with GATEWAY_SHUTDOWN_TIMEOUT as its grace, then the
readers, Redis clients, admin listener and tracer provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_health.v1.health import aio as health_aio  # type: ignore[import-untyped]
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.trace import TracerProvider

from edgecore.backend.client import BackendClient, build_backend_client
from edgecore.catalog import SUBSCRIBE_EVENTS_MESSAGE_TYPE
from edgecore.config import PushHubSettings
from edgecore.config.values import HostPort
from edgecore.internal_auth import HmacSecretError
from edgecore.pipeline import VerificationPipeline
from edgecore.pipeline.audit import AuthenticatedTelemetry
from edgecore.ratelimit import TokenBucketLimiter
from edgecore.redis_client import RedisStartupError, create_redis, ping_or_raise
from edgecore.replay import RedisReplayStore
from edgecore.session_cache import InProcessSessionCache
from edgecore.session_events import SessionEventsHandler
from edgecore.sessions import SessionRecord
from edgecore.signing import Signer
from edgecore.stream_reader import StreamTailer
from edgecore.telemetry import AdminServer, MetricsRegistry, configure_tracing
from push_hub.events import CLIENT_EVENTS, SESSION_EVENTS, ClientEventsHandler, EventSigner
from push_hub.gcpolicy import GcPolicy
from push_hub.hub import PushHub
from push_hub.metrics import PushMetrics
from push_hub.service import SERVICE_NAME, PushService

__all__ = ["PushHubApp", "StartupError"]

_log = logging.getLogger("push_hub")

_BLOCK: Final = timedelta(seconds=5)  # XREAD BLOCK of the stream readers
_HEALTH_POLL_S: Final = 0.5
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Long-lived streams: find dead peers, and accept clients' keepalive pings.
_GRPC_OPTIONS: Final = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.so_reuseport", 0),
)


class StartupError(Exception):
    """push-hub must not start; the message is one line, safe to print (no secrets)."""


_HEALTH_PREFIX: Final = "/grpc.health.v1.Health/"
NO_EXPORTER_SAMPLER: Final = "parentbased_always_off"


def traced(handler_call_details: Any) -> bool:
    """OTel filter: every RPC but health checks (a string prefix test, cheap per call)."""
    method = handler_call_details.method
    if isinstance(method, bytes):
        return not method.startswith(_HEALTH_PREFIX.encode())
    return not method.startswith(_HEALTH_PREFIX)


def default_sampler_without_exporter(exporter: str, environ: MutableMapping[str, str]) -> None:
    """With no trace exporter, record spans only under a sampled parent (as edge-grpc does).

    Tracing stays enabled (ids and context propagation work), but a span that
    nothing can export would cost CPU at every open and a few KiB for each
    open stream, for as long as the stream lives. An operator's own
    OTEL_TRACES_SAMPLER always wins; the SDK reads it when the provider is built.
    """
    if exporter == "none":
        environ.setdefault("OTEL_TRACES_SAMPLER", NO_EXPORTER_SAMPLER)


@dataclass
class _Readers:
    sessions: StreamTailer
    clients: StreamTailer

    @property
    def connected(self) -> bool:
        return self.sessions.connected.is_set() and self.clients.connected.is_set()


def _bind_address(addr: HostPort) -> str:
    """``:9090`` -> ``[::]:9090`` (every interface, as Go's net.Listen); v6 hosts bracketed."""
    return str(addr) if addr.host else f"[::]:{addr.port}"


class PushHubApp:
    def __init__(
        self,
        settings: PushHubSettings,
        signer: Signer,
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.settings = settings
        self._tracer_provider = tracer_provider
        self.metrics = MetricsRegistry()
        self.push_metrics = PushMetrics(self.metrics)
        self.telemetry = AuthenticatedTelemetry(
            self.metrics, is_known_type=lambda t: t == SUBSCRIBE_EVENTS_MESSAGE_TYPE
        )
        self.hub = PushHub(
            queue_capacity=settings.push.stream_queue_capacity,
            on_closed=self.push_metrics.on_closed,
            on_active=self.push_metrics.on_active,
        )
        self.signer = EventSigner(signer)
        self._backend: BackendClient | None = None
        self._ops_redis = create_redis(settings.redis)
        self._stream_redis = create_redis(settings.redis, blocking_read=_BLOCK)
        self.health = health_aio.HealthServicer()
        self.admin = AdminServer(settings.admin, self.metrics.render)
        self._server: grpc.aio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port: int | None = None

    # -- start ---------------------------------------------------------------------------------
    async def start(self) -> None:
        settings = self.settings
        try:
            self._backend = build_backend_client(settings.backend)
        except HmacSecretError as exc:  # checked before start-up too (__main__)
            raise StartupError(str(exc)) from None
        if self._backend is None:
            _log.warning(
                "GATEWAY_BACKEND_HTTP_URL is unset: sessions are known only from the "
                "session-events stream; a cache miss fails closed as unavailable"
            )
        sessions = InProcessSessionCache(
            self._backend,
            max_entries=settings.session_cache.max_entries,
            ttl=settings.session_cache.ttl,
            negative_ttl=settings.session_cache.negative_ttl,
        )
        try:
            await ping_or_raise(self._ops_redis, settings.redis.operation_timeout)
        except RedisStartupError as exc:
            raise StartupError(
                f"Redis at {settings.redis.master_addr} (GATEWAY_REDIS_MASTER_ADDR) "
                f"is not usable: {exc}"
            ) from None

        pipeline = VerificationPipeline(
            sessions=sessions,
            replay=RedisReplayStore(
                self._ops_redis,
                key_prefix=settings.replay.key_prefix,
                reserve_timeout=settings.replay.reserve_timeout,
            ),
            limiter=TokenBucketLimiter(),
            anti_abuse=settings.anti_abuse,
            freshness_window=settings.grpc.freshness_window,
        )
        readers = self._readers(sessions)
        self._tasks.append(asyncio.create_task(readers.sessions.run(), name="session-events"))
        self._tasks.append(asyncio.create_task(readers.clients.run(), name="client-events"))

        service = PushService(
            hub=self.hub,
            pipeline=pipeline,
            sessions=sessions,
            signer=self.signer,
            telemetry=self.telemetry,
        )
        server = grpc.aio.server(
            interceptors=[
                aio_server_interceptor(  # type: ignore[no-untyped-call]
                    tracer_provider=self._tracer_provider, filter_=traced
                )
            ],
            options=[
                *_GRPC_OPTIONS,
                ("grpc.max_receive_message_length", settings.grpc.max_message_bytes),
                (
                    "grpc.server_handshake_timeout_ms",
                    int(settings.grpc.connection_timeout.total_seconds() * 1000),
                ),
            ],
        )
        self._server = server  # stop() stops it, even when start-up fails below
        server.add_generic_rpc_handlers((service.rpc_handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        await self._set_health(_NOT_SERVING)
        address = _bind_address(settings.grpc.addr)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError:
            port = 0
        if not port:
            raise StartupError(
                f"cannot listen on {address} (GATEWAY_AUTHENTICATED_GRPC_ADDR): address in use "
                "or not available"
            )
        self.port = port
        await server.start()
        try:
            await self.admin.start()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {settings.admin.addr} (GATEWAY_ADMIN_HTTP_ADDR): "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        self._tasks.append(asyncio.create_task(self._follow_health(readers), name="health"))
        GcPolicy.settle()
        self._tasks.append(asyncio.create_task(GcPolicy().run(), name="gc"))
        _log.info(
            "push-hub listening",
            extra={"grpc_port": self.port, "admin_port": self.admin.port or 0,
                   "queue_capacity": self.hub.queue_capacity},
        )  # fmt: skip

    def _readers(self, sessions: InProcessSessionCache) -> _Readers:
        events = self.settings.events
        metrics = self.push_metrics

        def revoked(record: SessionRecord) -> None:
            closed = self.hub.revoke_session(record.device_session_id)
            if closed:
                _log.info(
                    "revoked session's streams closed",
                    extra={"device_session_id": record.device_session_id, "streams": closed},
                )

        def tailer(stream: str, handler: object, label: str) -> StreamTailer:
            return StreamTailer(
                self._stream_redis,
                stream,
                handler,  # type: ignore[arg-type]
                base_backoff=events.reconnect_base_backoff,
                max_backoff=events.reconnect_max_backoff,
                block_ms=int(_BLOCK.total_seconds() * 1000),
                on_reconnect=metrics.stream_reconnects.labels(label).inc,
            )

        return _Readers(
            sessions=tailer(
                events.session_events_stream,
                SessionEventsHandler(sessions, on_drop=metrics.on_drop, on_revoked=revoked),
                SESSION_EVENTS,
            ),
            clients=tailer(
                events.client_events_stream,
                ClientEventsHandler(
                    self.hub, self.signer, on_drop=metrics.on_drop,
                    on_delivered=metrics.on_delivered,
                ),
                CLIENT_EVENTS,
            ),
        )  # fmt: skip

    async def _follow_health(self, readers: _Readers) -> None:
        serving = False
        await readers.sessions.connected.wait()
        await readers.clients.connected.wait()
        while True:
            now = readers.connected and await self._redis_answers()
            if now != serving:
                serving = now
                await self._set_health(_SERVING if now else _NOT_SERVING)
                log = _log.info if now else _log.warning
                log("health changed", extra={"status": "SERVING" if now else "NOT_SERVING"})
            await asyncio.sleep(_HEALTH_POLL_S)

    async def _redis_answers(self) -> bool:
        """A bounded PING: the readers alone may look connected between two failed reads."""
        try:
            await ping_or_raise(self._ops_redis, self.settings.redis.operation_timeout)
        except RedisStartupError:
            return False
        return True

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        await self.health.set("", status)
        await self.health.set(SERVICE_NAME, status)

    # -- stop ----------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Close the hub first, then the server (bounded), then everything else."""
        timeout = self.settings.shutdown.timeout.total_seconds()
        for task in self._tasks[2:]:
            task.cancel()  # the health follower: nothing may flip it back to SERVING
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        closed = self.hub.close()
        if self._server is not None:
            _log.info("shutting down", extra={"open_streams": closed})
            await self._server.stop(grace=timeout)
            self._server = None
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                await self.admin.close()
                await self._ops_redis.aclose()
                await self._stream_redis.aclose()
                if self._backend is not None:
                    await self._backend.aclose()
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()


async def run(settings: PushHubSettings, signer: Signer, stop: asyncio.Event) -> int:
    """Start, serve until ``stop`` is set, shut down. Returns the process exit code."""
    default_sampler_without_exporter(settings.telemetry.traces_exporter, os.environ)
    provider = configure_tracing(settings.telemetry, "push-hub")
    app = PushHubApp(settings, signer, tracer_provider=provider)
    try:
        await app.start()
    except StartupError:
        await app.stop()
        raise
    await stop.wait()
    await app.stop()
    _log.info("push-hub stopped")
    return 0
