"""ResponseSigner: request_id preserved, fresh timestamp, SHA-256 hash, galaxy-response-v1."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from edge_grpc.responses import ResponseSigner
from edgecore.downstream import DownstreamResult
from edgecore.signing import Signer, response_signing_input, verify_signature
from edgecore.stream_drops import drop_reason

VECTORS = Path(__file__).resolve().parents[3] / "contracts" / "signing-vectors-v1.json"


def test_signed_response_fields_and_signature():
    signer = Signer.generate()
    response = ResponseSigner(signer, clock_ms=lambda: 1_750_000_000_123).sign(
        "req-42", DownstreamResult("ok", b"\x10\x00payload")
    )
    assert response.protocol_version == "v1"
    assert response.request_id == "req-42"
    assert response.timestamp_ms == 1_750_000_000_123
    assert response.result_code == "ok"
    assert response.payload_bytes == b"\x10\x00payload"
    assert response.payload_hash == hashlib.sha256(b"\x10\x00payload").digest()
    signing_input = response_signing_input(
        protocol_version="v1",
        request_id="req-42",
        timestamp_ms=1_750_000_000_123,
        result_code="ok",
        payload_hash=response.payload_hash,
    )
    assert signing_input.startswith(b"\x12galaxy-response-v1")
    assert verify_signature(signer.public_key, signing_input, response.signature)
    assert not verify_signature(Signer.generate().public_key, signing_input, response.signature)


def test_business_error_results_are_signed_the_same_way():
    signer = Signer.generate()
    response = ResponseSigner(signer, clock_ms=lambda: 5).sign(
        "r", DownstreamResult("not_found", b"err")
    )
    signing_input = response_signing_input(
        protocol_version="v1",
        request_id="r",
        timestamp_ms=5,
        result_code="not_found",
        payload_hash=hashlib.sha256(b"err").digest(),
    )
    assert verify_signature(signer.public_key, signing_input, response.signature)


def test_empty_payload_hashes_as_sha256_of_nothing():
    response = ResponseSigner(Signer.generate()).sign("r", DownstreamResult("ok", b""))
    assert response.payload_hash == hashlib.sha256(b"").digest()


def test_timestamp_is_taken_per_response():
    ticks = iter([100, 200])
    signer = ResponseSigner(Signer.generate(), clock_ms=lambda: next(ticks))
    assert signer.sign("a", DownstreamResult("ok", b"")).timestamp_ms == 100
    assert signer.sign("b", DownstreamResult("ok", b"")).timestamp_ms == 200


def test_matches_the_published_response_vectors():
    """Byte-for-byte the signatures of contracts/signing-vectors-v1.json (Ed25519 is
    deterministic), so every client that passes the vectors verifies this service."""
    data = json.loads(VECTORS.read_text())
    server = Signer(bytes.fromhex(data["server_key"]["seed_hex"]))
    # timestamp_ms is int64 on the wire; a vector at the uint64 edge only tests the encoder.
    # The file holds 64-bit integers as decimal strings.
    vectors = [v for v in data["responses"] if int(v["fields"]["timestamp_ms"]) < 2**63]
    assert vectors
    for vector in vectors:
        fields = vector["fields"]
        assert fields["protocol_version"] == "v1"
        signer = ResponseSigner(server, clock_ms=lambda f=fields: int(f["timestamp_ms"]))
        response = signer.sign(
            fields["request_id"],
            DownstreamResult(fields["result_code"], bytes.fromhex(vector["payload_hex"])),
        )
        assert response.payload_hash.hex() == vector["payload_hash_hex"]
        assert response.signature.hex() == vector["signature_hex"]


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("missing or unsupported entry version", "unsupported_version"),
        ("unknown session event kind", "unknown_kind"),
        ("unknown field 'attacker-chosen'", "unknown_field"),
        ("missing field 'session'", "missing_field"),
        ("session record is not valid JSON", "invalid_session_record"),
        ("session record field 'status' must be 'active' or 'revoked'", "invalid_session_record"),
        ("something new", "malformed"),
    ],
)
def test_drop_reasons_become_bounded_labels(reason: str, label: str):
    assert drop_reason(reason) == label
