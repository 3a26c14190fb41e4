"""Canonical signing inputs and Ed25519 signatures of the v1 wire contract.

This module is public: clients in any language must build byte-for-byte the
same signing inputs, and ``contracts/signing-vectors-v1.json`` pins them.

Encoding (docs/signing.md):

* every string and bytes field, the domain marker included, is
  ``uvarint(len(field_bytes)) || field_bytes`` (strings as UTF-8);
* ``timestamp_ms`` is an 8-byte big-endian unsigned integer;
* fields follow in the order each ``*_signing_input`` function lists.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

import nacl.exceptions
import nacl.signing

__all__ = [
    "ED25519_PUBLIC_KEY_SIZE",
    "ED25519_SIGNATURE_SIZE",
    "EVENT_DOMAIN",
    "PAYLOAD_HASH_SIZE",
    "REQUEST_DOMAIN",
    "RESPONSE_DOMAIN",
    "Signer",
    "encode_uvarint",
    "event_signing_input",
    "payload_hash",
    "payload_hash_matches",
    "request_signing_input",
    "response_signing_input",
    "verify_signature",
]

REQUEST_DOMAIN: Final = "galaxy-request-v1"
RESPONSE_DOMAIN: Final = "galaxy-response-v1"
EVENT_DOMAIN: Final = "galaxy-event-v1"

PAYLOAD_HASH_SIZE: Final = 32
ED25519_PUBLIC_KEY_SIZE: Final = 32
ED25519_SIGNATURE_SIZE: Final = 64
_MAX_UINT64: Final = (1 << 64) - 1


def encode_uvarint(value: int) -> bytes:
    """Encode a non-negative integer as an unsigned LEB128 varint (Go's binary.PutUvarint)."""
    if value < 0 or value > _MAX_UINT64:
        raise ValueError("uvarint value out of range")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _append_field(out: bytearray, field: bytes | str) -> None:
    raw = field.encode("utf-8") if isinstance(field, str) else field
    size = len(raw)
    if size < 0x80:  # the common case, one byte: runs twice per request and response
        out.append(size)
    else:
        out += encode_uvarint(size)
    out += raw


def _append_timestamp(out: bytearray, timestamp_ms: int) -> None:
    if timestamp_ms < 0 or timestamp_ms > _MAX_UINT64:
        raise ValueError("timestamp_ms must fit an unsigned 64-bit integer")
    out += timestamp_ms.to_bytes(8, "big")


def request_signing_input(
    *,
    protocol_version: str,
    device_session_id: str,
    message_type: str,
    timestamp_ms: int,
    request_id: str,
    payload_hash: bytes,
) -> bytes:
    """Signing input of ExecuteCommandRequest and SubscribeEventsRequest.

    The specification leaves the request order open; this project fixes it as
    ``galaxy-request-v1, protocol_version, device_session_id, message_type,
    timestamp_ms, request_id, payload_hash``. trace_id is deliberately unsigned:
    it is a correlation hint that proxies may rewrite.
    """
    out = bytearray()
    _append_field(out, REQUEST_DOMAIN)
    _append_field(out, protocol_version)
    _append_field(out, device_session_id)
    _append_field(out, message_type)
    _append_timestamp(out, timestamp_ms)
    _append_field(out, request_id)
    _append_field(out, payload_hash)
    return bytes(out)


def response_signing_input(
    *,
    protocol_version: str,
    request_id: str,
    timestamp_ms: int,
    result_code: str,
    payload_hash: bytes,
) -> bytes:
    """Signing input of ExecuteCommandResponse, in the specification's order."""
    out = bytearray()
    _append_field(out, RESPONSE_DOMAIN)
    _append_field(out, protocol_version)
    _append_field(out, request_id)
    _append_timestamp(out, timestamp_ms)
    _append_field(out, result_code)
    _append_field(out, payload_hash)
    return bytes(out)


def event_signing_input(
    *,
    event_type: str,
    event_id: str,
    timestamp_ms: int,
    request_id: str,
    trace_id: str,
    payload_hash: bytes,
) -> bytes:
    """Signing input of GatewayEvent, in the specification's order.

    Absent optional request_id / trace_id are signed as empty strings, exactly
    as they travel on the wire (proto3 default).
    """
    out = bytearray()
    _append_field(out, EVENT_DOMAIN)
    _append_field(out, event_type)
    _append_field(out, event_id)
    _append_timestamp(out, timestamp_ms)
    _append_field(out, request_id)
    _append_field(out, trace_id)
    _append_field(out, payload_hash)
    return bytes(out)


def payload_hash(payload: bytes) -> bytes:
    """Raw 32-byte SHA-256 digest of payload bytes (``sha256(b"")`` for an empty payload)."""
    return hashlib.sha256(payload).digest()


def payload_hash_matches(payload: bytes, claimed: bytes) -> bool:
    """Constant-time comparison of a claimed payload hash with the recomputed one."""
    return hmac.compare_digest(hashlib.sha256(payload).digest(), claimed)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``.

    Wrong lengths are a failed verification, not an exception: callers decide
    the reject, and a malformed *key* must be detected before calling (the
    pipeline maps it to "session cache is unavailable", not to a bad signature).
    """
    if len(public_key) != ED25519_PUBLIC_KEY_SIZE or len(signature) != ED25519_SIGNATURE_SIZE:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


class Signer:
    """An Ed25519 private key that signs responses and events (or, for clients, requests)."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is exactly 32 bytes")
        self._key = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._key.verify_key)

    @classmethod
    def generate(cls) -> Signer:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    def sign(self, message: bytes) -> bytes:
        """Raw 64-byte Ed25519 signature of ``message``."""
        return bytes(self._key.sign(message).signature)

    def seed(self) -> bytes:
        """The 32-byte private seed; handle as a secret (never log it)."""
        return bytes(self._key)

    def __repr__(self) -> str:
        # Key material (even the public half) stays out of logs and tracebacks.
        return "Signer(<redacted>)"
