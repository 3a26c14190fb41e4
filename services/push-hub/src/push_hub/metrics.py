"""push-hub's metric families (exposed on the private admin /metrics listener)."""

from __future__ import annotations

from edgecore.stream_drops import drop_reason
from edgecore.telemetry import MetricsRegistry
from push_hub.events import CLIENT_EVENTS, CLIENT_EVENTS_BRIDGE, SESSION_EVENTS
from push_hub.hub import Closure, PushStream

__all__ = ["PushMetrics"]


class PushMetrics:
    def __init__(self, metrics: MetricsRegistry) -> None:
        self.active_streams = metrics.gauge(
            "gateway.push.active_streams", "SubscribeEvents streams registered in the PushHub."
        )
        self.stream_closures = metrics.counter(
            "gateway.push.stream_closures",
            "SubscribeEvents streams that ended, by reason.",
            ["reason"],
        )
        self.internal_event_drops = metrics.counter(
            "gateway.internal_event_drops",
            "Malformed internal stream entries that were logged and dropped.",
            ["stream", "reason"],
        )
        self.deliveries = metrics.counter(
            "gateway.push.deliveries",
            "Signed client events enqueued on SubscribeEvents streams (one per stream).",
        )
        self.stream_reconnects = metrics.counter(
            "gateway.push.stream_reader_reconnects",
            "Redis Stream readers that resumed after a Redis error.",
            ["stream"],
        )
        self.events_received = metrics.counter(
            "gateway.push.events_received",
            "Client events this replica read for the users it holds: live (pub/sub) or "
            "caught up from their histories after a reconnect.",
            ["source"],
        )
        # Every label value exists from the start, so dashboards and tests see zeros.
        for closure in Closure:
            self.stream_closures.labels(closure.value)
        for stream in (CLIENT_EVENTS, SESSION_EVENTS, CLIENT_EVENTS_BRIDGE):
            self.stream_reconnects.labels(stream)
        for source in ("live", "catch_up"):
            self.events_received.labels(source)

    def on_active(self, value: int) -> None:
        self.active_streams.set(value)

    def on_closed(self, stream: PushStream, closure: Closure) -> None:
        self.stream_closures.labels(closure.value).inc()

    def on_drop(self, stream: str, reason: str) -> None:
        self.internal_event_drops.labels(stream, drop_reason(reason)).inc()

    def on_received(self, source: str) -> None:
        self.events_received.labels(source).inc()

    def on_delivered(self, count: int) -> None:
        if count:
            self.deliveries.inc(count)
