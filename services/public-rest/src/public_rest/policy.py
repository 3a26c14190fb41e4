"""Public anti-abuse policy: per-class budgets, method allow-lists, bucket keys, peer IP.

Bucket scopes (one LRU each in the limiter, so nothing is ever shared):

* ``public_rest/class=<class>/ip=<peer ip>`` for every class;
* ``public_rest/class=public_auth/email=<normalized email>`` for send-email-code;
* ``public_rest/class=public_auth/challenge=<normalized challenge_id>`` for
  confirm-email-code.

The peer IP is the TCP peer only (the ASGI ``client``); ``X-Forwarded-For``,
``Forwarded`` and every other header are ignored on purpose. A missing or
unparseable peer falls back to the single ``unknown`` bucket.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from edgecore.config import RateLimitPolicy
from edgecore.config.sections import PublicAntiAbuseSettings
from public_rest.classifier import (
    BROWSER_ASSET,
    BROWSER_BOOTSTRAP,
    CONFIRM_EMAIL_CODE_PATH,
    HEALTHZ_PATH,
    PUBLIC_AUTH,
    PUBLIC_MISC,
    READYZ_PATH,
    ROUTE_CLASSES,
    SEND_EMAIL_CODE_PATH,
    RouteClass,
    class_namespace,
)
from public_rest.ratelimit import Decision, RateLimiter

__all__ = [
    "BROWSER_METHODS",
    "CONFIRM_IDENTITY_SCOPE",
    "ROUTE_METHODS",
    "SEND_IDENTITY_SCOPE",
    "UNKNOWN_IP",
    "ClassPolicy",
    "PublicPolicy",
    "ip_scope",
    "peer_ip",
]

UNKNOWN_IP: Final = "unknown"
BROWSER_METHODS: Final = ("GET", "HEAD")
# The fixed public routes and their methods (the auth routes accept POST only).
ROUTE_METHODS: Final[Mapping[str, tuple[str, ...]]] = {
    HEALTHZ_PATH: ("GET",),
    READYZ_PATH: ("GET",),
    SEND_EMAIL_CODE_PATH: ("POST",),
    CONFIRM_EMAIL_CODE_PATH: ("POST",),
}
SEND_IDENTITY_SCOPE: Final = f"{class_namespace(PUBLIC_AUTH)}/email"
CONFIRM_IDENTITY_SCOPE: Final = f"{class_namespace(PUBLIC_AUTH)}/challenge"


def ip_scope(route_class: RouteClass) -> str:
    return f"{class_namespace(route_class)}/ip"


def peer_ip(client: object) -> str:
    """The TCP peer's address from the ASGI ``client`` tuple, canonical form."""
    if not isinstance(client, tuple | list) or not client or not isinstance(client[0], str):
        return UNKNOWN_IP
    return _canonical_ip(client[0])


@functools.lru_cache(maxsize=4096)
def _canonical_ip(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return UNKNOWN_IP
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@dataclass(frozen=True, slots=True)
class ClassPolicy:
    route_class: RouteClass
    rate: RateLimitPolicy
    max_body_bytes: int
    ip_scope: str


class PublicPolicy:
    def __init__(self, settings: PublicAntiAbuseSettings, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.classes: dict[RouteClass, ClassPolicy] = {
            cls: ClassPolicy(
                route_class=cls,
                rate=settings.class_policy(cls),
                max_body_bytes=settings.class_max_body_bytes(cls),
                ip_scope=ip_scope(cls),
            )
            for cls in ROUTE_CLASSES
        }
        self.send_identity = settings.send_email_code_identity
        self.confirm_identity = settings.confirm_email_code_identity

    def for_class(self, route_class: RouteClass) -> ClassPolicy:
        return self.classes[route_class]

    @staticmethod
    def allowed_methods(route_class: RouteClass, path: str) -> tuple[str, ...] | None:
        """The method allow-list of a request, or None for an unknown public_misc path."""
        if route_class in (BROWSER_BOOTSTRAP, BROWSER_ASSET):
            return BROWSER_METHODS
        if route_class == PUBLIC_AUTH:
            return ("POST",)
        if route_class == PUBLIC_MISC:
            return ROUTE_METHODS.get(path)
        return None

    def check_ip(self, route_class: RouteClass, ip: str) -> Decision:
        policy = self.classes[route_class]
        return self.limiter.allow(policy.ip_scope, ip, policy.rate)

    def check_send_identity(self, email_identity: str) -> Decision:
        return self.limiter.allow(SEND_IDENTITY_SCOPE, email_identity, self.send_identity)

    def check_confirm_identity(self, challenge_id: str) -> Decision:
        return self.limiter.allow(CONFIRM_IDENTITY_SCOPE, challenge_id, self.confirm_identity)
