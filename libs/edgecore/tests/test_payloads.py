"""Gateway-owned FlatBuffers payloads round-trip and reject garbage."""

from __future__ import annotations

import pytest

from edgecore.payloads import (
    decode_error_response,
    decode_server_time_event,
    encode_error_response,
    encode_server_time_event,
)


@pytest.mark.parametrize("value", [0, 1_767_225_600_130, 2**63 - 1])
def test_server_time_round_trip(value: int) -> None:
    assert decode_server_time_event(encode_server_time_event(value)) == value


def test_error_response_round_trip_with_utf8() -> None:
    payload = encode_error_response("name_taken", "имя уже занято")
    assert decode_error_response(payload) == ("name_taken", "имя уже занято")


@pytest.mark.parametrize("garbage", [b"", b"\x01", b"\xff" * 3])
def test_garbage_is_a_value_error(garbage: bytes) -> None:
    with pytest.raises(ValueError, match="is not a gateway"):
        decode_server_time_event(garbage)
    with pytest.raises(ValueError, match="is not a gateway"):
        decode_error_response(garbage)
