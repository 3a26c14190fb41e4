"""What the operator reads from the Kubernetes API, as plain immutable values.

kopf hands handlers live views of objects; everything kept beyond one call
(the in-memory indexes) is copied into these values first.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "GROUP",
    "PLURAL",
    "ROUTE_SECRET_LABEL",
    "VERSION",
    "RouteObject",
    "RouteRef",
    "SecretObject",
    "plain",
]

GROUP: Final = "gateway.galaxy.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "gatewayroutes"
# Only Secrets carrying this label are indexed: the operator never holds the others.
ROUTE_SECRET_LABEL: Final = "gateway.galaxy.dev/route-secret"  # noqa: S105 (a label)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, order=True)
class RouteRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class RouteObject:
    """One GatewayRoute as the compiler needs it."""

    ref: RouteRef
    generation: int
    created: datetime
    deleting: bool
    spec: Mapping[str, Any]
    # The conditions already on the object: their transition times are kept when unchanged.
    conditions: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> RouteObject:
        meta = body.get("metadata") or {}
        status = body.get("status") or {}
        spec = body.get("spec")
        conditions = status.get("conditions") if isinstance(status, Mapping) else None
        return cls(
            ref=RouteRef(str(meta.get("namespace") or ""), str(meta.get("name") or "")),
            generation=_int(meta.get("generation")),
            created=parse_timestamp(meta.get("creationTimestamp")),
            deleting=bool(meta.get("deletionTimestamp")),
            spec=plain(spec) if isinstance(spec, Mapping) else {},
            conditions=tuple(plain(c) for c in (conditions or ()) if isinstance(c, Mapping)),
        )


@dataclass(frozen=True, slots=True)
class SecretObject:
    """A labelled Secret's decoded data. Values are secret: no repr."""

    namespace: str
    name: str
    data: Mapping[str, bytes] = field(repr=False)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SecretObject:
        meta = body.get("metadata") or {}
        raw = body.get("data") or {}
        data: dict[str, bytes] = {}
        for key, value in raw.items() if isinstance(raw, Mapping) else ():
            try:
                data[str(key)] = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                continue  # the API server only stores base64; anything else is not a value
        return cls(str(meta.get("namespace") or ""), str(meta.get("name") or ""), data)


def parse_timestamp(value: object) -> datetime:
    """RFC 3339 as the API server writes it; unparsable sorts first (epoch)."""
    if not isinstance(value, str) or not value:
        return _EPOCH
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def plain(value: Any) -> Any:
    """A deep copy made of dicts, lists and scalars (kopf bodies are live views)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
