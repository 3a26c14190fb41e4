"""The kopf handlers, as methods of one object so tests can call them directly.

kopf keeps two in-memory indexes, filled before any handler runs:
``gateway_routes`` (every GatewayRoute in the watched namespaces) and
``route_secrets`` (only Secrets labelled gateway.galaxy.dev/route-secret=true).
Every handler reconciles from those indexes, whole:

* create / update / resume of a route: reconcile, write its status; a table
  that could not be published is a ``TemporaryError`` (kopf retries);
* delete of a route: reconcile without it; its finalizer is released only
  once a table without it is published, so "deleted" means "not routed";
* any change to a labelled Secret: reconcile (secret rotation goes live);
* a per-route timer: reconcile and refresh the route's status, which is how
  a route learns that a conflict it lost has gone (kopf handlers only patch
  the object they were called for).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, Final

import kopf

from edge_operator.conditions import status_differs
from edge_operator.reconciler import Reconciler, ReconcileResult, routes_in
from edge_operator.resources import (
    GROUP,
    PLURAL,
    ROUTE_SECRET_LABEL,
    VERSION,
    RouteObject,
    SecretObject,
)

__all__ = ["FINALIZER", "IndexedSecrets", "RouteHandlers", "kopf_settings"]

FINALIZER: Final = f"{GROUP}/edge-operator"
_log = logging.getLogger("edge_operator.handlers")

RouteIndex = Mapping[Any, Iterable[RouteObject]]
SecretIndex = Mapping[Any, Iterable[SecretObject]]


class IndexedSecrets:
    """``SecretSource`` over kopf's secrets index."""

    def __init__(self, index: SecretIndex) -> None:
        self._index = index

    def get(self, namespace: str, name: str) -> SecretObject | None:
        store = self._index.get((namespace, name))
        return next(iter(store), None) if store is not None else None


class RouteHandlers:
    def __init__(self, reconciler: Reconciler, *, retry_delay: timedelta) -> None:
        self._reconciler = reconciler
        self._retry_delay = retry_delay.total_seconds()

    # ------------------------------------------------------------------ indexes

    @staticmethod
    def index_route(body: Mapping[str, Any], **_: Any) -> dict[tuple[str, str], RouteObject]:
        obj = RouteObject.from_body(body)
        return {(obj.ref.namespace, obj.ref.name): obj}

    @staticmethod
    def index_secret(body: Mapping[str, Any], **_: Any) -> dict[tuple[str, str], SecretObject]:
        secret = SecretObject.from_body(body)
        return {(secret.namespace, secret.name): secret}

    # ------------------------------------------------------------------ handlers

    async def on_route(
        self,
        body: Mapping[str, Any],
        patch: kopf.Patch,
        gateway_routes: RouteIndex,
        route_secrets: SecretIndex,
        **_: Any,
    ) -> None:
        obj = RouteObject.from_body(body)
        result = await self._refresh(obj, body, patch, gateway_routes, route_secrets)
        _log_verdict(obj, result)
        if not result.published:
            raise kopf.TemporaryError(
                f"route table not published: {result.publish_error}", delay=self._retry_delay
            )

    async def on_route_deleted(
        self, body: Mapping[str, Any], gateway_routes: RouteIndex, route_secrets: SecretIndex,
        **_: Any,
    ) -> None:  # fmt: skip
        result = await self._reconcile(gateway_routes, route_secrets)
        if not result.published:
            raise kopf.TemporaryError(
                f"route table without this route not published: {result.publish_error}",
                delay=self._retry_delay,
            )
        obj = RouteObject.from_body(body)
        _log.info("route removed", extra={"route": str(obj.ref), "version": result.table_version})

    async def on_secret(
        self, gateway_routes: RouteIndex, route_secrets: SecretIndex, **_: Any
    ) -> None:
        await self._reconcile(gateway_routes, route_secrets)

    async def on_resync(
        self,
        body: Mapping[str, Any],
        patch: kopf.Patch,
        gateway_routes: RouteIndex,
        route_secrets: SecretIndex,
        **_: Any,
    ) -> None:
        # Nothing returned: kopf would store a handler's result in the object's status.
        await self._refresh(RouteObject.from_body(body), body, patch, gateway_routes, route_secrets)

    async def _refresh(
        self,
        obj: RouteObject,
        body: Mapping[str, Any],
        patch: kopf.Patch,
        routes: RouteIndex,
        secrets: SecretIndex,
    ) -> ReconcileResult:
        result = await self._reconcile(routes, secrets)
        _write_status(obj, result, patch, body)
        return result

    async def _reconcile(self, routes: RouteIndex, secrets: SecretIndex) -> ReconcileResult:
        return await self._reconciler.reconcile(routes_in(routes), IndexedSecrets(secrets))

    # ------------------------------------------------------------------ wiring

    def register(self, registry: kopf.OperatorRegistry, *, resync_interval: timedelta) -> None:
        resource = (GROUP, VERSION, PLURAL)
        kopf.index(*resource, id="gateway_routes", registry=registry)(self.index_route)
        kopf.index(
            "v1", "secrets", id="route_secrets", labels={ROUTE_SECRET_LABEL: "true"},
            registry=registry,
        )(self.index_secret)  # fmt: skip
        for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
            on(*resource, id="route", registry=registry)(_kopf_fn(self.on_route))
        kopf.on.delete(*resource, id="route-deleted", registry=registry)(
            _kopf_fn(self.on_route_deleted)
        )
        kopf.on.event(
            "v1", "secrets", id="route-secret", labels={ROUTE_SECRET_LABEL: "true"},
            registry=registry,
        )(_kopf_fn(self.on_secret))  # fmt: skip
        seconds = resync_interval.total_seconds()
        kopf.timer(*resource, id="resync", interval=seconds, initial_delay=seconds,
                   registry=registry)(_kopf_fn(self.on_resync))  # fmt: skip


def _kopf_fn(fn: Callable[..., Any]) -> Any:
    """kopf passes its indexes as keyword arguments named after them, which its callback
    protocols cannot declare; the handlers name the ones they use."""
    return fn


def kopf_settings() -> kopf.OperatorSettings:
    """kopf state lives in our own annotation prefix; Events only for warnings and errors."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    # kopf filters `labels=` on its side; the selector makes the API server do it, so
    # unlabelled Secrets never reach this process (RBAC cannot express that limit).
    settings.watching.label_selectors["v1", "secrets"] = f"{ROUTE_SECRET_LABEL}=true"
    # The resources are known; scanning would list namespaces and CRDs cluster-wide,
    # which the namespaced RBAC (rightly) does not allow.
    settings.scanning.disabled = True
    return settings


def _write_status(
    obj: RouteObject, result: ReconcileResult, patch: kopf.Patch, body: Mapping[str, Any]
) -> None:
    wanted = result.status_for(obj)
    if wanted is None:
        return
    if status_differs(body.get("status"), wanted):
        patch.setdefault("status", {}).update(wanted)


def _log_verdict(obj: RouteObject, result: ReconcileResult) -> None:
    verdict = result.compilation.verdicts.get(obj.ref)
    if verdict is None:
        return
    log = _log.info if verdict.route is not None else _log.warning
    log(
        "route " + verdict.state.value,
        extra={"route": str(obj.ref), "reason": verdict.reason.value,
               "message_type": verdict.message_type, "version": result.table_version},
    )  # fmt: skip
