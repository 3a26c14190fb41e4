"""SessionCache: the in-process LRU + TTL store in front of every authenticated request.

* A hit serves the hot path without I/O (existence, user id, decoded public
  key, status).
* A miss asks the ``SessionSource`` (the backend's session lookup) once:
  concurrent misses for one id share that single call.
* Unknown ids are remembered for ``negative_ttl`` so a flood of random ids
  cannot become a flood of backend calls; a caller may also pass
  ``admit_lookup``, asked before each new backend call (the pipeline's
  per-peer budget of misses), which refuses with ``SessionLookupRefusedError``.
* Session-events snapshots (``apply``) replace entries at once, revocations
  included, so revoked sessions are rejected at the edge without a backend
  round trip; the TTL is the safety net for a missed event.
* Source failures are ``SessionCacheUnavailableError`` (UNAVAILABLE).

The public key is decoded once per entry; a malformed key is kept as
``public_key=None`` for the pipeline to fail closed on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Protocol

from edgecore.sessions import SessionRecord
from edgecore.signing import ED25519_PUBLIC_KEY_SIZE

__all__ = [
    "CachedSession",
    "InProcessSessionCache",
    "SessionCache",
    "SessionCacheUnavailableError",
    "SessionLookupRefusedError",
    "SessionSource",
    "decode_public_key",
]

_NEGATIVE_MAX: Final = 50_000


class SessionCacheUnavailableError(Exception):
    """The session could not be resolved (backend down, bad answer): fail closed."""


class SessionLookupRefusedError(Exception):
    """A miss that would have asked the backend, refused by the caller's ``admit_lookup``."""


@dataclass(frozen=True, slots=True)
class CachedSession:
    record: SessionRecord
    public_key: bytes | None

    @classmethod
    def of(cls, record: SessionRecord) -> CachedSession:
        return cls(record, decode_public_key(record.client_public_key))


def decode_public_key(text: str) -> bytes | None:
    """Standard base64 of exactly 32 bytes, else None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == ED25519_PUBLIC_KEY_SIZE else None


class SessionSource(Protocol):
    async def get_session(self, device_session_id: str) -> SessionRecord | None: ...


class SessionCache(Protocol):
    async def get(
        self, device_session_id: str, *, admit_lookup: Callable[[], bool] | None = None
    ) -> CachedSession | None:
        """The session, None when unknown; raises SessionCacheUnavailableError, and
        SessionLookupRefusedError when a backend call was needed and ``admit_lookup``
        said no (hits, remembered unknowns and joined lookups never ask it)."""
        ...


class InProcessSessionCache:
    def __init__(
        self,
        source: SessionSource | None,
        *,
        max_entries: int,
        ttl: timedelta,
        negative_ttl: timedelta,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._max_entries = max_entries
        self._ttl = ttl.total_seconds()
        self._negative_ttl = negative_ttl.total_seconds()
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, CachedSession]] = OrderedDict()
        self._negative: OrderedDict[str, float] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[CachedSession | None]] = {}
        self.lookups = 0  # backend calls made (tests assert it)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self, device_session_id: str, *, admit_lookup: Callable[[], bool] | None = None
    ) -> CachedSession | None:
        now = self._clock()
        hit = self._entries.get(device_session_id)
        if hit is not None:
            if hit[0] > now:
                self._entries.move_to_end(device_session_id)
                return hit[1]
            del self._entries[device_session_id]
        unknown_until = self._negative.get(device_session_id)
        if unknown_until is not None:
            if unknown_until > now:
                return None
            del self._negative[device_session_id]
        pending = self._inflight.get(device_session_id)
        if pending is None:
            if admit_lookup is not None and not admit_lookup():
                raise SessionLookupRefusedError
            pending = asyncio.get_running_loop().create_future()
            self._inflight[device_session_id] = pending
            asyncio.get_running_loop().create_task(self._load(device_session_id, pending))
        # shield: one caller cancelling must not cancel the shared lookup.
        return await asyncio.shield(pending)

    async def _load(
        self, device_session_id: str, pending: asyncio.Future[CachedSession | None]
    ) -> None:
        try:
            if self._source is None:
                raise SessionCacheUnavailableError("no session source is configured")
            self.lookups += 1
            try:
                record = await self._source.get_session(device_session_id)
            except SessionCacheUnavailableError:
                raise
            except Exception as exc:
                raise SessionCacheUnavailableError(type(exc).__name__) from None
            if record is None:
                self._remember_unknown(device_session_id)
                result = None
            elif device_session_id in self._entries:
                # A stream snapshot landed while we were asking: it is at least as fresh.
                result = self._entries[device_session_id][1]
            else:
                result = self._store(record)
            pending.set_result(result)
        except BaseException as exc:
            pending.set_exception(exc)
            # Mark retrieved so an exception nobody awaited is not logged as lost.
            pending.exception()
        finally:
            self._inflight.pop(device_session_id, None)

    def apply(self, record: SessionRecord) -> CachedSession:
        """Apply a session-events snapshot (a new session, an update or a revocation)."""
        self._negative.pop(record.device_session_id, None)
        return self._store(record)

    def _store(self, record: SessionRecord) -> CachedSession:
        cached = CachedSession.of(record)
        self._entries[record.device_session_id] = (self._clock() + self._ttl, cached)
        self._entries.move_to_end(record.device_session_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return cached

    def _remember_unknown(self, device_session_id: str) -> None:
        self._negative[device_session_id] = self._clock() + self._negative_ttl
        self._negative.move_to_end(device_session_id)
        while len(self._negative) > _NEGATIVE_MAX:
            self._negative.popitem(last=False)
