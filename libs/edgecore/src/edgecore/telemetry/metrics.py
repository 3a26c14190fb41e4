"""Prometheus metrics of one service process, served on the private admin listener.

The specification's metric families (``gateway.authenticated_grpc.requests``,
``gateway.push.active_streams``, ...) are registered with prometheus_client
directly and exposed in the Prometheus text format, where dots become
underscores (``gateway_authenticated_grpc_requests_total``). The Go gateway
routes them through the OpenTelemetry SDK's Prometheus reader; this project
uses prometheus_client alone because the exposition is identical and it
gives each runtime its own registry (tests run several services in one
interpreter). Traces still go through OpenTelemetry (``tracing.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["DURATION_BUCKETS", "MetricsRegistry", "prometheus_name"]

DURATION_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def prometheus_name(name: str) -> str:
    """``gateway.push.active_streams`` -> ``gateway_push_active_streams``."""
    return name.replace(".", "_")


class MetricsRegistry:
    """One registry per process; ``render()`` is the body of ``GET /metrics``."""

    def __init__(self) -> None:
        # `_created` companion series double the scrape size and nobody graphs them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(prometheus_name(name), documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(prometheus_name(name), documentation, labels, registry=self.registry)

    def histogram(
        self, name: str, documentation: str, labels: Sequence[str] = (), unit: str = "seconds"
    ) -> Histogram:
        return Histogram(
            prometheus_name(name),
            documentation,
            labels,
            unit=unit,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
