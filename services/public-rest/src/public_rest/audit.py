"""Security audit events for repeated failures from one peer.

Every reject is counted per (route class, signal, peer IP) over a sliding-ish
window (the count restarts when the window since the first failure has passed).
When a count reaches ``first_threshold`` and then every doubling (5, 10, 20,
40, ...), one structured WARNING line goes to the ``public_rest.audit`` logger
and ``gateway.public_http.abuse_events`` is incremented, so a flood produces a
logarithmic number of lines rather than one per request. The line carries the
class, the signal, the peer IP, the count and the window; never an e-mail
address, a code, a challenge id or a key. Memory is bounded by ``max_peers``
(least recently seen entries are dropped first).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

__all__ = ["AUDIT_LOGGER", "FailureTracker"]

AUDIT_LOGGER: Final = "public_rest.audit"
_log = logging.getLogger(AUDIT_LOGGER)


class _Entry:
    __slots__ = ("count", "next_threshold", "started")

    def __init__(self, started: float, first_threshold: int) -> None:
        self.started = started
        self.count = 0
        self.next_threshold = first_threshold


class FailureTracker:
    def __init__(
        self,
        *,
        window_seconds: float = 600.0,
        first_threshold: int = 5,
        max_peers: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        self._window = window_seconds
        self._first = first_threshold
        self._max = max_peers
        self._clock = clock
        self._on_event = on_event
        self._entries: OrderedDict[tuple[str, str, str], _Entry] = OrderedDict()

    def record(self, route_class: str, signal: str, peer_ip: str) -> bool:
        """Count one failure; True when this one crossed a threshold (and was logged)."""
        now = self._clock()
        key = (route_class, signal, peer_ip)
        entry = self._entries.get(key)
        if entry is None or now - entry.started > self._window:
            if entry is None and len(self._entries) >= self._max:
                self._entries.popitem(last=False)
            entry = _Entry(now, self._first)
            self._entries[key] = entry
        self._entries.move_to_end(key)
        entry.count += 1
        if entry.count < entry.next_threshold:
            return False
        entry.next_threshold *= 2
        _log.warning(
            "repeated public request failures",
            extra={
                "event": "security_audit",
                "route_class": route_class,
                "signal": signal,
                "peer_ip": peer_ip,
                "failures": entry.count,
                "window_seconds": int(self._window),
            },
        )
        if self._on_event is not None:
            self._on_event(route_class, signal)
        return True

    def __len__(self) -> int:
        return len(self._entries)
