"""Building signed request envelopes and verifying signed responses and events.

Everything here is pure (no I/O), so it can be checked against
``contracts/signing-vectors-v1.json``. The canonical signing inputs come from
the public ``edgecore.signing`` module; docs/signing.md describes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from edgeclient.errors import EventVerificationError, ResponseVerificationError
from edgeclient.keys import DeviceKey
from edgecore.catalog import PROTOCOL_VERSION
from edgecore.event_positions import MAX_POSITION_BYTES
from edgecore.signing import (
    PAYLOAD_HASH_SIZE,
    event_signing_input,
    payload_hash,
    payload_hash_matches,
    request_signing_input,
    response_signing_input,
    verify_signature,
)

__all__ = [
    "CommandResult",
    "SignedRequest",
    "VerifiedEvent",
    "now_ms",
    "sign_request",
    "verify_event",
    "verify_response",
]


def now_ms() -> int:
    """The local wall clock in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The authentication fields shared by ExecuteCommandRequest and SubscribeEventsRequest."""

    protocol_version: str
    device_session_id: str
    message_type: str
    timestamp_ms: int
    request_id: str
    payload: bytes
    payload_hash: bytes
    signing_input: bytes
    signature: bytes

    def envelope_fields(self) -> dict[str, Any]:
        """Keyword arguments for either protobuf request message (trace_id excluded)."""
        return {
            "protocol_version": self.protocol_version,
            "device_session_id": self.device_session_id,
            "message_type": self.message_type,
            "timestamp_ms": self.timestamp_ms,
            "request_id": self.request_id,
            "payload_bytes": self.payload,
            "payload_hash": self.payload_hash,
            "signature": self.signature,
        }


def sign_request(
    key: DeviceKey,
    *,
    device_session_id: str,
    message_type: str,
    timestamp_ms: int,
    request_id: str,
    payload: bytes,
    protocol_version: str = PROTOCOL_VERSION,
) -> SignedRequest:
    """Hash the payload and sign the canonical request input with the device key."""
    digest = payload_hash(payload)
    signing_input = request_signing_input(
        protocol_version=protocol_version,
        device_session_id=device_session_id,
        message_type=message_type,
        timestamp_ms=timestamp_ms,
        request_id=request_id,
        payload_hash=digest,
    )
    return SignedRequest(
        protocol_version=protocol_version,
        device_session_id=device_session_id,
        message_type=message_type,
        timestamp_ms=timestamp_ms,
        request_id=request_id,
        payload=payload,
        payload_hash=digest,
        signing_input=signing_input,
        signature=key.sign(signing_input),
    )


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A verified ExecuteCommandResponse."""

    result_code: str
    payload: bytes
    request_id: str
    timestamp_ms: int

    @property
    def ok(self) -> bool:
        return self.result_code == "ok"


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """A verified GatewayEvent.

    ``position`` is the event's resume position: opaque text (at most 64 bytes) naming
    its place in the user's event history; on the ``gateway.server_time`` bootstrap it is
    where the stream starts. Hand the last one received to
    ``EdgeClient.subscribe(resume_position=...)`` (``follow`` does it on every reconnect)
    to get what was published in between. It is not covered by the event signature
    (galaxy-event-v1); empty when the gateway sent none.
    """

    event_type: str
    event_id: str
    timestamp_ms: int
    payload: bytes
    request_id: str = ""
    trace_id: str = ""
    position: str = ""


def _check_hash(payload: bytes, claimed: bytes) -> str | None:
    if len(claimed) != PAYLOAD_HASH_SIZE:
        return "payload_hash is not a 32-byte SHA-256 digest"
    if not payload_hash_matches(payload, claimed):
        return "payload_hash does not match payload_bytes"
    return None


def verify_response(
    response: Any, *, expected_request_id: str, server_public_key: bytes
) -> CommandResult:
    """Verify an ExecuteCommandResponse (or any object with its fields).

    Checks protocol_version, that request_id answers ``expected_request_id``,
    the payload hash and the Ed25519 signature over the canonical response
    input; raises :class:`ResponseVerificationError` on the first failure.
    """
    protocol_version = str(response.protocol_version)
    request_id = str(response.request_id)
    timestamp_ms = int(response.timestamp_ms)
    result_code = str(response.result_code)
    payload = bytes(response.payload_bytes)
    claimed_hash = bytes(response.payload_hash)
    signature = bytes(response.signature)

    def fail(reason: str) -> ResponseVerificationError:
        return ResponseVerificationError(f"response failed verification: {reason}")

    if protocol_version != PROTOCOL_VERSION:
        raise fail(f"protocol_version is {protocol_version!r}, expected {PROTOCOL_VERSION!r}")
    if request_id != expected_request_id:
        raise fail(f"request_id {request_id!r} does not answer request {expected_request_id!r}")
    problem = _check_hash(payload, claimed_hash)
    if problem:
        raise fail(problem)
    try:
        signing_input = response_signing_input(
            protocol_version=protocol_version,
            request_id=request_id,
            timestamp_ms=timestamp_ms,
            result_code=result_code,
            payload_hash=claimed_hash,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    if not verify_signature(server_public_key, signing_input, signature):
        raise fail("signature is not valid under the server public key")
    if not result_code:
        raise fail("result_code is empty")
    return CommandResult(
        result_code=result_code, payload=payload, request_id=request_id, timestamp_ms=timestamp_ms
    )


def verify_event(event: Any, *, server_public_key: bytes) -> VerifiedEvent:
    """Verify a GatewayEvent: payload hash and signature over the canonical event input.

    The resume ``position`` is not signed; it is passed through (at most 64 bytes).
    """
    event_type = str(event.event_type)
    event_id = str(event.event_id)
    timestamp_ms = int(event.timestamp_ms)
    request_id = str(event.request_id)
    trace_id = str(event.trace_id)
    payload = bytes(event.payload_bytes)
    claimed_hash = bytes(event.payload_hash)
    signature = bytes(event.signature)
    position = str(getattr(event, "position", ""))

    def fail(reason: str) -> EventVerificationError:
        label = event_type or "<no type>"
        return EventVerificationError(f"event {label} failed verification: {reason}")

    if not event_type:
        raise fail("event_type is empty")
    if not event_id:
        raise fail("event_id is empty")
    if len(position.encode("utf-8")) > MAX_POSITION_BYTES:
        raise fail(f"position is longer than {MAX_POSITION_BYTES} bytes")
    problem = _check_hash(payload, claimed_hash)
    if problem:
        raise fail(problem)
    try:
        signing_input = event_signing_input(
            event_type=event_type,
            event_id=event_id,
            timestamp_ms=timestamp_ms,
            request_id=request_id,
            trace_id=trace_id,
            payload_hash=claimed_hash,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    if not verify_signature(server_public_key, signing_input, signature):
        raise fail("signature is not valid under the server public key")
    return VerifiedEvent(
        event_type=event_type,
        event_id=event_id,
        timestamp_ms=timestamp_ms,
        payload=payload,
        request_id=request_id,
        trace_id=trace_id,
        position=position,
    )
