"""What the operator exports on GATEWAY_ADMIN_HTTP_ADDR /metrics.

Enough to alert on the two things that matter: the table is not being
published (``..._publishes_total{outcome="failed"}`` grows), and routes that
someone applied are not serving (``gateway_routes{state!="accepted"}``).
"""

from __future__ import annotations

from edge_operator.compile import VerdictState
from edge_operator.reconciler import ReconcileResult
from edgecore.routes import PublishOutcome
from edgecore.telemetry import MetricsRegistry

__all__ = ["OperatorMetrics"]


class OperatorMetrics:
    def __init__(self, registry: MetricsRegistry) -> None:
        self.registry = registry
        self._publishes = registry.counter(
            "gateway.route_table_publishes",
            "Reconciles by outcome: published (a new version), unchanged, failed (Redis).",
            ["outcome"],
        )
        self._version = registry.gauge(
            "gateway.route_table_version", "The route-table version last published or confirmed."
        )
        self._routes = registry.gauge("gateway.routes", "Live GatewayRoutes by verdict.", ["state"])
        for outcome in ("published", "unchanged", "failed"):
            self._publishes.labels(outcome)
        for state in VerdictState:
            self._routes.labels(state.value).set(0)

    def observe(self, result: ReconcileResult, outcome: PublishOutcome | None) -> None:
        self._publishes.labels(outcome.value if outcome is not None else "failed").inc()
        if result.table_version is not None:
            self._version.set(result.table_version)
        counts = dict.fromkeys(VerdictState, 0)
        for verdict in result.compilation.verdicts.values():
            counts[verdict.state] += 1
        for state, count in counts.items():
            self._routes.labels(state.value).set(count)
