"""One reconcile: every known route -> verdicts -> the published table. Serialised.

Each reconcile recompiles from the full set of routes (the in-memory index),
never from a diff, so it is idempotent, order-independent and correct after
a restart: publishing unchanged routes changes nothing in Redis. Reconciles
are serialised by a lock so two handlers cannot publish interleaved views.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from redis.exceptions import RedisError

from edge_operator.compile import Compilation, SecretSource, compile_routes
from edge_operator.conditions import route_status
from edge_operator.resources import RouteObject
from edgecore.routes import PassthroughRoute, PublishOutcome
from edgecore.routes.store import RouteTablePublishConflictError

__all__ = ["ReconcileResult", "Reconciler", "TablePublisher", "routes_in"]

_log = logging.getLogger("edge_operator.reconcile")


class TablePublisher(Protocol):
    async def publish(self, routes: Iterable[PassthroughRoute]) -> tuple[PublishOutcome, int]: ...


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    compilation: Compilation
    table_version: int | None
    publish_error: str | None

    @property
    def published(self) -> bool:
        return self.publish_error is None

    def status_for(self, obj: RouteObject, *, now: datetime | None = None) -> dict[str, Any] | None:
        """The status ``obj`` should carry; None for a route that is being deleted."""
        verdict = self.compilation.verdicts.get(obj.ref)
        if verdict is None:
            return None
        return route_status(
            verdict,
            generation=obj.generation,
            table_version=self.table_version,
            publish_error=self.publish_error,
            previous=obj.conditions,
            now=now,
        )


class Reconciler:
    def __init__(
        self,
        publisher: TablePublisher,
        *,
        host_template: str,
        publish_timeout: timedelta,
        observer: Callable[[ReconcileResult, PublishOutcome | None], None] | None = None,
    ) -> None:
        self._publisher = publisher
        self._observer = observer
        self._host_template = host_template
        self._timeout = publish_timeout.total_seconds()
        self._lock = asyncio.Lock()

    async def reconcile(
        self, routes: Iterable[RouteObject], secrets: SecretSource
    ) -> ReconcileResult:
        async with self._lock:
            compilation = compile_routes(routes, secrets, host_template=self._host_template)
            accepted = compilation.accepted
            try:
                async with asyncio.timeout(self._timeout):
                    outcome, version = await self._publisher.publish(accepted)
            except (RedisError, OSError, TimeoutError, RouteTablePublishConflictError) as exc:
                reason = _describe(exc)
                _log.warning("route table not published", extra={"error": reason})
                return self._observed(ReconcileResult(compilation, None, reason), None)
            if outcome is PublishOutcome.PUBLISHED:
                _log.info(
                    "route table published",
                    extra={"version": version, "routes": len(accepted),
                           "message_types": sorted(r.message_type for r in accepted)},
                )  # fmt: skip
            return self._observed(ReconcileResult(compilation, version, None), outcome)

    def _observed(self, result: ReconcileResult, outcome: PublishOutcome | None) -> ReconcileResult:
        if self._observer is not None:
            self._observer(result, outcome)
        return result


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "Redis did not answer in time"
    if isinstance(exc, RouteTablePublishConflictError):
        return "another publisher kept changing the table"
    return f"Redis is unavailable ({type(exc).__name__})"


def routes_in(index: Mapping[Any, Iterable[RouteObject]]) -> list[RouteObject]:
    """Flatten a kopf index (key -> store of values) of routes."""
    return [obj for store in index.values() for obj in store]
