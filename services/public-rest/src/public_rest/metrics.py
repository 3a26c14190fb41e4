"""The public REST metric families, exposed on the private admin listener.

* ``gateway.public_http.requests`` (counter; route_class, method, status, result)
* ``gateway.public_http.duration`` (histogram, seconds; route_class, method, result)
* ``gateway.public_http.rejects`` (counter; route_class, reject_reason): every
  anti-abuse or validation reject, per class, so classes never share a counter
* ``gateway.public_http.malformed_requests`` (counter; route_class, field)
* ``gateway.public_http.abuse_events`` (counter; route_class, signal): repeated
  failures from one peer crossing an audit threshold
* ``gateway.public_http.rate_limit_buckets`` (gauge; scope) and
  ``gateway.public_http.rate_limit_evictions`` (counter)

``result`` is ``ok`` or the reject reason (``rate_limited``, ``request_too_large``,
``method_not_allowed``, ``malformed_request``, ``route_not_found``,
``auth_service_error``, ``auth_upstream_timeout``, ...). Methods outside the
usual set are counted as ``OTHER`` so a client cannot grow the label space.
"""

from __future__ import annotations

from typing import Any, Final

from edgecore.telemetry import MetricsRegistry
from public_rest.ratelimit import InMemoryRateLimiter

__all__ = ["KNOWN_METHODS", "PublicRestMetrics", "metric_method"]

KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


_MAX_CACHED_CHILDREN: Final = 4096


def metric_method(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"


class PublicRestMetrics:
    def __init__(self, registry: MetricsRegistry | None = None) -> None:
        self.registry = registry or MetricsRegistry()
        r = self.registry
        self.requests = r.counter(
            "gateway.public_http.requests",
            "Public REST requests by route class, method, status and result.",
            ("route_class", "method", "status", "result"),
        )
        self.duration = r.histogram(
            "gateway.public_http.duration",
            "Public REST request duration by route class, method and result.",
            ("route_class", "method", "result"),
        )
        self.rejects = r.counter(
            "gateway.public_http.rejects",
            "Public REST rejects by route class and reject reason.",
            ("route_class", "reject_reason"),
        )
        self.malformed = r.counter(
            "gateway.public_http.malformed_requests",
            "Malformed public REST requests by route class and field at fault.",
            ("route_class", "field"),
        )
        self.abuse_events = r.counter(
            "gateway.public_http.abuse_events",
            "Repeated failures from one peer that crossed an audit threshold.",
            ("route_class", "signal"),
        )
        self._buckets = r.gauge(
            "gateway.public_http.rate_limit_buckets",
            "Rate-limit buckets held in memory, per scope.",
            ("scope",),
        )
        self._evictions = r.counter(
            "gateway.public_http.rate_limit_evictions",
            "Rate-limit buckets evicted by the per-scope hard cap.",
        )
        self._children: dict[tuple[str, str, int, str], tuple[Any, Any]] = {}
        self._limiter: InMemoryRateLimiter | None = None
        self._evictions_seen = 0

    def observe(
        self, route_class: str, method: str, status: int, result: str, seconds: float
    ) -> None:
        key = (route_class, method, status, result)
        children = self._children.get(key)
        if children is None:
            m = metric_method(method)
            children = (
                self.requests.labels(route_class, m, str(status), result),
                self.duration.labels(route_class, m, result),
            )
            # Every label is from a closed set, so this stays small; the cap is a safety net.
            if len(self._children) < _MAX_CACHED_CHILDREN:
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def track_limiter(self, limiter: InMemoryRateLimiter) -> None:
        self._limiter = limiter

    def render(self) -> bytes:
        limiter = self._limiter
        if limiter is not None:
            for scope in limiter.scopes():
                self._buckets.labels(scope).set(limiter.size(scope))
            if limiter.evictions > self._evictions_seen:
                self._evictions.inc(limiter.evictions - self._evictions_seen)
                self._evictions_seen = limiter.evictions
        return self.registry.render()
