"""Per-request context set by the edge and read by handlers, metrics and logs."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from public_rest.classifier import RouteClass

__all__ = ["RequestContext", "current_context", "use_context"]


@dataclass(slots=True)
class RequestContext:
    request_id: str
    route_class: RouteClass
    peer_ip: str
    method: str
    route: str
    """The route template (``/assets/*``, ``unmatched``), never the raw path."""
    result: str | None = None
    """The outcome label for metrics: ``ok`` or a reject reason; None until decided."""
    extra: dict[str, str] = field(default_factory=dict)


_CURRENT: ContextVar[RequestContext | None] = ContextVar("public_rest_request", default=None)


def current_context() -> RequestContext | None:
    return _CURRENT.get()


def use_context(context: RequestContext) -> object:
    """Bind ``context`` to the running task; returns the token for ``reset_context``."""
    return _CURRENT.set(context)


def reset_context(token: object) -> None:
    _CURRENT.reset(token)  # type: ignore[arg-type]
