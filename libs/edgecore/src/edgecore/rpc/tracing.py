"""OpenTelemetry server spans for every RPC on every protocol (connectrpc-otel).

The library's interceptor names a span ``<service>/<method>`` and extracts
the caller's W3C trace context from the request headers. Health checks are
not traced: kubelet probes them every few seconds and nobody reads those spans.

When the sampler never samples a root span (``always_off`` or the services'
default without an exporter, ``parentbased_always_off``), a call without a
``traceparent`` header cannot produce a span anyone reads, so it skips the
interceptor entirely: that was 100-200 µs per call spent building a
non-recording span, its attributes and its context (docs/edge-grpc.md). A
call that carries a caller's trace context still goes through it, so a
sampled caller's trace is recorded and propagation works as before.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from connectrpc.request import RequestContext
from connectrpc_otel import OpenTelemetryInterceptor
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, DEFAULT_OFF
from opentelemetry.trace import TracerProvider

__all__ = ["TracedRpcs", "never_samples_roots"]


def never_samples_roots(tracer_provider: TracerProvider) -> bool:
    """True when a span without a parent is never sampled by ``tracer_provider``."""
    sampler = getattr(tracer_provider, "sampler", None)
    return isinstance(tracer_provider, SdkTracerProvider) and sampler in (ALWAYS_OFF, DEFAULT_OFF)


class TracedRpcs:
    """A metadata interceptor: a server span per call, except for ``untraced`` services."""

    def __init__(self, tracer_provider: TracerProvider, untraced: Collection[str]) -> None:
        self._otel = OpenTelemetryInterceptor(tracer_provider=tracer_provider)
        self._untraced = frozenset(untraced)
        self._only_with_parent = never_samples_roots(tracer_provider)

    async def on_start(self, ctx: RequestContext[Any, Any]) -> Any:
        if ctx.method.service_name in self._untraced:
            return None
        if self._only_with_parent and "traceparent" not in ctx.request_headers:
            return None
        return self._otel.on_start_sync(ctx)

    async def on_end(
        self, token: Any, ctx: RequestContext[Any, Any], error: Exception | None, /
    ) -> None:
        if token is not None:
            self._otel.on_end_sync(token, ctx, error)
