"""OpenTelemetry server spans for every RPC on every protocol (connectrpc-otel).

The library's interceptor names a span ``<service>/<method>`` and extracts
the caller's W3C trace context from the request headers. Health checks are
not traced: kubelet probes them every few seconds and nobody reads those spans.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from connectrpc.request import RequestContext
from connectrpc_otel import OpenTelemetryInterceptor
from opentelemetry.trace import TracerProvider

__all__ = ["TracedRpcs"]


class TracedRpcs:
    """A metadata interceptor: a server span per call, except for ``untraced`` services."""

    def __init__(self, tracer_provider: TracerProvider, untraced: Collection[str]) -> None:
        self._otel = OpenTelemetryInterceptor(tracer_provider=tracer_provider)
        self._untraced = frozenset(untraced)

    async def on_start(self, ctx: RequestContext[Any, Any]) -> Any:
        if ctx.method.service_name in self._untraced:
            return None
        return self._otel.on_start_sync(ctx)

    async def on_end(
        self, token: Any, ctx: RequestContext[Any, Any], error: Exception | None, /
    ) -> None:
        if token is not None:
            self._otel.on_end_sync(token, ctx, error)
