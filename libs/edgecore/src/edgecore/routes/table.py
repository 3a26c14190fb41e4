"""The route table: every accepted passthrough route, as one immutable, versioned value.

A table is plain data with a strict JSON form (``to_document`` /
``from_document``). Decoding checks every field, so a table that reaches
edge-grpc either describes only well-formed routes or is refused whole:
there is no partially applied table.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from edgecore.internal_auth.canonical import MIN_SECRET_BYTES

__all__ = [
    "MAX_ROUTE_TIMEOUT",
    "MESSAGE_TYPE_PATTERN",
    "RESERVED_PREFIXES",
    "TABLE_FORMAT",
    "PassthroughRoute",
    "RouteTable",
    "RouteTableFormatError",
    "is_reserved_message_type",
]

TABLE_FORMAT: Final = "galaxy-route-table-v1"
# The envelope's own grammar for message_type (pipeline/envelope.py): a route must be
# reachable by a request that passed step 1.
MESSAGE_TYPE_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Literals the gateway itself owns: the backend routes and the gateway's own types.
RESERVED_PREFIXES: Final = ("user.", "lobby.", "gateway.")
MAX_ROUTE_TIMEOUT: Final = timedelta(minutes=5)
MAX_PAYLOAD_LIMIT: Final = 64 << 20


class RouteTableFormatError(ValueError):
    """A route table document is not well-formed; the message names the field, never a value."""


def is_reserved_message_type(message_type: str) -> bool:
    return message_type.startswith(RESERVED_PREFIXES)


@dataclass(frozen=True, slots=True)
class PassthroughRoute:
    """One message type sent, payload unchanged, to one in-cluster HTTP target."""

    message_type: str
    url: str
    timeout: timedelta
    hmac_secret: bytes = field(repr=False)
    max_payload_bytes: int | None = None
    # ``namespace/name`` of the GatewayRoute: for logs and status, never for routing.
    source: str = ""

    def __post_init__(self) -> None:
        if not MESSAGE_TYPE_PATTERN.fullmatch(self.message_type):
            raise RouteTableFormatError("route message_type is malformed")
        if is_reserved_message_type(self.message_type):
            raise RouteTableFormatError("route message_type is reserved by the gateway")
        _check_url(self.url)
        if not timedelta(0) < self.timeout <= MAX_ROUTE_TIMEOUT:
            raise RouteTableFormatError("route timeout must be positive and at most 5m")
        if len(self.hmac_secret) < MIN_SECRET_BYTES:
            raise RouteTableFormatError(
                f"route HMAC secret must be at least {MIN_SECRET_BYTES} bytes"
            )
        if (
            self.max_payload_bytes is not None
            and not 0 < self.max_payload_bytes <= MAX_PAYLOAD_LIMIT
        ):
            raise RouteTableFormatError("route max_payload_bytes is out of range")

    def to_document(self) -> dict[str, Any]:
        return {
            "message_type": self.message_type,
            "url": self.url,
            "timeout_ms": int(self.timeout / timedelta(milliseconds=1)),
            "hmac_secret": base64.b64encode(self.hmac_secret).decode("ascii"),
            "max_payload_bytes": self.max_payload_bytes,
            "source": self.source,
        }

    @classmethod
    def from_document(cls, data: object) -> PassthroughRoute:
        if not isinstance(data, Mapping):
            raise RouteTableFormatError("route is not an object")
        expected = {
            "message_type",
            "url",
            "timeout_ms",
            "hmac_secret",
            "max_payload_bytes",
            "source",
        }
        if set(data) != expected:
            raise RouteTableFormatError(
                "route fields are not exactly " + ", ".join(sorted(expected))
            )
        timeout_ms = _int(data["timeout_ms"], "timeout_ms")
        max_payload = data["max_payload_bytes"]
        try:
            secret = base64.b64decode(_str(data["hmac_secret"], "hmac_secret"), validate=True)
        except (binascii.Error, ValueError):
            raise RouteTableFormatError("route hmac_secret is not base64") from None
        return cls(
            message_type=_str(data["message_type"], "message_type"),
            url=_str(data["url"], "url"),
            timeout=timedelta(milliseconds=timeout_ms),
            hmac_secret=secret,
            max_payload_bytes=None
            if max_payload is None
            else _int(max_payload, "max_payload_bytes"),
            source=_str(data["source"], "source", allow_empty=True),
        )


@dataclass(frozen=True, slots=True)
class RouteTable:
    """All passthrough routes at one version. Versions only grow (see store.next_version)."""

    version: int
    routes: Mapping[str, PassthroughRoute]

    def __post_init__(self) -> None:
        if self.version < 0:
            raise RouteTableFormatError("table version must not be negative")
        for message_type, route in self.routes.items():
            if route.message_type != message_type:
                raise RouteTableFormatError("table is keyed by a route's own message_type")

    @classmethod
    def build(cls, version: int, routes: Iterable[PassthroughRoute]) -> RouteTable:
        table: dict[str, PassthroughRoute] = {}
        for route in routes:
            if route.message_type in table:
                raise RouteTableFormatError("two routes claim one message_type")
            table[route.message_type] = route
        return cls(version, dict(sorted(table.items())))

    def routes_document(self) -> list[dict[str, Any]]:
        """The routes in a stable order: what the digest covers (the version is not part)."""
        return [self.routes[name].to_document() for name in sorted(self.routes)]

    def to_document(self) -> dict[str, Any]:
        return {"format": TABLE_FORMAT, "version": self.version, "routes": self.routes_document()}

    @classmethod
    def from_document(cls, data: object) -> RouteTable:
        if not isinstance(data, Mapping):
            raise RouteTableFormatError("table is not an object")
        if data.get("format") != TABLE_FORMAT:
            raise RouteTableFormatError(f"table format is not {TABLE_FORMAT}")
        if set(data) != {"format", "version", "routes"}:
            raise RouteTableFormatError("table fields are not exactly format, version, routes")
        routes = data["routes"]
        if not isinstance(routes, list):
            raise RouteTableFormatError("table routes is not a list")
        return cls.build(
            _int(data["version"], "version"), (PassthroughRoute.from_document(r) for r in routes)
        )

    def __len__(self) -> int:
        return len(self.routes)


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RouteTableFormatError("route url is malformed") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise RouteTableFormatError("route url needs an http(s) scheme, a host and a port")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise RouteTableFormatError("route url must not carry credentials, a query or a fragment")
    if not parts.path.startswith("/"):
        raise RouteTableFormatError("route url needs an absolute path")


def _str(value: object, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        raise RouteTableFormatError(f"route {name} must be a non-empty string")
    return value


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RouteTableFormatError(f"{name} must be an integer")
    return value
