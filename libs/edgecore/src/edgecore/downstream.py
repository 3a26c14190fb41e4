"""Consumer-side interfaces of step 10-11: the authenticated command and its downstream.

Downstream services receive an ``AuthenticatedCommand`` (never raw transport
data) and answer with a ``DownstreamResult``: payload bytes plus a stable,
opaque result code. A blank result code is a contract violation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

__all__ = [
    "RESULT_OK",
    "AuthenticatedCommand",
    "DownstreamClient",
    "DownstreamContractError",
    "DownstreamResult",
    "DownstreamRouter",
    "DownstreamUnavailableError",
]

RESULT_OK = "ok"


@dataclass(frozen=True, slots=True)
class AuthenticatedCommand:
    """The internal authenticated context: all a downstream ever sees of a request."""

    user_id: str
    device_session_id: str
    message_type: str
    payload: bytes
    request_id: str
    trace_id: str | None = None
    client_metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __repr__(self) -> str:
        return (
            f"AuthenticatedCommand(message_type={self.message_type!r}, "
            f"request_id={self.request_id!r}, user_id={self.user_id!r})"
        )


@dataclass(frozen=True, slots=True)
class DownstreamResult:
    result_code: str
    payload: bytes

    def __post_init__(self) -> None:
        if not self.result_code.strip():
            raise DownstreamContractError("downstream returned an empty result code")


class DownstreamUnavailableError(Exception):
    """The downstream could not be reached or did not answer in time (UNAVAILABLE)."""


class DownstreamContractError(Exception):
    """The downstream answered outside its contract (INTERNAL)."""


class DownstreamClient(Protocol):
    async def execute(self, command: AuthenticatedCommand) -> DownstreamResult: ...


class DownstreamRouter(Protocol):
    def resolve(self, message_type: str) -> DownstreamClient | None:
        """The client for this exact message_type literal, or None when it is not routed."""
        ...
