"""Feeding the SessionCache (and push-hub's revocations) from the session-events stream."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from edgecore.session_cache import InProcessSessionCache
from edgecore.sessions import SessionRecord
from edgecore.streams import MalformedEntry, decode_session_event

__all__ = ["SessionEventsHandler"]

_log = logging.getLogger("edgecore.session_events")


class SessionEventsHandler:
    """StreamTailer handler: apply each snapshot at once; count and log malformed entries."""

    def __init__(
        self,
        cache: InProcessSessionCache,
        *,
        on_drop: Callable[[str, str], None],
        on_revoked: Callable[[SessionRecord], None] | None = None,
    ) -> None:
        self._cache = cache
        self._on_drop = on_drop
        self._on_revoked = on_revoked

    def __call__(self, entry_id: str, fields: Mapping[bytes, bytes]) -> None:
        decoded = decode_session_event(entry_id, fields)
        if isinstance(decoded, MalformedEntry):
            _log.warning(
                "dropped malformed session event",
                extra={"entry_id": entry_id, "reason": decoded.reason, "stream": "session_events"},
            )
            self._on_drop("session_events", decoded.reason)
            return
        self._cache.apply(decoded.record)
        if decoded.record.revoked and self._on_revoked is not None:
            self._on_revoked(decoded.record)
