"""Errors raised by the client SDK.

Every error the SDK raises on purpose derives from :class:`EdgeClientError`,
so a caller (and ``edgectl``) can catch one base class. ``str(error)`` is
always a single line that is safe to show to a user.
"""

from __future__ import annotations

__all__ = [
    "BusinessError",
    "EdgeClientError",
    "EventHistoryGoneError",
    "EventVerificationError",
    "GatewayError",
    "ProfileError",
    "PublicApiError",
    "RequestEncodingError",
    "ResponseVerificationError",
    "UnknownMessageTypeError",
    "VerificationError",
]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def parse_retry_after(value: object) -> int | None:
    """A ``retry-after`` value in whole seconds (the gateway's REST 429 header and gRPC
    rate-limit metadata both send them); anything else, an HTTP date included, is None."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


class EdgeClientError(Exception):
    """Base class of every error the SDK raises on purpose."""


class PublicApiError(EdgeClientError):
    """The public REST surface refused a request (or could not be reached).

    ``status`` is the HTTP status, or 0 when no HTTP answer arrived (connection
    refused, timeout); ``code`` and ``message`` come from the
    ``{"error": {"code", "message"}}`` body when there is one; ``retry_after``
    is the seconds of a 429's ``Retry-After``.
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after: int | None = None
    ) -> None:
        self.status = status
        self.code = code
        self.message = _one_line(message)
        self.retry_after = retry_after
        where = f"HTTP {status}" if status else "no HTTP answer"
        wait = f" (retry in {retry_after} s)" if retry_after is not None else ""
        super().__init__(f"public API error ({where}) {code}: {self.message}{wait}")


class GatewayError(EdgeClientError):
    """A call ended with a gRPC status other than OK.

    ``code_name`` is the gRPC status name (``UNAUTHENTICATED``,
    ``FAILED_PRECONDITION``, ...), ``message`` its details, for example
    ``device session is revoked``.
    """

    def __init__(self, code_name: str, message: str, retry_after: int | None = None) -> None:
        self.code_name = code_name
        self.message = _one_line(message)
        self.retry_after = retry_after
        wait = f" (retry in {retry_after} s)" if retry_after is not None else ""
        super().__init__(f"gateway error {code_name}: {self.message}{wait}")

    @property
    def permanent(self) -> bool:
        """Whether a new request or stream cannot fix it: a revoked or unknown session,
        a bad signature or clock, a refused or unrouted call, malformed subscribe options,
        a resume position the event history no longer covers (OUT_OF_RANGE,
        :class:`EventHistoryGoneError`). UNAVAILABLE (a draining gateway, Redis or the
        event history away), RESOURCE_EXHAUSTED (an overflow, a rate limit), UNAUTHENTICATED
        "session lookup rate limit exceeded" (this address's lookups, not the session)
        and the rest are worth retrying after a backoff."""
        if self.message in _RETRYABLE_MESSAGES:
            return False
        return self.code_name in _PERMANENT_CODES


_RETRYABLE_MESSAGES = frozenset({"session lookup rate limit exceeded"})

_PERMANENT_CODES = frozenset(
    {
        "INVALID_ARGUMENT",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
    }
)


class EventHistoryGoneError(GatewayError):
    """SubscribeEvents ended with OUT_OF_RANGE "resume position is older than the event
    history": the gateway no longer holds every event after ``resume_position`` (it was
    trimmed or expired, or Redis lost its data), so no stream can deliver what was missed.

    Permanent for that position: refetch the state the events would have updated, then
    subscribe again without a resume position. Raised when a stream is opened with a
    position the history no longer covers, and when a live stream learns its history is
    gone. ``resume_position`` is the position the stream resumed from (or the last one
    :meth:`EdgeClient.follow` had when a live stream ended), None when unknown.
    """

    def __init__(
        self,
        code_name: str,
        message: str,
        retry_after: int | None = None,
        *,
        resume_position: str | None = None,
    ) -> None:
        super().__init__(code_name, message, retry_after)
        self.resume_position = resume_position

    @property
    def permanent(self) -> bool:
        return True


class VerificationError(EdgeClientError):
    """Something the gateway sent failed verification; it is never returned as data."""

    def __init__(self, reason: str) -> None:
        self.reason = _one_line(reason)
        super().__init__(self.reason)


class ResponseVerificationError(VerificationError):
    """An ExecuteCommandResponse failed verification (signature, hash, request_id, version)."""


class EventVerificationError(VerificationError):
    """A GatewayEvent failed verification, or the stream broke its bootstrap contract."""


class BusinessError(EdgeClientError):
    """A verified response whose ``result_code`` is not ``ok``.

    ``code`` and ``message`` are the ``gateway.ErrorResponse`` payload that
    mirrors the downstream service's business error.
    """

    def __init__(self, result_code: str, code: str, message: str) -> None:
        self.result_code = result_code
        self.code = code
        self.message = _one_line(message)
        label = result_code if code == result_code else f"{result_code} ({code})"
        super().__init__(
            f"business error {label}: {self.message}" if self.message else f"business error {label}"
        )


class UnknownMessageTypeError(EdgeClientError, ValueError):
    """The message type is not in the v1 catalogue, so it has no FlatBuffers tables."""

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type
        super().__init__(f"unknown message type {message_type!r}")


class ProfileError(EdgeClientError):
    """A profile is missing, malformed or incomplete for the requested operation."""


class RequestEncodingError(EdgeClientError, ValueError):
    """A JSON request body does not fit the message type's FlatBuffers request table."""
