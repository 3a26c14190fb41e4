"""Transport peer address -> the IP used for per-IP rate limits (never forwarded headers).

The address is the ASGI server's ``client`` (the TCP peer Envoy accepted), never
X-Forwarded-For or any other header a client can write.
"""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = ["UNKNOWN_PEER", "PeerIpCache", "peer_ip_from_address"]

UNKNOWN_PEER: Final = "unknown"
_PEER_CACHE_MAX: Final = 4096


def peer_ip_from_address(address: str | None) -> str:
    """``1.2.3.4:5678`` / ``::1:5678`` (the ASGI server's client host and port) -> the IP."""
    if not address:
        return UNKNOWN_PEER
    host = address.rpartition(":")[0].strip("[]").split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return UNKNOWN_PEER
    # A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: one client, one budget.
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return str(mapped or ip)


class PeerIpCache:
    """A bounded memo of ``peer_ip_from_address``: parsing per request is measurable on
    the hot path, a dict lookup for connected peers is not."""

    __slots__ = ("_ips",)

    def __init__(self) -> None:
        self._ips: dict[str | None, str] = {}

    def __call__(self, address: str | None) -> str:
        ip = self._ips.get(address)
        if ip is None:
            ip = peer_ip_from_address(address)
            if len(self._ips) >= _PEER_CACHE_MAX:
                self._ips.clear()
            self._ips[address] = ip
        return ip
