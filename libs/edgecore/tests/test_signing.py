"""The signing code reproduces the published vectors byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgecore.keys import parse_ed25519_pkcs8_pem
from edgecore.signing import (
    Signer,
    encode_uvarint,
    event_signing_input,
    payload_hash,
    payload_hash_matches,
    request_signing_input,
    response_signing_input,
    verify_signature,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[3] / "contracts" / "signing-vectors-v1.json").read_text("utf-8")
)
BUILDERS = {
    "requests": (request_signing_input, "client_key"),
    "responses": (response_signing_input, "server_key"),
    "events": (event_signing_input, "server_key"),
}
CASES = [
    pytest.param(kind, case, id=f"{kind}:{case['name']}")
    for kind in BUILDERS
    for case in VECTORS[kind]
]


def _fields(case: dict[str, Any]) -> dict[str, Any]:
    """A case's fields with timestamp_ms as int (the file holds 64-bit integers as strings)."""
    fields = dict(case["fields"])
    fields["timestamp_ms"] = int(fields["timestamp_ms"])
    return fields


def test_vectors_hold_64_bit_integers_as_decimal_strings() -> None:
    """JSON numbers beyond 2^53 do not survive JavaScript's JSON.parse."""
    for kind in BUILDERS:
        for case in VECTORS[kind]:
            value = case["fields"]["timestamp_ms"]
            assert isinstance(value, str)
            assert value == str(int(value))


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (2**64 - 1, "ffffffffffffffffff01"),
    ],
)
def test_uvarint_matches_go_binary_putuvarint(value: int, encoded: str) -> None:
    assert encode_uvarint(value).hex() == encoded


@pytest.mark.parametrize("value", [-1, 2**64])
def test_uvarint_rejects_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="uvarint value out of range"):
        encode_uvarint(value)


def test_request_encoding_written_out_by_hand() -> None:
    """Pins the documented layout independently of the vectors file."""
    digest = payload_hash(b"")
    expected = (
        b"\x11galaxy-request-v1"
        + b"\x02v1"
        + b"\x04ds-1"
        + b"\x10user.account.get"
        + (1_700_000_000_000).to_bytes(8, "big")
        + b"\x03r-1"
        + b"\x20"
        + digest
    )
    got = request_signing_input(
        protocol_version="v1",
        device_session_id="ds-1",
        message_type="user.account.get",
        timestamp_ms=1_700_000_000_000,
        request_id="r-1",
        payload_hash=digest,
    )
    assert got == expected


def test_negative_timestamp_is_rejected() -> None:
    with pytest.raises(ValueError, match="timestamp_ms must fit"):
        response_signing_input(
            protocol_version="v1",
            request_id="r",
            timestamp_ms=-1,
            result_code="ok",
            payload_hash=b"",
        )


@pytest.mark.parametrize(("kind", "case"), CASES)
def test_vector_round_trip(kind: str, case: dict[str, Any]) -> None:
    builder, key_name = BUILDERS[kind]
    key = VECTORS[key_name]
    payload = bytes.fromhex(case["payload_hex"])
    assert payload_hash(payload).hex() == case["payload_hash_hex"]
    signing_input = builder(payload_hash=bytes.fromhex(case["payload_hash_hex"]), **_fields(case))
    assert signing_input.hex() == case["signing_input_hex"]
    signer = Signer(bytes.fromhex(key["seed_hex"]))
    assert signer.public_key.hex() == key["public_key_hex"]
    assert signer.sign(signing_input).hex() == case["signature_hex"]
    public_key = bytes.fromhex(key["public_key_hex"])
    assert verify_signature(public_key, signing_input, bytes.fromhex(case["signature_hex"]))


@pytest.mark.parametrize(("kind", "case"), CASES)
def test_vector_tampering_fails_verification(kind: str, case: dict[str, Any]) -> None:
    _, key_name = BUILDERS[kind]
    public_key = bytes.fromhex(VECTORS[key_name]["public_key_hex"])
    signing_input = bytearray.fromhex(case["signing_input_hex"])
    signing_input[-1] ^= 0x01
    assert not verify_signature(
        public_key, bytes(signing_input), bytes.fromhex(case["signature_hex"])
    )
    other_key = bytes.fromhex(
        VECTORS["client_key" if key_name == "server_key" else "server_key"]["public_key_hex"]
    )
    assert not verify_signature(
        other_key, bytes.fromhex(case["signing_input_hex"]), bytes.fromhex(case["signature_hex"])
    )


@pytest.mark.parametrize("key_name", ["client_key", "server_key"])
def test_vector_pem_decodes_to_seed(key_name: str) -> None:
    key = VECTORS[key_name]
    assert parse_ed25519_pkcs8_pem(key["private_key_pkcs8_pem"].encode()).hex() == key["seed_hex"]


def test_verify_signature_rejects_wrong_lengths_without_raising() -> None:
    signer = Signer.generate()
    sig = signer.sign(b"m")
    assert not verify_signature(signer.public_key[:31], b"m", sig)
    assert not verify_signature(signer.public_key, b"m", sig[:63])


def test_payload_hash_matches_is_exact() -> None:
    assert payload_hash_matches(b"abc", payload_hash(b"abc"))
    assert not payload_hash_matches(b"abd", payload_hash(b"abc"))
    assert not payload_hash_matches(b"abc", payload_hash(b"abc")[:31])


def test_signer_repr_has_no_key_material() -> None:
    signer = Signer.generate()
    assert signer.public_key.hex() not in repr(signer)
    assert signer.seed().hex() not in repr(signer)
