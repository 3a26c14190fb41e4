"""The edge error catalog: every reject's gRPC code and message, REST status and code.

One place that every service uses, so the wire contract cannot drift between
transports. The gRPC codes are mirrored as an enum rather than imported from
grpcio so that pure logic (the verification pipeline) stays transport-free;
the gRPC adapters map ``GrpcCode.X`` to ``grpc.StatusCode.X`` by name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = ["CATALOG", "EdgeError", "ErrorSpec", "GrpcCode", "Reject"]


class GrpcCode(enum.IntEnum):
    """Canonical gRPC status codes (same names and numbers as grpc.StatusCode)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """How one reject reason appears on each surface.

    ``reason`` is the stable label used in metrics and audit logs.
    ``rest_message`` is set where the REST wording must differ from gRPC's.
    """

    reason: str
    grpc_code: GrpcCode
    message: str
    http_status: int
    rest_code: str
    rest_message: str | None = None

    @property
    def public_message(self) -> str:
        return self.rest_message or self.message


class Reject(enum.Enum):
    """Every edge reject. The order of the pipeline steps is the order of the checks."""

    MALFORMED_REQUEST = ErrorSpec(
        "malformed_request",
        GrpcCode.INVALID_ARGUMENT,
        "request envelope is malformed",
        400,
        "invalid_request",
        "request is malformed",
    )
    REQUEST_TOO_LARGE = ErrorSpec(
        "request_too_large",
        GrpcCode.RESOURCE_EXHAUSTED,
        "request is too large",
        413,
        "request_too_large",
    )
    UNSUPPORTED_PROTOCOL = ErrorSpec(
        "unsupported_protocol",
        GrpcCode.FAILED_PRECONDITION,
        "unsupported protocol_version",
        400,
        "unsupported_protocol",
    )
    UNKNOWN_SESSION = ErrorSpec(
        "unknown_session",
        GrpcCode.UNAUTHENTICATED,
        "unknown device session",
        401,
        "unauthenticated",
    )
    # Added here (issue 17): a peer IP over its budget of session lookups that missed
    # the cache. UNAUTHENTICATED like an unknown session, but its own message: a client
    # behind the same address must retry later, not throw its session away.
    SESSION_LOOKUP_LIMITED = ErrorSpec(
        "session_lookup_limited",
        GrpcCode.UNAUTHENTICATED,
        "session lookup rate limit exceeded",
        401,
        "unauthenticated",
    )
    REVOKED_SESSION = ErrorSpec(
        "revoked_session",
        GrpcCode.FAILED_PRECONDITION,
        "device session is revoked",
        401,
        "session_revoked",
    )
    SESSION_CACHE_UNAVAILABLE = ErrorSpec(
        "session_cache_unavailable",
        GrpcCode.UNAVAILABLE,
        "session cache is unavailable",
        503,
        "service_unavailable",
        "service is unavailable",
    )
    INVALID_PAYLOAD_HASH = ErrorSpec(
        "invalid_payload_hash",
        GrpcCode.INVALID_ARGUMENT,
        "payload_hash must be a 32-byte SHA-256 digest",
        400,
        "invalid_request",
    )
    PAYLOAD_HASH_MISMATCH = ErrorSpec(
        "payload_hash_mismatch",
        GrpcCode.INVALID_ARGUMENT,
        "payload_hash does not match payload_bytes",
        400,
        "invalid_request",
    )
    INVALID_SIGNATURE = ErrorSpec(
        "invalid_signature",
        GrpcCode.UNAUTHENTICATED,
        "invalid request signature",
        401,
        "invalid_signature",
    )
    STALE_REQUEST = ErrorSpec(
        "stale_request",
        GrpcCode.FAILED_PRECONDITION,
        "request timestamp is outside the freshness window",
        400,
        "stale_request",
    )
    REPLAY_DETECTED = ErrorSpec(
        "replay_detected",
        GrpcCode.FAILED_PRECONDITION,
        "request replay detected",
        409,
        "replay_detected",
    )
    REPLAY_STORE_UNAVAILABLE = ErrorSpec(
        "replay_store_unavailable",
        GrpcCode.UNAVAILABLE,
        "replay store is unavailable",
        503,
        "service_unavailable",
        "service is unavailable",
    )
    RATE_LIMITED = ErrorSpec(
        "rate_limited",
        GrpcCode.RESOURCE_EXHAUSTED,
        "authenticated request rate limit exceeded",
        429,
        "rate_limited",
        "rate limit exceeded",
    )
    POLICY_DENIED = ErrorSpec(
        "policy_denied",
        GrpcCode.PERMISSION_DENIED,
        "request denied by edge policy",
        403,
        "forbidden",
    )
    ROUTE_NOT_FOUND = ErrorSpec(
        "route_not_found",
        GrpcCode.UNIMPLEMENTED,
        "message_type is not routed",
        404,
        "not_found",
        "route not found",
    )
    METHOD_NOT_ALLOWED = ErrorSpec(
        "method_not_allowed",
        GrpcCode.UNIMPLEMENTED,
        "method is not allowed",
        405,
        "method_not_allowed",
    )
    DOWNSTREAM_UNAVAILABLE = ErrorSpec(
        "downstream_unavailable",
        GrpcCode.UNAVAILABLE,
        "downstream service is unavailable",
        503,
        "service_unavailable",
        "service is unavailable",
    )
    BACKEND_UNAVAILABLE = ErrorSpec(
        "backend_unavailable",
        GrpcCode.UNAVAILABLE,
        "backend service is unavailable",
        503,
        "service_unavailable",
        "service is unavailable",
    )
    SHUTTING_DOWN = ErrorSpec(
        "shutting_down",
        GrpcCode.UNAVAILABLE,
        "gateway is shutting down",
        503,
        "service_unavailable",
        "service is unavailable",
    )
    PUSH_STREAM_OVERFLOWED = ErrorSpec(
        "push_stream_overflowed",
        GrpcCode.RESOURCE_EXHAUSTED,
        "push stream overflowed",
        503,
        "service_unavailable",
        "service is unavailable",
    )
    # Resumable streams (added by this project; docs/event-streams.md).
    INVALID_SUBSCRIBE_OPTIONS = ErrorSpec(
        "invalid_subscribe_options",
        GrpcCode.INVALID_ARGUMENT,
        "subscribe options are malformed",
        400,
        "invalid_request",
        "request is malformed",
    )
    EVENT_HISTORY_GONE = ErrorSpec(
        "event_history_gone",
        GrpcCode.OUT_OF_RANGE,
        "resume position is older than the event history",
        410,
        "event_history_gone",
    )
    EVENT_HISTORY_UNAVAILABLE = ErrorSpec(
        "event_history_unavailable",
        GrpcCode.UNAVAILABLE,
        "event history is unavailable",
        503,
        "service_unavailable",
        "service is unavailable",
    )
    INTERNAL_ERROR = ErrorSpec(
        "internal_error",
        GrpcCode.INTERNAL,
        "internal error",
        500,
        "internal_error",
    )

    @property
    def spec(self) -> ErrorSpec:
        value: ErrorSpec = self.value
        return value


CATALOG: Final = tuple(reject.spec for reject in Reject)


class EdgeError(Exception):
    """A reject raised by edge logic; transports render it from the catalog.

    ``message`` may narrow the catalog message only for MALFORMED_REQUEST (the
    field at fault); every other reject carries the catalog text verbatim.
    ``retry_after`` (whole seconds, at least 1) only rides on RATE_LIMITED:
    transports send it as a ``retry-after`` header beside the status, the way
    public REST's 429 carries ``Retry-After``.
    """

    __slots__ = ("message", "reject", "retry_after")

    def __init__(
        self, reject: Reject, message: str | None = None, *, retry_after: int | None = None
    ) -> None:
        if message is not None and reject is not Reject.MALFORMED_REQUEST:
            raise ValueError("only MALFORMED_REQUEST carries a specific message")
        if retry_after is not None and (reject is not Reject.RATE_LIMITED or retry_after < 1):
            raise ValueError("only RATE_LIMITED carries retry_after, of at least 1 second")
        self.reject = reject
        self.message = message or reject.spec.message
        self.retry_after = retry_after
        super().__init__(self.message)

    @property
    def grpc_code(self) -> GrpcCode:
        return self.reject.spec.grpc_code

    @property
    def reason(self) -> str:
        return self.reject.spec.reason
