"""Steps 10-11: exact-match routing and bounded downstream execution, transport-free.

``CompositeRouter`` is one flat ``message_type -> DownstreamClient`` map built
at start-up from any number of route sources (today the backend's 18
``user.*`` / ``lobby.*`` routes; later the live routes). Resolving is a single
dict lookup on the full verified literal: no prefixes, no patterns.

``DownstreamExecutor`` runs the resolved client under
``GATEWAY_AUTHENTICATED_DOWNSTREAM_TIMEOUT`` and maps every outcome onto the
edge contract:

* no route                              -> UNIMPLEMENTED "message_type is not routed"
* timeout / ``DownstreamUnavailableError`` -> UNAVAILABLE "downstream service is unavailable"
* ``EdgeError`` from the adapter        -> that error (e.g. a payload that is not the table)
* ``DownstreamContractError`` / anything else -> INTERNAL "internal error"
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Final

from edgecore.downstream import (
    AuthenticatedCommand,
    DownstreamClient,
    DownstreamContractError,
    DownstreamResult,
    DownstreamRouter,
    DownstreamUnavailableError,
)
from edgecore.errors import EdgeError, Reject

__all__ = ["CompositeRouter", "DownstreamExecutor", "DuplicateRouteError"]

_log = logging.getLogger("edge_grpc.routing")

_NOT_ROUTED: Final = Reject.ROUTE_NOT_FOUND
_UNAVAILABLE: Final = Reject.DOWNSTREAM_UNAVAILABLE
_INTERNAL: Final = Reject.INTERNAL_ERROR


class DuplicateRouteError(ValueError):
    """Two route sources claim the same message_type (a wiring bug: refuse to start)."""


class CompositeRouter:
    """A ``DownstreamRouter`` over one exact-match map, composed from several sources."""

    __slots__ = ("_routes",)

    def __init__(self, routes: Mapping[str, DownstreamClient] | None = None) -> None:
        self._routes: dict[str, DownstreamClient] = {}
        if routes:
            for message_type, client in routes.items():
                self.add(message_type, client)

    def add(self, message_type: str, client: DownstreamClient) -> None:
        if not message_type:
            raise ValueError("a route needs a message_type")
        if message_type in self._routes:
            raise DuplicateRouteError(f"message_type {message_type!r} is routed twice")
        self._routes[message_type] = client

    def include(self, router: DownstreamRouter, message_types: Iterable[str]) -> None:
        """Copy ``router``'s clients for ``message_types`` into the map (each must resolve)."""
        for message_type in message_types:
            client = router.resolve(message_type)
            if client is None:
                raise ValueError(f"router does not resolve {message_type!r}")
            self.add(message_type, client)

    def resolve(self, message_type: str) -> DownstreamClient | None:
        return self._routes.get(message_type)

    def is_routed(self, message_type: str) -> bool:
        return message_type in self._routes

    @property
    def message_types(self) -> frozenset[str]:
        return frozenset(self._routes)

    def __len__(self) -> int:
        return len(self._routes)


class DownstreamExecutor:
    """Resolve and execute one verified command, bounded, with the contract's error mapping."""

    __slots__ = ("_resolve", "_timeout")

    def __init__(self, router: DownstreamRouter, *, timeout: timedelta) -> None:
        if timeout <= timedelta(0):
            raise ValueError("the downstream timeout must be positive")
        self._resolve = router.resolve
        self._timeout = timeout.total_seconds()

    async def execute(self, command: AuthenticatedCommand) -> DownstreamResult:
        try:
            client = self._resolve(command.message_type)
        except Exception as exc:
            _log.error(
                "downstream route resolution failed",
                extra={"error": type(exc).__name__, "request_id": command.request_id},
            )
            raise EdgeError(_INTERNAL) from None
        if client is None:
            raise EdgeError(_NOT_ROUTED)
        try:
            async with asyncio.timeout(self._timeout):
                result = await client.execute(command)
        except EdgeError:
            raise
        except TimeoutError:
            _log.warning(
                "downstream timed out",
                extra={"request_id": command.request_id, "timeout_s": self._timeout},
            )
            raise EdgeError(_UNAVAILABLE) from None
        except DownstreamUnavailableError as exc:
            _log.warning(
                "downstream unavailable",
                extra={"request_id": command.request_id, "error": _first_line(exc)},
            )
            raise EdgeError(_UNAVAILABLE) from None
        except DownstreamContractError as exc:
            _log.error(
                "downstream broke its contract",
                extra={"request_id": command.request_id, "error": type(exc).__name__},
            )
            raise EdgeError(_INTERNAL) from None
        except Exception as exc:
            _log.error(
                "downstream failed unexpectedly",
                extra={"request_id": command.request_id, "error": type(exc).__name__},
            )
            raise EdgeError(_INTERNAL) from None
        if not isinstance(result, DownstreamResult):
            _log.error(
                "downstream returned something other than a DownstreamResult",
                extra={"request_id": command.request_id, "error": type(result).__name__},
            )
            raise EdgeError(_INTERNAL)
        return result


def _first_line(exc: BaseException) -> str:
    """A short, data-free reason: adapters word these themselves (no payloads, no keys)."""
    text = str(exc).split("\n", 1)[0][:120]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
