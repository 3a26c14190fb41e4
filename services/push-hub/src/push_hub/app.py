"""Wiring of one push-hub process; the shared runtime (``edgecore.rpc``) serves it.

``PushHubApp`` is the ``RpcService``: the runtime owns the port (Connect,
gRPC, gRPC-Web), health, the admin listener, telemetry and the graceful stop.
Start-up (any failure refuses to start, with a reason safe to print):

1. the backend client (session lookups on a cache miss; none without
   GATEWAY_BACKEND_HTTP_URL, and then misses fail closed as unavailable);
2. a bounded PING of Redis (GATEWAY_REDIS_OPERATION_TIMEOUT);
3. the session-events reader (plain XREAD from the stream's current end), the
   per-user event feeds (``UserFeeds``: pub/sub for the users this replica
   holds, caught up from their histories) and, unless disabled, the bridge
   that moves entries of the single client-events stream into those
   histories (``LegacyStreamBridge``).

Ready (health SERVING) once all of them are connected and Redis answers a
bounded PING, re-checked every half second.

Drain (SIGTERM/SIGINT to the launcher): the PushHub closes, so every open
stream ends with UNAVAILABLE "gateway is shutting down"; then the readers,
Redis clients and backend client close from the runtime's exit stack.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any, Final

from connectrpc.server import Endpoint

from edgecore.backend.client import build_backend_client
from edgecore.catalog import SUBSCRIBE_EVENTS_MESSAGE_TYPE
from edgecore.config import PushHubSettings
from edgecore.event_history import EventKeys, HistoryStore
from edgecore.internal_auth import HmacSecretError
from edgecore.pipeline import VerificationPipeline
from edgecore.pipeline.audit import AuthenticatedTelemetry
from edgecore.ratelimit import TokenBucketLimiter
from edgecore.redis_client import RedisStartupError, create_redis, ping_or_raise
from edgecore.replay import RedisReplayStore, ReplayStoreUnavailableError, seed_replay_epoch
from edgecore.rpc.runtime import RuntimeSettings, StartupError, bounded_close
from edgecore.session_cache import InProcessSessionCache
from edgecore.session_events import SessionEventsHandler
from edgecore.sessions import SessionRecord
from edgecore.signing import Signer
from edgecore.stream_reader import StreamTailer
from edgecore.telemetry import MetricsRegistry
from push_hub.bridge import LegacyStreamBridge
from push_hub.events import (
    CLIENT_EVENTS,
    CLIENT_EVENTS_BRIDGE,
    SESSION_EVENTS,
    ClientEventsHandler,
    EventSigner,
)
from push_hub.feeds import UserFeeds
from push_hub.gcpolicy import GcPolicy
from push_hub.hub import Closure, PushHub
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
        self._pubsub_redis = create_redis(settings.redis, blocking_read=_BLOCK)
        self.history = HistoryStore(self._ops_redis, EventKeys(settings.events.events_key_prefix))
        self.events = ClientEventsHandler(
            self.hub,
            self.signer,
            epoch=lambda: self.feeds.epoch,
            on_drop=self.push_metrics.on_drop,
            on_delivered=self.push_metrics.on_delivered,
        )
        self.feeds = self._make_feeds()
        self._readers: tuple[StreamTailer, ...] = ()
        self._bridge: LegacyStreamBridge | None = None
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
        closing("redis (pub/sub)", self._pubsub_redis.aclose)
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
            # The replay floor exists before the first reservation, so only a loss moves it.
            await seed_replay_epoch(
                self._ops_redis,
                key_prefix=settings.replay.key_prefix,
                operation_timeout=settings.redis.operation_timeout,
                startup=True,
            )
        except (RedisStartupError, ReplayStoreUnavailableError) as exc:
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
        self._readers = (self._session_reader(sessions),)
        GcPolicy.settle()
        tasks = [
            asyncio.create_task(self._readers[0].run(), name="session-events"),
            asyncio.create_task(self.feeds.run(), name="event-feeds"),
            asyncio.create_task(GcPolicy().run(), name="gc"),
        ]
        if settings.events.client_events_bridge:
            self._bridge = self._make_bridge()
            tasks.append(asyncio.create_task(self._bridge.run(), name="client-events-bridge"))

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
            feeds=self.feeds,
            history=self.history,
            events=self.events,
            history_ttl_ms=int(settings.events.history_ttl.total_seconds() * 1000),
        )
        _log.info(
            "push-hub started",
            extra={"grpc_addr": str(settings.grpc.addr),
                   "admin_addr": str(settings.admin.addr) if settings.admin.addr else "",
                   "queue_capacity": self.hub.queue_capacity,
                   "cors_origins": len(settings.grpc.cors_allowed_origins)},
        )  # fmt: skip

    async def ready(self) -> bool:
        """Every reader connected and a bounded PING answered (the readers alone may look
        connected between two failed reads)."""
        connected = [r.connected for r in self._readers] + [self.feeds.connected]
        if self._bridge is not None:
            connected.append(self._bridge.connected)
        if not self._readers or not all(flag.is_set() for flag in connected):
            return False
        settings = self.settings
        try:
            await ping_or_raise(self._ops_redis, settings.redis.operation_timeout)
            # Notices a Redis that lost its data before the next reservation does.
            await seed_replay_epoch(
                self._ops_redis,
                key_prefix=settings.replay.key_prefix,
                operation_timeout=settings.redis.operation_timeout,
            )
        except (RedisStartupError, ReplayStoreUnavailableError):
            return False
        return True

    async def drain(self) -> None:
        """Every open stream ends with UNAVAILABLE "gateway is shutting down"."""
        closed = self.hub.close()
        _log.info("shutting down", extra={"open_streams": closed})

    def _session_reader(self, sessions: InProcessSessionCache) -> StreamTailer:
        events = self.settings.events

        def revoked(record: SessionRecord) -> None:
            closed = self.hub.revoke_session(record.device_session_id)
            if closed:
                _log.info(
                    "revoked session's streams closed",
                    extra={"device_session_id": record.device_session_id, "streams": closed},
                )

        return StreamTailer(
            self._stream_redis,
            events.session_events_stream,
            SessionEventsHandler(sessions, on_drop=self.push_metrics.on_drop, on_revoked=revoked),
            base_backoff=events.reader_base_backoff,
            max_backoff=events.reader_max_backoff,
            block_ms=int(_BLOCK.total_seconds() * 1000),
            on_reconnect=self.push_metrics.stream_reconnects.labels(SESSION_EVENTS).inc,
        )

    def _make_feeds(self) -> UserFeeds:
        events = self.settings.events

        def gone(user_id: str | None) -> None:
            if user_id is None:
                closed = self.hub.end_all(Closure.HISTORY_GONE)
            else:
                streams = self.hub.streams_of_user(user_id)
                for stream in streams:
                    self.hub.end(stream, Closure.HISTORY_GONE)
                closed = len(streams)
            _log.warning("streams ended: their event history is gone", extra={"streams": closed})

        return UserFeeds(
            self._pubsub_redis,
            HistoryStore(self._pubsub_redis, self.history.keys),
            self.events,
            ttl_ms=int(events.history_ttl.total_seconds() * 1000),
            max_events=events.history_max_events,
            base_backoff=events.reader_base_backoff,
            max_backoff=events.reader_max_backoff,
            on_gone=gone,
            on_received=self.push_metrics.on_received,
            on_reconnect=self.push_metrics.stream_reconnects.labels(CLIENT_EVENTS).inc,
        )

    def _make_bridge(self) -> LegacyStreamBridge:
        events = self.settings.events
        return LegacyStreamBridge(
            self._stream_redis,
            self.history,
            events.client_events_stream,
            consumer=f"{socket.gethostname()}-{os.getpid()}",
            base_backoff=events.reader_base_backoff,
            max_backoff=events.reader_max_backoff,
            block_ms=int(_BLOCK.total_seconds() * 1000),
            on_drop=self.push_metrics.on_drop,
            on_reconnect=self.push_metrics.stream_reconnects.labels(CLIENT_EVENTS_BRIDGE).inc,
        )
