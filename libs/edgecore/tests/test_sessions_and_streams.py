"""Session records and stream entries decode strictly: bad input is a value, not a crash."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from edgecore.sessions import SessionRecord, SessionRecordError, SessionStatus
from edgecore.streams import (
    MAX_EVENT_PAYLOAD_BYTES,
    ClientEvent,
    MalformedEntry,
    SessionSnapshot,
    decode_client_event,
    decode_session_event,
    encode_client_event,
    encode_session_snapshot,
)

RECORD = SessionRecord(
    device_session_id="ds-1",
    user_id="u-1",
    client_public_key="G7MDQjFGZHI03ZHuqYujByhz/rrgpnYQvZydroIXSSI=",
    status=SessionStatus.ACTIVE,
    created_at_ms=1_700_000_000_000,
    client_metadata={"time_zone": "Europe/Berlin"},
)


def test_session_record_json_round_trip() -> None:
    assert SessionRecord.from_json(RECORD.to_json()) == RECORD
    revoked = SessionRecord.from_json_dict(
        {**RECORD.to_json_dict(), "status": "revoked", "revoked_at_ms": 5, "revoke_reason": "user"}
    )
    assert revoked.revoked and revoked.revoked_at_ms == 5 and revoked.revoke_reason == "user"


def test_session_record_repr_hides_public_key() -> None:
    assert RECORD.client_public_key not in repr(RECORD)


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        ({"status": "paused"}, "session record field 'status' must be 'active' or 'revoked'"),
        ({"user_id": ""}, "session record field 'user_id' must be a non-empty string"),
        (
            {"device_session_id": 7},
            "session record field 'device_session_id' must be a non-empty string",
        ),
        (
            {"created_at_ms": -1},
            "session record field 'created_at_ms' must be a non-negative integer",
        ),
        (
            {"created_at_ms": True},
            "session record field 'created_at_ms' must be a non-negative integer",
        ),
        (
            {"client_metadata": {"a": 1}},
            "session record field 'client_metadata' must map strings to strings",
        ),
        ({"surprise": 1}, "session record has unknown field 'surprise'"),
    ],
)
def test_session_record_rejects(mutation: dict[str, object], message: str) -> None:
    with pytest.raises(SessionRecordError) as err:
        SessionRecord.from_json_dict({**RECORD.to_json_dict(), **mutation})
    assert str(err.value) == message


def test_session_record_rejects_non_json() -> None:
    with pytest.raises(SessionRecordError, match="not valid JSON"):
        SessionRecord.from_json(b"\xff{")
    with pytest.raises(SessionRecordError, match="must be a JSON object"):
        SessionRecord.from_json(b"[]")


def test_malformed_public_key_is_not_a_decode_error() -> None:
    # The pipeline must turn it into "session cache is unavailable" later.
    record = SessionRecord.from_json_dict({**RECORD.to_json_dict(), "client_public_key": "%%%"})
    assert record.client_public_key == "%%%"


def test_session_snapshot_round_trip() -> None:
    decoded = decode_session_event("1-0", encode_session_snapshot(RECORD))
    assert decoded == SessionSnapshot("1-0", RECORD)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({b"kind": b"session.snapshot", b"session": b"{}"}, "missing or unsupported entry version"),
        (
            {b"v": b"2", b"kind": b"session.snapshot", b"session": b"{}"},
            "missing or unsupported entry version",
        ),
        ({b"v": b"1", b"kind": b"session.snapshot"}, "missing field 'session'"),
        (
            {b"v": b"1", b"kind": b"session.deleted", b"session": b"{}"},
            "unknown session event kind",
        ),
        (
            {b"v": b"1", b"kind": b"session.snapshot", b"session": b"nope"},
            "session record is not valid JSON",
        ),
        (
            {b"v": b"1", b"kind": b"session.snapshot", b"session": b"{}", b"x": b""},
            "unknown field 'x'",
        ),
    ],
)
def test_malformed_session_entries(fields: dict[bytes, bytes], reason: str) -> None:
    assert decode_session_event("9-1", fields) == MalformedEntry("9-1", reason)


EVENT = ClientEvent(
    user_id="u-1",
    event_type="lobby.invite.received",
    event_id="evt-1",
    payload=b"\x00\x01binary\xff",
    device_session_id="ds-1",
    request_id="req-1",
    trace_id="trace-1",
)


def test_client_event_round_trip_with_and_without_optionals() -> None:
    assert decode_client_event("3-0", encode_client_event(EVENT)) == replace(EVENT, entry_id="3-0")
    bare = ClientEvent(user_id="u-1", event_type="t", event_id="e", payload=b"")
    fields = encode_client_event(bare)
    assert set(fields) == {b"v", b"user_id", b"event_type", b"event_id", b"payload"}
    assert decode_client_event("4-0", fields) == replace(bare, entry_id="4-0")


def test_client_event_repr_hides_payload() -> None:
    assert "binary" not in repr(EVENT)


@pytest.mark.parametrize(
    ("mutation", "reason"),
    [
        ({b"user_id": b""}, "field 'user_id' must not be empty"),
        ({b"event_type": b"  "}, "field 'event_type' must not be empty"),
        ({b"event_id": b"\xff"}, "a text field is not UTF-8"),
        ({b"event_id": b"e" * 257}, "field 'event_id' is longer than 256 bytes"),
        (
            {b"payload": b"x" * (MAX_EVENT_PAYLOAD_BYTES + 1)},
            f"payload is larger than {MAX_EVENT_PAYLOAD_BYTES} bytes",
        ),
        ({b"extra": b"1"}, "unknown field 'extra'"),
        ({b"v": b"0"}, "missing or unsupported entry version"),
    ],
)
def test_malformed_client_entries(mutation: dict[bytes, bytes], reason: str) -> None:
    fields = {**encode_client_event(EVENT), **mutation}
    assert decode_client_event("5-0", fields) == MalformedEntry("5-0", reason)


def test_missing_payload_is_malformed() -> None:
    fields = encode_client_event(EVENT)
    del fields[b"payload"]
    assert decode_client_event("6-0", fields) == MalformedEntry("6-0", "missing field 'payload'")


def test_publisher_side_refuses_invalid_events() -> None:
    with pytest.raises(ValueError, match="field 'user_id' must not be empty"):
        encode_client_event(ClientEvent(user_id="", event_type="t", event_id="e", payload=b""))


def test_snapshot_json_is_canonical() -> None:
    # Sorted keys and compact separators: the same record always yields the same bytes.
    assert (
        encode_session_snapshot(RECORD)[b"session"]
        == json.dumps(RECORD.to_json_dict(), separators=(",", ":"), sort_keys=True).encode()
    )
