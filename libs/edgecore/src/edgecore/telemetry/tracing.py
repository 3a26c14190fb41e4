"""OpenTelemetry tracing as the specification describes it.

``OTEL_TRACES_EXPORTER`` unset or ``none``: tracing runs (spans exist, context
propagates) but nothing is exported. ``otlp``: the OTLP exporter over the
protocol resolved from ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``, then
``OTEL_EXPORTER_OTLP_PROTOCOL``, then ``http/protobuf``; endpoints and headers
come from the standard ``OTEL_EXPORTER_OTLP_*`` variables, read by the exporter.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcOTLPSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpOTLPSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from edgecore.config.sections import TelemetrySettings

__all__ = ["configure_tracing"]


def configure_tracing(settings: TelemetrySettings, component: str) -> TracerProvider:
    resource = Resource.create(
        {"service.name": settings.service_name, "service.component": component}
    )
    provider = TracerProvider(resource=resource)
    if settings.traces_exporter == "otlp":
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(settings)))
    trace.set_tracer_provider(provider)
    return provider


def _otlp_exporter(settings: TelemetrySettings) -> SpanExporter:
    if settings.resolved_otlp_protocol == "grpc":
        return GrpcOTLPSpanExporter()
    return HttpOTLPSpanExporter()
