"""``grpc.health.v1.Health`` served by connectrpc on the service's own port.

Kubelet's native gRPC probes (and ``grpc_health_probe``) call ``Check``;
load balancers and tests may ``Watch``. Service ``""`` is the whole server,
``galaxy.gateway.v1.EdgeGateway`` the gateway service; both move together.
``Check`` of an unknown service is NOT_FOUND and ``Watch`` of one yields
SERVICE_UNKNOWN, as the health protocol says. Once shutdown begins every
service is NOT_SERVING for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import Endpoint
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

__all__ = ["HEALTH_SERVICE", "HealthState", "health_endpoints"]

HEALTH_SERVICE: Final = "grpc.health.v1.Health"
SERVING: Final = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: Final = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN: Final = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class HealthState:
    """Serving status per service name, with watchers woken on every change."""

    def __init__(self, services: Iterable[str]) -> None:
        self._status: dict[str, int] = dict.fromkeys(("", *services), NOT_SERVING)
        self._changed = asyncio.Event()
        self._frozen = False
        self._closed = False

    def status(self, service: str) -> int | None:
        return self._status.get(service)

    def set_all(self, serving: bool) -> None:
        """Every service SERVING or NOT_SERVING (ignored once shutdown began)."""
        if self._frozen:
            return
        self._publish(SERVING if serving else NOT_SERVING)

    def enter_graceful_shutdown(self) -> None:
        self._publish(NOT_SERVING)
        self._frozen = True

    def close(self) -> None:
        """End every Watch (the process is about to stop)."""
        self._closed = True
        self._changed.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def _publish(self, status: int) -> None:
        if all(current == status for current in self._status.values()):
            return
        self._status = dict.fromkeys(self._status, status)
        self._changed.set()
        self._changed = asyncio.Event()

    def changed(self) -> asyncio.Event:
        """Set at the next change (take it before reading a status, then wait)."""
        return self._changed


class _HealthService:
    def __init__(self, state: HealthState) -> None:
        self._state = state

    async def check(self, request: Any, ctx: RequestContext[Any, Any]) -> Any:
        status = self._state.status(request.service)
        if status is None:
            raise ConnectError(Code.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=status)

    async def watch(self, request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
        last: int | None = None
        while not self._state.closed:
            changed = self._state.changed()
            status = self._state.status(request.service)
            current = SERVICE_UNKNOWN if status is None else status
            if current != last:
                last = current
                yield health_pb2.HealthCheckResponse(status=current)
            await changed.wait()


def _method(name: str, stream_type: StreamType) -> MethodInfo[Any, Any]:
    return MethodInfo(
        name=name,
        service_name=HEALTH_SERVICE,
        input=health_pb2.HealthCheckRequest,
        output=health_pb2.HealthCheckResponse,
        idempotency_level=IdempotencyLevel.NO_SIDE_EFFECTS,
        stream_type=stream_type,
    )


def health_endpoints(state: HealthState) -> dict[str, Endpoint[Any, Any]]:
    service = _HealthService(state)
    return {
        f"/{HEALTH_SERVICE}/Check": Endpoint.unary(
            method=_method("Check", StreamType.UNARY), function=service.check
        ),
        f"/{HEALTH_SERVICE}/Watch": Endpoint.server_stream(
            method=_method("Watch", StreamType.SERVER_STREAM), function=service.watch
        ),
    }
