"""Step 1: the transport-free request envelope and its field validation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from edgecore.errors import EdgeError, Reject

__all__ = ["MAX_ID_BYTES", "Envelope", "validate_envelope"]

MAX_ID_BYTES: Final = 128
_MESSAGE_TYPE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Printable ASCII without spaces: ids travel in logs, Redis keys and headers.
_ID: Final = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass(frozen=True, slots=True)
class Envelope:
    """The authenticated request fields, as any transport front (gRPC, Connect) hands them in."""

    protocol_version: str
    device_session_id: str
    message_type: str
    timestamp_ms: int
    request_id: str
    payload: bytes
    payload_hash: bytes
    signature: bytes
    trace_id: str = ""

    def __repr__(self) -> str:
        # Payload, hash and signature never reach logs.
        return (
            f"Envelope(message_type={self.message_type!r}, request_id={self.request_id!r}, "
            f"device_session_id={self.device_session_id!r})"
        )


def _malformed(message: str) -> EdgeError:
    return EdgeError(Reject.MALFORMED_REQUEST, message)


def validate_envelope(envelope: Envelope, *, expected_message_type: str | None = None) -> None:
    """Check that every required field is present and well-formed (INVALID_ARGUMENT otherwise).

    Lengths of payload_hash and signature are checked by their own steps (5
    and 6) so they get the specification's dedicated messages.
    """
    if not envelope.protocol_version:
        raise _malformed("protocol_version must not be empty")
    if not envelope.device_session_id:
        raise _malformed("device_session_id must not be empty")
    if not _ID.fullmatch(envelope.device_session_id):
        raise _malformed("device_session_id is malformed")
    if not envelope.message_type:
        raise _malformed("message_type must not be empty")
    if not _MESSAGE_TYPE.fullmatch(envelope.message_type):
        raise _malformed("message_type is malformed")
    if expected_message_type is not None and envelope.message_type != expected_message_type:
        raise _malformed(f"message_type must be {expected_message_type}")
    if envelope.timestamp_ms <= 0:
        raise _malformed("timestamp_ms must be positive")
    if not envelope.request_id:
        raise _malformed("request_id must not be empty")
    if not _ID.fullmatch(envelope.request_id):
        raise _malformed("request_id is malformed")
    if not envelope.payload_hash:
        raise _malformed("payload_hash must not be empty")
    if not envelope.signature:
        raise _malformed("signature must not be empty")
    if envelope.trace_id and not _ID.fullmatch(envelope.trace_id):
        raise _malformed("trace_id is malformed")
