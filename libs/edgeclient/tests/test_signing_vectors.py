"""The SDK signs and verifies exactly as contracts/signing-vectors-v1.json pins."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edgeclient import (
    DeviceKey,
    EventVerificationError,
    ResponseVerificationError,
    sign_request,
    verify_event,
    verify_response,
)
from galaxy.gateway.v1 import edge_gateway_pb2 as pb

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[3] / "contracts" / "signing-vectors-v1.json").read_text("utf-8")
)
CLIENT_KEY = DeviceKey(bytes.fromhex(VECTORS["client_key"]["seed_hex"]))
SERVER_PUBLIC_KEY = bytes.fromhex(VECTORS["server_key"]["public_key_hex"])


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["name"] for case in cases]


def test_vector_keys_match() -> None:
    assert CLIENT_KEY.public_key.hex() == VECTORS["client_key"]["public_key_hex"]
    assert CLIENT_KEY.public_key_b64 == VECTORS["client_key"]["public_key_base64"]


@pytest.mark.parametrize("case", VECTORS["requests"], ids=_ids(VECTORS["requests"]))
def test_request_signing_reproduces_vectors(case: dict[str, Any]) -> None:
    fields = case["fields"]
    signed = sign_request(
        CLIENT_KEY,
        protocol_version=fields["protocol_version"],
        device_session_id=fields["device_session_id"],
        message_type=fields["message_type"],
        timestamp_ms=int(fields["timestamp_ms"]),
        request_id=fields["request_id"],
        payload=bytes.fromhex(case["payload_hex"]),
    )
    assert signed.payload_hash.hex() == case["payload_hash_hex"]
    assert signed.signing_input.hex() == case["signing_input_hex"]
    assert signed.signature.hex() == case["signature_hex"]
    # The protobuf envelope carries the same bytes.
    request = pb.ExecuteCommandRequest(**signed.envelope_fields())
    assert request.signature.hex() == case["signature_hex"]
    assert request.payload_hash.hex() == case["payload_hash_hex"]


def _response(case: dict[str, Any], **changes: Any) -> Any:
    values = {
        **case["fields"],
        "timestamp_ms": _timestamp(case),
        "payload_bytes": bytes.fromhex(case["payload_hex"]),
        "payload_hash": bytes.fromhex(case["payload_hash_hex"]),
        "signature": bytes.fromhex(case["signature_hex"]),
    }
    values.update(changes)
    # SimpleNamespace: the vectors use timestamp_ms = 2^64-1, beyond protobuf int64.
    return SimpleNamespace(**values)


def _timestamp(case: dict[str, Any]) -> int:
    """The file holds 64-bit integers as decimal strings (exact in any JSON parser)."""
    return int(case["fields"]["timestamp_ms"])


def _flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize("case", VECTORS["responses"], ids=_ids(VECTORS["responses"]))
def test_vector_responses_verify(case: dict[str, Any]) -> None:
    result = verify_response(
        _response(case),
        expected_request_id=case["fields"]["request_id"],
        server_public_key=SERVER_PUBLIC_KEY,
    )
    assert result.result_code == case["fields"]["result_code"]
    assert result.payload.hex() == case["payload_hex"]
    assert result.timestamp_ms == _timestamp(case)


RESPONSE_TAMPERING = {
    "signature": lambda c: {"signature": _flip(bytes.fromhex(c["signature_hex"]), 5)},
    "result_code": lambda c: {"result_code": "ok" if c["fields"]["result_code"] != "ok" else "no"},
    "timestamp": lambda c: {"timestamp_ms": _timestamp(c) - 1},
    "payload": lambda c: {"payload_bytes": bytes.fromhex(c["payload_hex"]) + b"\x00"},
    "payload_and_hash": lambda c: {
        "payload_bytes": b"other",
        "payload_hash": hashlib.sha256(b"other").digest(),
    },
    "short_hash": lambda c: {"payload_hash": bytes.fromhex(c["payload_hash_hex"])[:31]},
    "protocol_version": lambda c: {"protocol_version": "v2"},
    "request_id": lambda c: {"request_id": c["fields"]["request_id"] + "x"},
}


@pytest.mark.parametrize("case", VECTORS["responses"], ids=_ids(VECTORS["responses"]))
@pytest.mark.parametrize("tamper", sorted(RESPONSE_TAMPERING))
def test_tampered_vector_responses_are_rejected(case: dict[str, Any], tamper: str) -> None:
    response = _response(case, **RESPONSE_TAMPERING[tamper](case))
    with pytest.raises(ResponseVerificationError, match="response failed verification"):
        verify_response(
            response,
            expected_request_id=case["fields"]["request_id"],
            server_public_key=SERVER_PUBLIC_KEY,
        )


def test_response_under_another_server_key_is_rejected() -> None:
    case = VECTORS["responses"][0]
    with pytest.raises(ResponseVerificationError, match="signature is not valid"):
        verify_response(
            _response(case),
            expected_request_id=case["fields"]["request_id"],
            server_public_key=CLIENT_KEY.public_key,
        )


@pytest.mark.parametrize("case", VECTORS["events"], ids=_ids(VECTORS["events"]))
def test_vector_events_verify(case: dict[str, Any]) -> None:
    event = verify_event(_response(case), server_public_key=SERVER_PUBLIC_KEY)
    assert event.event_type == case["fields"]["event_type"]
    assert event.event_id == case["fields"]["event_id"]
    assert event.request_id == case["fields"]["request_id"]
    assert event.trace_id == case["fields"]["trace_id"]
    assert event.payload.hex() == case["payload_hex"]


EVENT_TAMPERING = {
    "signature": lambda c: {"signature": _flip(bytes.fromhex(c["signature_hex"]), 63)},
    "event_type": lambda c: {"event_type": c["fields"]["event_type"] + ".x"},
    "event_id": lambda c: {"event_id": c["fields"]["event_id"] + "x"},
    "timestamp": lambda c: {"timestamp_ms": _timestamp(c) + 1},
    "request_id": lambda c: {"request_id": c["fields"]["request_id"] + "x"},
    "trace_id": lambda c: {"trace_id": c["fields"]["trace_id"] + "x"},
    "payload": lambda c: {"payload_bytes": b"x" + bytes.fromhex(c["payload_hex"])},
    "hash": lambda c: {"payload_hash": _flip(bytes.fromhex(c["payload_hash_hex"]))},
}


@pytest.mark.parametrize("case", VECTORS["events"], ids=_ids(VECTORS["events"]))
@pytest.mark.parametrize("tamper", sorted(EVENT_TAMPERING))
def test_tampered_vector_events_are_rejected(case: dict[str, Any], tamper: str) -> None:
    event = _response(case, **EVENT_TAMPERING[tamper](case))
    with pytest.raises(EventVerificationError, match="failed verification"):
        verify_event(event, server_public_key=SERVER_PUBLIC_KEY)
