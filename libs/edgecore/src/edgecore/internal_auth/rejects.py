"""Every rejection of the internal-route verifier: log reason, HTTP status, JSON code, message.

The JSON body is ``{"error": {"code": <code>, "message": <message>}}`` (the
edge's REST error shape, docs/errors.md). Codes reuse the edge catalog's
names where the meaning is the same. ``reason`` is the stable label of the
log line; several reasons share a public code on purpose.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["InternalAuthReject", "RejectSpec"]


@dataclass(frozen=True, slots=True)
class RejectSpec:
    reason: str
    status: int
    code: str
    message: str


class InternalAuthReject(enum.Enum):
    """In verification order: cheap header checks, body, signature, nonce last."""

    UNSIGNED = RejectSpec("unsigned", 401, "unauthenticated", "request is not signed")
    MISSING_REQUEST_ID = RejectSpec(
        "missing_request_id", 400, "invalid_request", "X-Request-Id header is required"
    )
    MALFORMED_HEADER = RejectSpec(
        "malformed_header", 400, "invalid_request", "a request header is malformed"
    )
    UNKNOWN_KEY_ID = RejectSpec("unknown_key_id", 401, "unauthenticated", "unknown key id")
    STALE_TIMESTAMP = RejectSpec(
        "stale_timestamp",
        401,
        "stale_request",
        "request timestamp is outside the replay window",
    )
    BODY_TOO_LARGE = RejectSpec(
        "body_too_large", 413, "request_too_large", "request body is too large"
    )
    UNSUPPORTED_MEDIA_TYPE = RejectSpec(
        "unsupported_media_type",
        415,
        "unsupported_media_type",
        "request Content-Type is not supported",
    )
    INVALID_SIGNATURE = RejectSpec(
        "invalid_signature", 401, "invalid_signature", "invalid request signature"
    )
    REPLAYED_NONCE = RejectSpec("replayed_nonce", 409, "replay_detected", "request replay detected")
    NONCE_STORE_UNAVAILABLE = RejectSpec(
        "nonce_store_unavailable", 503, "service_unavailable", "service is unavailable"
    )

    @property
    def spec(self) -> RejectSpec:
        value: RejectSpec = self.value
        return value
