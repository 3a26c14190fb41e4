"""Wiring of one push-hub process; the shared runtime (``edgecore.rpc``) serves it.

``PushHubApp`` is the ``RpcService``: the runtime owns the port (Connect,
gRPC, gRPC-Web), health, the admin listener, telemetry and the graceful stop.
Start-up (any failure refuses to start, with a reason safe to print):

1. the backend client (session lookups on a cache miss; none without
   GATEWAY_BACKEND_HTTP_URL, and then misses fail closed as unavailable);
2. a bounded PING of Redis (GATEWAY_REDIS_OPERATION_TIMEOUT);
3. the two stream readers (plain XREAD, each from its stream's current end).

Ready (health SERVING) once both readers are connected and Redis answers a
bounded PING, re-checked every half second.

Drain (SIGTERM/SIGINT to the launcher): the PushHub closes, so every open
stream ends with UNAVAILABLE "gateway is shutting down"; then the readers,
Redis clients and backend client close from the runtime's exit stack.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any, Final

from connectrpc.server import Endpoint

from edgecore.backend.client import build_backend_client
from edgecore.catalog import SUBSCRIBE_EVENTS_MESSAGE_TYPE
from edgecore.config import PushHubSettings
from edgecore.internal_auth import HmacSecretError
from edgecore.pipeline import VerificationPipeline
from edgecore.pipeline.audit import AuthenticatedTelemetry
from edgecore.ratelimit import TokenBucketLimiter
from edgecore.redis_client import RedisStartupError, create_redis, ping_or_raise
from edgecore.replay import RedisReplayStore
from edgecore.rpc.runtime import RuntimeSettings, StartupError, bounded_close
from edgecore.session_cache import InProcessSessionCache
from edgecore.session_events import SessionEventsHandler
from edgecore.sessions import SessionRecord
from edgecore.signing import Signer
from edgecore.stream_reader import StreamTailer
from edgecore.telemetry import MetricsRegistry
from push_hub.events import CLIENT_EVENTS, SESSION_EVENTS, ClientEventsHandler, EventSigner
from push_hub.gcpolicy import GcPolicy
from push_hub.hub import PushHub
from push_hub.metrics import PushMetrics
from push_hub.service import PushService

__all__ = ["SERVICE", "PushHubApp", "StartupError", "runtime_settings"]

_log = logging.getLogger("push_hub")

SERVICE: Final = "push-hub"
HEALTH_INTERVAL: Final = timedelta(seconds=0.5)
_BLOCK: Final = timedelta(seconds=5)  # XREAD BLOCK of the stream readers


def runtime_settings(settings: PushHubSettings) -> RuntimeSettings:
    return RuntimeSettings.of(settings, health_interval=HEALTH_INTERVAL)


class PushHubApp:
    name = SERVICE

    def __init__(self, settings: PushHubSettings, signer: Signer) -> None:
        self.settings = settings
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
        self._ops_redis = create_redis(settings.redis)
        self._stream_redis = create_redis(settings.redis, blocking_read=_BLOCK)
        self._readers: tuple[StreamTailer, StreamTailer] | None = None
        self._service: PushService | None = None

    # -- RpcService ------------------------------------------------------------------------------
    def endpoints(self) -> dict[str, Endpoint[Any, Any]]:
        assert self._service is not None, "start() first"
        return self._service.endpoints()

    async def start(self, resources: AsyncExitStack) -> None:
        settings = self.settings
        budget = settings.shutdown.timeout.total_seconds()

        def closing(step: str, close: Any) -> None:
            resources.push_async_callback(bounded_close, step, close, budget)

        closing("redis", self._ops_redis.aclose)
        closing("redis (streams)", self._stream_redis.aclose)
        try:
            backend = build_backend_client(settings.backend)
        except HmacSecretError as exc:  # checked before start-up too (__main__)
            raise StartupError(str(exc)) from None
        if backend is None:
            _log.warning(
                "GATEWAY_BACKEND_HTTP_URL is unset: sessions are known only from the "
                "session-events stream; a cache miss fails closed as unavailable"
            )
        else:
            closing("backend client", backend.aclose)
        sessions = InProcessSessionCache(
            backend,
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
        self._readers = self._make_readers(sessions)
        GcPolicy.settle()
        tasks = [
            asyncio.create_task(self._readers[0].run(), name="session-events"),
            asyncio.create_task(self._readers[1].run(), name="client-events"),
            asyncio.create_task(GcPolicy().run(), name="gc"),
        ]

        async def stop_tasks() -> None:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)

        closing("background tasks", stop_tasks)
        self._service = PushService(
            hub=self.hub,
            pipeline=pipeline,
            sessions=sessions,
            signer=self.signer,
            telemetry=self.telemetry,
        )
        _log.info(
            "push-hub started",
            extra={"grpc_addr": str(settings.grpc.addr),
                   "admin_addr": str(settings.admin.addr) if settings.admin.addr else "",
                   "queue_capacity": self.hub.queue_capacity,
                   "cors_origins": len(settings.grpc.cors_allowed_origins)},
        )  # fmt: skip

    async def ready(self) -> bool:
        """Both readers connected and a bounded PING answered (the readers alone may look
        connected between two failed reads)."""
        if self._readers is None or not all(r.connected.is_set() for r in self._readers):
            return False
        try:
            await ping_or_raise(self._ops_redis, self.settings.redis.operation_timeout)
        except RedisStartupError:
            return False
        return True

    async def drain(self) -> None:
        """Every open stream ends with UNAVAILABLE "gateway is shutting down"."""
        closed = self.hub.close()
        _log.info("shutting down", extra={"open_streams": closed})

    def _make_readers(self, sessions: InProcessSessionCache) -> tuple[StreamTailer, StreamTailer]:
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
                base_backoff=events.reader_base_backoff,
                max_backoff=events.reader_max_backoff,
                block_ms=int(_BLOCK.total_seconds() * 1000),
                on_reconnect=metrics.stream_reconnects.labels(label).inc,
            )

        return (
            tailer(
                events.session_events_stream,
                SessionEventsHandler(sessions, on_drop=metrics.on_drop, on_revoked=revoked),
                SESSION_EVENTS,
            ),
            tailer(
                events.client_events_stream,
                ClientEventsHandler(
                    self.hub, self.signer, on_drop=metrics.on_drop,
                    on_delivered=metrics.on_delivered,
                ),
                CLIENT_EVENTS,
            ),
        )  # fmt: skip
