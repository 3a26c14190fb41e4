"""Transport peer address -> the IP used for per-IP rate limits (never forwarded headers)."""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = ["UNKNOWN_PEER", "peer_ip_from_grpc"]

UNKNOWN_PEER: Final = "unknown"


def peer_ip_from_grpc(peer: str | None) -> str:
    """``ipv4:1.2.3.4:5678`` / ``ipv6:[::1]:5678`` -> the canonical IP; anything else -> unknown."""
    if not peer:
        return UNKNOWN_PEER
    scheme, _, rest = peer.partition(":")
    if scheme == "ipv4":
        host = rest.rpartition(":")[0]
    elif scheme == "ipv6":
        host = rest.rpartition(":")[0].strip("[]")
        host = host.split("%", 1)[0]  # zone ids carry no identity
    else:
        return UNKNOWN_PEER
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return UNKNOWN_PEER
