"""Steps 1-9 of the authenticated ingress pipeline, shared by edge-grpc and push-hub.

Envelope fields and the peer address go in; a ``VerifiedRequest`` or an
``EdgeError`` comes out, in the specification's order:

1. envelope fields        -> INVALID_ARGUMENT
2. protocol_version "v1"  -> FAILED_PRECONDITION
3. session lookup         -> UNAVAILABLE "session cache is unavailable"; a miss over the
                             peer IP's lookup budget -> UNAUTHENTICATED (added here)
4. unknown / revoked      -> UNAUTHENTICATED / FAILED_PRECONDITION
5. payload_hash           -> INVALID_ARGUMENT (two messages)
6. Ed25519 signature      -> UNAUTHENTICATED (malformed cached key: UNAVAILABLE)
7. freshness window       -> FAILED_PRECONDITION
8. replay reservation     -> FAILED_PRECONDITION / UNAVAILABLE (fail closed); a request
                             signed before the replay floor (Redis lost its data) is stale
9. rate limits, policy    -> RESOURCE_EXHAUSTED / PERMISSION_DENIED

Nothing here imports a transport, so Connect or gRPC-Web fronts reuse it as is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from edgecore.catalog import PROTOCOL_VERSION
from edgecore.clock import wall_clock_ms
from edgecore.config.sections import AuthenticatedAntiAbuseSettings, RateLimitPolicy
from edgecore.downstream import AuthenticatedCommand
from edgecore.errors import EdgeError, Reject
from edgecore.pipeline.envelope import Envelope, validate_envelope
from edgecore.ratelimit import RateLimiter
from edgecore.replay import ReplayStoreUnavailableError, Reservation
from edgecore.session_cache import (
    CachedSession,
    SessionCache,
    SessionCacheUnavailableError,
    SessionLookupRefusedError,
)
from edgecore.signing import PAYLOAD_HASH_SIZE, payload_hash_matches, request_signing_input
from edgecore.signing import verify_signature as ed25519_verify

__all__ = [
    "AllowAllPolicy",
    "PolicyHook",
    "ReplayStore",
    "VerificationPipeline",
    "VerifiedRequest",
    "wall_clock_ms",
]


class ReplayStore(Protocol):
    async def reserve(self, device_session_id: str, request_id: str, ttl: timedelta) -> Reservation:
        """Whether this is the pair's first use, and the replay floor (``edgecore.replay``);
        raises ReplayStoreUnavailableError."""
        ...


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    envelope: Envelope
    session: CachedSession
    peer_ip: str

    @property
    def user_id(self) -> str:
        return self.session.record.user_id

    def command(self) -> AuthenticatedCommand:
        """Step 10: the internal authenticated context, the only thing a downstream sees."""
        envelope = self.envelope
        return AuthenticatedCommand(
            user_id=self.session.record.user_id,
            device_session_id=envelope.device_session_id,
            message_type=envelope.message_type,
            payload=envelope.payload,
            request_id=envelope.request_id,
            trace_id=envelope.trace_id or None,
            client_metadata=self.session.record.client_metadata,
        )


class PolicyHook(Protocol):
    async def allows(self, request: VerifiedRequest) -> bool: ...


class AllowAllPolicy:
    """The default edge policy until a concrete evaluator is wired in."""

    async def allows(self, request: VerifiedRequest) -> bool:
        return True


class VerificationPipeline:
    def __init__(
        self,
        *,
        sessions: SessionCache,
        replay: ReplayStore,
        limiter: RateLimiter,
        anti_abuse: AuthenticatedAntiAbuseSettings,
        freshness_window: timedelta,
        policy: PolicyHook | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._sessions = sessions
        self._replay = replay
        self._limiter = limiter
        self._policy = policy or AllowAllPolicy()
        self._clock_ms = clock_ms
        self._window_ms = int(freshness_window.total_seconds() * 1000)
        self._limits: tuple[tuple[str, RateLimitPolicy], ...] = (
            ("ip", anti_abuse.policy("ip")),
            ("session", anti_abuse.policy("session")),
            ("user", anti_abuse.policy("user")),
            ("message_class", anti_abuse.policy("message_class")),
        )
        self._lookup_limit = anti_abuse.policy("session_lookup")

    async def verify(
        self, envelope: Envelope, peer_ip: str, *, expected_message_type: str | None = None
    ) -> VerifiedRequest:
        validate_envelope(envelope, expected_message_type=expected_message_type)  # 1
        if envelope.protocol_version != PROTOCOL_VERSION:  # 2
            raise EdgeError(Reject.UNSUPPORTED_PROTOCOL)
        session = await self._session(envelope.device_session_id, peer_ip)  # 3, 4
        self._check_payload_and_signature(envelope, session)  # 5, 6
        await self._check_freshness_and_reserve(envelope)  # 7, 8
        self._apply_rate_limits(envelope, session, peer_ip)  # 9
        verified = VerifiedRequest(envelope, session, peer_ip)
        if not await self._policy.allows(verified):
            raise EdgeError(Reject.POLICY_DENIED)
        return verified

    async def _session(self, device_session_id: str, peer_ip: str) -> CachedSession:
        def admit_lookup() -> bool:
            # Only misses that would reach the backend spend it: legitimate traffic,
            # served from the cache, keeps the spec's step order untouched.
            key = f"authenticated_grpc/session_lookup_ip={peer_ip}"
            return self._limiter.acquire(key, self._lookup_limit) <= 0

        try:
            session = await self._sessions.get(device_session_id, admit_lookup=admit_lookup)
        except SessionCacheUnavailableError:
            raise EdgeError(Reject.SESSION_CACHE_UNAVAILABLE) from None
        except SessionLookupRefusedError:
            raise EdgeError(Reject.SESSION_LOOKUP_LIMITED) from None
        if session is None:
            raise EdgeError(Reject.UNKNOWN_SESSION)
        if session.record.revoked:
            raise EdgeError(Reject.REVOKED_SESSION)
        return session

    @staticmethod
    def _check_payload_and_signature(envelope: Envelope, session: CachedSession) -> None:
        if len(envelope.payload_hash) != PAYLOAD_HASH_SIZE:
            raise EdgeError(Reject.INVALID_PAYLOAD_HASH)
        if not payload_hash_matches(envelope.payload, envelope.payload_hash):
            raise EdgeError(Reject.PAYLOAD_HASH_MISMATCH)
        if session.public_key is None:
            # A malformed cached key is the cache's fault, not the client's: fail closed.
            raise EdgeError(Reject.SESSION_CACHE_UNAVAILABLE)
        signing_input = request_signing_input(
            protocol_version=envelope.protocol_version,
            device_session_id=envelope.device_session_id,
            message_type=envelope.message_type,
            timestamp_ms=envelope.timestamp_ms,
            request_id=envelope.request_id,
            payload_hash=envelope.payload_hash,
        )
        if not ed25519_verify(session.public_key, signing_input, envelope.signature):
            raise EdgeError(Reject.INVALID_SIGNATURE)

    async def _check_freshness_and_reserve(self, envelope: Envelope) -> None:
        now_ms = self._clock_ms()
        if abs(now_ms - envelope.timestamp_ms) > self._window_ms:
            raise EdgeError(Reject.STALE_REQUEST)
        ttl = timedelta(milliseconds=envelope.timestamp_ms + self._window_ms - now_ms)
        try:
            reservation = await self._replay.reserve(
                envelope.device_session_id, envelope.request_id, ttl
            )
        except ReplayStoreUnavailableError:
            raise EdgeError(Reject.REPLAY_STORE_UNAVAILABLE) from None
        if envelope.timestamp_ms < reservation.floor_ms:
            # Signed before Redis lost its data: it may have been reserved in what was lost.
            raise EdgeError(Reject.STALE_REQUEST)
        if not reservation.first_use:
            raise EdgeError(Reject.REPLAY_DETECTED)

    def _apply_rate_limits(self, envelope: Envelope, session: CachedSession, peer_ip: str) -> None:
        keys = (peer_ip, envelope.device_session_id, session.record.user_id, envelope.message_type)
        for (dimension, limit), value in zip(self._limits, keys, strict=True):
            wait = self._limiter.acquire(f"authenticated_grpc/{dimension}={value}", limit)
            if wait > 0:
                raise EdgeError(Reject.RATE_LIMITED, retry_after=max(1, math.ceil(wait)))
