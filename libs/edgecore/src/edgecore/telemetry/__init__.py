"""Observability: JSON logs with redaction, Prometheus metrics, the admin listener, tracing."""

from edgecore.telemetry.admin import AdminServer
from edgecore.telemetry.logs import SENSITIVE_KEYS, configure_logging
from edgecore.telemetry.metrics import MetricsRegistry, prometheus_name
from edgecore.telemetry.tracing import configure_tracing

__all__ = [
    "SENSITIVE_KEYS",
    "AdminServer",
    "MetricsRegistry",
    "configure_logging",
    "configure_tracing",
    "prometheus_name",
]
