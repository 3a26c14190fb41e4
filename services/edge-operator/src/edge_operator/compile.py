"""Compiling GatewayRoutes into one route table: validation, conflicts, verdicts. Pure.

Every live (not deleting) route gets exactly one verdict:

* ``invalid``: the spec fails a check the API server could not make (or one it
  should have made, re-checked here because a CRD's schema can be edited);
* ``conflicted``: valid, but an older route claims the same message type. The
  oldest route (creationTimestamp, then namespace/name) wins, so adding a route
  never steals traffic from one already serving;
* ``accepted``: valid and unclaimed: it is in the table.

Invalid routes claim nothing: a broken newer route cannot block a valid older
one, and a broken older route does not block a valid newer one.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Protocol

from edge_operator.resources import RouteObject, RouteRef, SecretObject
from edgecore.config import parse_go_duration
from edgecore.internal_auth import MIN_SECRET_BYTES
from edgecore.routes import PassthroughRoute, RouteTableFormatError, is_reserved_message_type
from edgecore.routes.table import MAX_PAYLOAD_LIMIT, MAX_ROUTE_TIMEOUT, MESSAGE_TYPE_PATTERN

__all__ = [
    "DEFAULT_TIMEOUT",
    "Compilation",
    "Reason",
    "SecretSource",
    "Verdict",
    "VerdictState",
    "compile_routes",
]

DEFAULT_TIMEOUT: Final = timedelta(seconds=5)
_SERVICE: Final = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_PATH: Final = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")
_SECRET_KEY: Final = re.compile(r"[-._a-zA-Z0-9]+")


class VerdictState(enum.Enum):
    ACCEPTED = "accepted"
    CONFLICTED = "conflicted"
    INVALID = "invalid"


class Reason(enum.StrEnum):
    """The condition reasons (CamelCase, as Kubernetes conventions ask)."""

    PUBLISHED = "Published"
    MESSAGE_TYPE_CLAIMED = "MessageTypeClaimed"
    INVALID_SPEC = "InvalidSpec"
    INVALID_MESSAGE_TYPE = "InvalidMessageType"
    RESERVED_MESSAGE_TYPE = "ReservedMessageType"
    INVALID_TARGET = "InvalidTarget"
    INVALID_TIMEOUT = "InvalidTimeout"
    INVALID_MAX_PAYLOAD_BYTES = "InvalidMaxPayloadBytes"
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 (a condition reason)
    SECRET_KEY_NOT_FOUND = "SecretKeyNotFound"  # noqa: S105 (a condition reason)
    SECRET_TOO_SHORT = "SecretTooShort"  # noqa: S105 (a condition reason)


class SecretSource(Protocol):
    def get(self, namespace: str, name: str) -> SecretObject | None: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    state: VerdictState
    reason: Reason
    message: str
    message_type: str = ""
    route: PassthroughRoute | None = None
    # For a conflicted route: the route that holds the message type.
    holder: RouteRef | None = None


@dataclass(frozen=True, slots=True)
class Compilation:
    verdicts: Mapping[RouteRef, Verdict]

    @property
    def accepted(self) -> list[PassthroughRoute]:
        return [v.route for v in self.verdicts.values() if v.route is not None]


class _Invalid(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def compile_routes(
    routes: Iterable[RouteObject], secrets: SecretSource, *, host_template: str
) -> Compilation:
    live = sorted((r for r in routes if not r.deleting), key=lambda r: (r.created, r.ref))
    verdicts: dict[RouteRef, Verdict] = {}
    holders: dict[str, RouteRef] = {}
    for obj in live:
        if obj.ref in verdicts:
            continue  # one object, one verdict (an index should never hold it twice)
        try:
            route = _passthrough_route(obj, secrets, host_template)
        except _Invalid as bad:
            message_type = obj.spec.get("messageType")
            verdicts[obj.ref] = Verdict(
                VerdictState.INVALID,
                bad.reason,
                bad.message,
                message_type if isinstance(message_type, str) else "",
            )
            continue
        holder = holders.get(route.message_type)
        if holder is not None:
            verdicts[obj.ref] = Verdict(
                VerdictState.CONFLICTED,
                Reason.MESSAGE_TYPE_CLAIMED,
                f"message type {route.message_type} is already routed by the older "
                f"GatewayRoute {holder}",
                route.message_type,
                holder=holder,
            )
            continue
        holders[route.message_type] = obj.ref
        verdicts[obj.ref] = Verdict(
            VerdictState.ACCEPTED,
            Reason.PUBLISHED,
            f"routed to {route.url}",
            route.message_type,
            route=route,
        )
    return Compilation(verdicts)


def _passthrough_route(
    obj: RouteObject, secrets: SecretSource, host_template: str
) -> PassthroughRoute:
    spec = obj.spec
    message_type = _message_type(spec.get("messageType"))
    url = _target_url(spec.get("target"), obj.ref.namespace, host_template)
    timeout = _timeout(spec.get("timeout"))
    max_payload = _max_payload(spec.get("maxPayloadBytes"))
    secret = _secret(spec.get("hmacSecretRef"), obj.ref.namespace, secrets)
    try:
        return PassthroughRoute(
            message_type=message_type,
            url=url,
            timeout=timeout,
            hmac_secret=secret,
            max_payload_bytes=max_payload,
            source=str(obj.ref),
        )
    except RouteTableFormatError as exc:  # every check above should have caught it first
        raise _Invalid(Reason.INVALID_SPEC, str(exc)) from None


def _message_type(value: object) -> str:
    if not isinstance(value, str) or not MESSAGE_TYPE_PATTERN.fullmatch(value):
        raise _Invalid(
            Reason.INVALID_MESSAGE_TYPE,
            "spec.messageType must be 1-128 characters of [A-Za-z0-9._-], starting with a "
            "letter or digit",
        )
    if is_reserved_message_type(value):
        raise _Invalid(
            Reason.RESERVED_MESSAGE_TYPE,
            f"message type {value} is reserved: user.*, lobby.* and gateway.* belong to "
            "the gateway",
        )
    return value


def _target_url(value: object, namespace: str, host_template: str) -> str:
    if not isinstance(value, Mapping):
        raise _Invalid(Reason.INVALID_TARGET, "spec.target must be an object")
    service, port, path = value.get("service"), value.get("port"), value.get("path")
    scheme = value.get("scheme", "http")
    if not isinstance(service, str) or len(service) > 63 or not _SERVICE.fullmatch(service):
        raise _Invalid(Reason.INVALID_TARGET, "spec.target.service must be a DNS-1035 label")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _Invalid(Reason.INVALID_TARGET, "spec.target.port must be 1-65535")
    if not isinstance(path, str) or len(path) > 1024 or not _PATH.fullmatch(path):
        raise _Invalid(Reason.INVALID_TARGET, "spec.target.path must be an absolute URL path")
    if scheme not in ("http", "https"):
        raise _Invalid(Reason.INVALID_TARGET, "spec.target.scheme must be http or https")
    host = host_template.format(service=service, namespace=namespace)
    return f"{scheme}://{host}:{port}{path}"


def _timeout(value: object) -> timedelta:
    if value is None:
        return DEFAULT_TIMEOUT  # the CRD's default, for objects stored before it applied
    if not isinstance(value, str):
        raise _Invalid(Reason.INVALID_TIMEOUT, "spec.timeout must be a Go duration string")
    try:
        timeout = parse_go_duration(value)
    except ValueError:
        raise _Invalid(Reason.INVALID_TIMEOUT, "spec.timeout is not a Go duration") from None
    if not timedelta(0) < timeout <= MAX_ROUTE_TIMEOUT:
        raise _Invalid(Reason.INVALID_TIMEOUT, "spec.timeout must be above 0 and at most 5m")
    return timeout


def _max_payload(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_PAYLOAD_LIMIT:
        raise _Invalid(
            Reason.INVALID_MAX_PAYLOAD_BYTES,
            f"spec.maxPayloadBytes must be 1-{MAX_PAYLOAD_LIMIT}",
        )
    return value


def _secret(value: object, namespace: str, secrets: SecretSource) -> bytes:
    ref: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
    name, key = ref.get("name"), ref.get("key")
    if not isinstance(name, str) or not name or not isinstance(key, str) or not key:
        raise _Invalid(Reason.INVALID_SPEC, "spec.hmacSecretRef needs a name and a key")
    if not _SECRET_KEY.fullmatch(key):
        raise _Invalid(Reason.INVALID_SPEC, "spec.hmacSecretRef.key is not a valid Secret key")
    found = secrets.get(namespace, name)
    if found is None:
        raise _Invalid(
            Reason.SECRET_NOT_FOUND,
            f"Secret {namespace}/{name} was not found, or lacks the label "
            "gateway.galaxy.dev/route-secret=true",
        )
    secret = found.data.get(key)
    if secret is None:
        raise _Invalid(Reason.SECRET_KEY_NOT_FOUND, f"Secret {namespace}/{name} has no key {key}")
    if len(secret) < MIN_SECRET_BYTES:
        raise _Invalid(
            Reason.SECRET_TOO_SHORT,
            f"Secret {namespace}/{name} key {key} must hold at least {MIN_SECRET_BYTES} bytes",
        )
    return secret
