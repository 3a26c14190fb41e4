"""Fuzz target 3: the decoders of what arrives from Redis (docs/event-streams.md).

* ``decode_session_event`` / ``decode_client_event``: arbitrary field maps (any
  names, any bytes, any JSON in ``session``, values that are not even bytes)
  return a decoded entry or a ``MalformedEntry``, never raise ("strict and
  total"); whatever decodes satisfies the contract and re-encodes; entries written
  by ``encode_*`` decode back to exactly what was encoded;
* ``SessionEventsHandler``: applies or drops (and counts) every entry, never raises;
* push-hub's live messages (MessagePack ``[entry_id, field, value, ...]`` on the
  user's channel): ``UserFeeds._on_live`` drops what it cannot read and what it
  dispatches goes through ``ClientEventsHandler.decode`` (both pure, no Redis);
* ``edgecore.event_positions``: arbitrary text is a position or ``PositionError``,
  and every position the gateway issues parses back to itself.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Final

import msgpack
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from edgecore.event_positions import (
    MAX_POSITION_BYTES,
    Position,
    PositionError,
    format_entry_id,
    parse_entry_id,
    predecessor,
)
from edgecore.session_cache import InProcessSessionCache
from edgecore.session_events import SessionEventsHandler
from edgecore.sessions import SessionRecord, SessionStatus
from edgecore.streams import (
    CLIENT_EVENT_FIELDS,
    SESSION_SNAPSHOT_KIND,
    ClientEvent,
    MalformedEntry,
    SessionSnapshot,
    decode_client_event,
    decode_session_event,
    encode_client_event,
    encode_session_snapshot,
)
from push_hub.events import ClientEventsHandler
from push_hub.feeds import Feed, UserFeeds

from .profiles import fuzz_settings
from .schema_strategies import json_junk

pytestmark = pytest.mark.fuzz

ENTRY_ID: Final = "1700000000000-0"
# docs/event-streams.md, "Client events" (literals: independent of the module's constants).
MAX_ID_BYTES: Final = 256
MAX_EVENT_PAYLOAD_BYTES: Final = 1 << 20
U64: Final = st.integers(0, 2**64 - 1)

# --- field maps ----------------------------------------------------------------------------

_TEXT_BYTES: Final = st.one_of(
    st.text(max_size=12).map(str.encode),
    st.just(b""),
    st.sampled_from([b" ", b"\t\n", b"\xc2\xa0", b"\xe2\x80\xa8"]),
    st.binary(max_size=12),  # mostly not UTF-8
    st.sampled_from([b"\xed\xa0\x80", b"\xff", b"\xc0\xaf"]),  # surrogate, invalid, overlong
    st.integers(MAX_ID_BYTES - 2, MAX_ID_BYTES + 2).map(lambda n: b"i" * n),
)
_NOT_BYTES: Final = st.one_of(st.none(), st.integers(), st.text(max_size=4), st.lists(st.none()))


def field_maps(names: frozenset[bytes], special: dict[bytes, Any]) -> Any:
    """Known names (with their likely values or anything) plus stray names."""
    values = {name: st.one_of(special.get(name, _TEXT_BYTES), _TEXT_BYTES) for name in names}
    values[b"v"] = st.sampled_from([b"1", b"1", b"2", b"01", b"1 ", b""])
    stray = st.dictionaries(
        st.one_of(st.binary(max_size=8), st.sampled_from(sorted(names))), _TEXT_BYTES, max_size=2
    )
    known = st.fixed_dictionaries({}, optional=values)
    return st.builds(lambda a, b: {**b, **a}, known, stray)


def with_foreign_types(maps: Any) -> Any:
    """Maps with one name or value that is not bytes (a MessagePack message can carry
    those into the decoders, see the live messages below)."""
    names = st.one_of(
        st.sampled_from([b"v", b"user_id", b"payload", b"session", b"kind"]),
        st.integers(),
        st.none(),
        st.text(max_size=3),
    )
    return st.builds(lambda m, k, v: {**m, k: v}, maps, names, _NOT_BYTES | _TEXT_BYTES)


# --- session events --------------------------------------------------------------------------


def _records(text: Any) -> Any:
    return st.builds(
        SessionRecord,
        device_session_id=text(min_size=1, max_size=16),
        user_id=text(min_size=1, max_size=16),
        client_public_key=text(max_size=44),
        status=st.sampled_from(SessionStatus),
        created_at_ms=U64,
        revoked_at_ms=st.none() | U64,
        revoke_reason=st.none() | text(max_size=12),
        client_metadata=st.dictionaries(text(max_size=6), text(max_size=6), max_size=3),
    )


records: Final = _records(st.text)
# Any code point, lone surrogates included (JSON can spell them as \ud800 escapes).
_records_any_text: Final = _records(
    lambda **size: st.one_of(
        st.text(**size),
        st.text(st.characters(exclude_categories=()), **size),
        st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), **size),
    )
)


@st.composite
def session_documents(draw: st.DrawFn) -> bytes:
    """A record's JSON, a record with one field replaced by junk, any JSON, or not JSON."""
    base = json.loads(draw(_records_any_text, "record").to_json())
    kind = draw(st.sampled_from(["record", "changed", "junk", "nested", "bytes"]), "kind")
    if kind == "changed":
        name = draw(st.sampled_from([*base, "extra"]), "field")
        if draw(st.booleans(), "drop"):
            base.pop(name, None)
        else:
            base[name] = draw(json_junk.filter(_json_safe), "value")
    elif kind == "junk":
        return json.dumps(draw(json_junk.filter(_json_safe), "junk")).encode()
    elif kind == "nested":
        depth = draw(st.sampled_from([1, 999, 1000, 1001, 100_000]) | st.integers(1, 2**17))
        return draw(st.sampled_from([b"[", b'{"a":', b'{"client_metadata":']), "open") * depth
    elif kind == "bytes":
        return draw(st.binary(max_size=64), "bytes")
    text = json.dumps(base, ensure_ascii=draw(st.booleans(), "ascii"))
    return text.encode("utf-8", "surrogatepass")


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _check_record(record: SessionRecord) -> None:
    assert record.device_session_id and record.user_id
    assert record.created_at_ms >= 0
    assert record.revoked_at_ms is None or record.revoked_at_ms >= 0
    texts = [record.device_session_id, record.user_id, record.client_public_key]
    texts += [record.revoke_reason or "", *record.client_metadata, *record.client_metadata.values()]
    for text in texts:
        text.encode("utf-8")  # usable as a Redis key, a header, a log field
    assert SessionRecord.from_json(record.to_json()) == record


SESSION_FIELDS: Final = frozenset({b"v", b"kind", b"session"})
session_maps: Final = st.one_of(
    # Well-formed entries: the session document is what varies.
    st.fixed_dictionaries(
        {
            b"v": st.just(b"1"),
            b"kind": st.just(SESSION_SNAPSHOT_KIND),
            b"session": session_documents(),
        }
    ),
    field_maps(
        SESSION_FIELDS,
        {b"kind": st.just(SESSION_SNAPSHOT_KIND), b"session": session_documents()},
    ),
)


@fuzz_settings(400)
@given(fields=st.one_of(session_maps, with_foreign_types(session_maps)))
@example(fields={b"v": b"1", b"kind": SESSION_SNAPSHOT_KIND, b"session": b"[" * 100_000}).via(
    "regression: RecursionError escaped (docs/fuzzing.md, bug 1)"
)
@example(
    fields={
        b"v": b"1",
        b"kind": SESSION_SNAPSHOT_KIND,
        b"session": b'{"device_session_id":"\\ud800","user_id":"u",'
        b'"client_public_key":"","status":"active"}',
    }
).via("regression: a lone surrogate was accepted as text (docs/fuzzing.md, bug 2)")
@example(fields={b"v": b"1", b"kind": SESSION_SNAPSHOT_KIND, b"session": b"x", 5: b"y"}).via(
    "regression: a name that is not bytes raised (docs/fuzzing.md, bug 3)"
)
def test_session_event_decoder_is_total(fields: dict[Any, Any]) -> None:
    decoded = decode_session_event(ENTRY_ID, fields)
    if isinstance(decoded, MalformedEntry):
        assert decoded.entry_id == ENTRY_ID
        assert isinstance(decoded.reason, str) and decoded.reason
        event(f"malformed: {decoded.reason.split(' ')[0]}")
        return
    assert type(decoded) is SessionSnapshot
    assert decoded.entry_id == ENTRY_ID
    _check_record(decoded.record)
    event("decoded")


@fuzz_settings(200)
@given(record=records)
def test_session_snapshots_round_trip(record: SessionRecord) -> None:
    decoded = decode_session_event(ENTRY_ID, encode_session_snapshot(record))
    assert decoded == SessionSnapshot(ENTRY_ID, record)


@fuzz_settings(150)
@given(fields=session_maps)
def test_session_events_handler_applies_or_drops(fields: dict[bytes, Any]) -> None:
    drops: list[tuple[str, str]] = []
    revoked: list[SessionRecord] = []
    cache = InProcessSessionCache(
        _NoSource(), max_entries=10, ttl=timedelta(minutes=1), negative_ttl=timedelta(seconds=1)
    )
    handler = SessionEventsHandler(
        cache, on_drop=lambda *a: drops.append(a), on_revoked=revoked.append
    )
    handler(ENTRY_ID, fields)
    applied = len(cache)
    assert (applied, len(drops)) in ((1, 0), (0, 1))
    assert drops == [] or drops[0][0] == "session_events"
    assert len(revoked) <= applied


class _NoSource:
    async def get_session(self, device_session_id: str) -> SessionRecord | None:
        return None


# --- client events ---------------------------------------------------------------------------

_REQUIRED_TEXT: Final = st.text(min_size=1, max_size=20).filter(str.strip)
_OPTIONAL_TEXT: Final = st.none() | st.text(min_size=1, max_size=20)
client_events: Final = st.builds(
    ClientEvent,
    user_id=_REQUIRED_TEXT,
    event_type=_REQUIRED_TEXT,
    event_id=_REQUIRED_TEXT,
    payload=st.binary(max_size=64),
    device_session_id=_OPTIONAL_TEXT,
    request_id=_OPTIONAL_TEXT,
    trace_id=_OPTIONAL_TEXT,
)
_payloads: Final = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([MAX_EVENT_PAYLOAD_BYTES, MAX_EVENT_PAYLOAD_BYTES + 1]).map(bytes),
)


@st.composite
def _encoded_then_changed(draw: st.DrawFn) -> dict[bytes, bytes]:
    fields = encode_client_event(draw(client_events, "event"))
    name = draw(st.sampled_from(sorted(CLIENT_EVENT_FIELDS)), "name")
    fields[name] = draw(_payloads if name == b"payload" else _TEXT_BYTES, "value")
    return fields


client_maps: Final = st.one_of(
    _encoded_then_changed(), field_maps(CLIENT_EVENT_FIELDS, {b"payload": _payloads})
)


def _check_client_event(decoded: ClientEvent) -> None:
    assert decoded.entry_id == ENTRY_ID
    for required in (decoded.user_id, decoded.event_type, decoded.event_id):
        assert required.strip()
    for text in (decoded.user_id, decoded.event_type, decoded.event_id):
        assert len(text.encode("utf-8")) <= MAX_ID_BYTES
    for optional in (decoded.device_session_id, decoded.request_id, decoded.trace_id):
        assert optional is None or (optional and len(optional.encode("utf-8")) <= MAX_ID_BYTES)
    assert len(decoded.payload) <= MAX_EVENT_PAYLOAD_BYTES
    assert decode_client_event(ENTRY_ID, encode_client_event(decoded)) == decoded


@fuzz_settings(400)
@given(fields=st.one_of(client_maps, with_foreign_types(client_maps)))
@example(fields={b"v": b"1", b"user_id": b"u", 5: b"x"}).via(
    "regression: a name that is not bytes raised AttributeError (docs/fuzzing.md, bug 3)"
)
@example(
    fields={
        b"v": b"1",
        b"user_id": 7,
        b"event_type": b"t",
        b"event_id": b"e",
        b"payload": b"",
    }
).via("regression: a value that is not bytes raised AttributeError (docs/fuzzing.md, bug 3)")
def test_client_event_decoder_is_total(fields: dict[Any, Any]) -> None:
    decoded = decode_client_event(ENTRY_ID, fields)
    if isinstance(decoded, MalformedEntry):
        assert decoded.entry_id == ENTRY_ID
        assert isinstance(decoded.reason, str) and decoded.reason
        event(f"malformed: {decoded.reason.split(' ')[0]}")
        return
    assert type(decoded) is ClientEvent
    _check_client_event(decoded)
    event("decoded")


@fuzz_settings(200)
@given(client_event=client_events)
def test_client_events_round_trip(client_event: ClientEvent) -> None:
    fields = encode_client_event(client_event)
    decoded = decode_client_event(ENTRY_ID, fields)
    assert decoded == ClientEvent(
        user_id=client_event.user_id,
        event_type=client_event.event_type,
        event_id=client_event.event_id,
        payload=client_event.payload,
        device_session_id=client_event.device_session_id,
        request_id=client_event.request_id,
        trace_id=client_event.trace_id,
        entry_id=ENTRY_ID,
    )


# --- push-hub's live messages ---------------------------------------------------------------

USER: Final = "u-1"
_MSGPACK_SCALARS: Final = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.binary(max_size=8),
    st.text(max_size=8),
)
msgpack_values: Final = st.recursive(
    _MSGPACK_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.one_of(st.binary(max_size=4), st.text(max_size=4)), children, max_size=3
        ),
    ),
    max_leaves=12,
)


@st.composite
def live_messages(draw: st.DrawFn) -> bytes:
    """What a publisher (or anyone with access to Redis) can PUBLISH on a user's channel."""
    kind = draw(st.sampled_from(["event", "array", "any", "bytes"]), "kind")
    if kind == "bytes":
        return draw(st.binary(max_size=40), "bytes")
    if kind == "any":  # a top-level map or scalar too (bug 4)
        return bytes(msgpack.packb(draw(msgpack_values, "any"), use_bin_type=True))
    if kind == "array":
        items = draw(st.lists(msgpack_values, max_size=7), "items")
    else:
        entry = draw(st.tuples(U64, U64).map(format_entry_id).map(str.encode), "entry")
        event_fields = encode_client_event(draw(client_events, "event"))
        event_fields[b"user_id"] = USER.encode()
        items = [entry]
        for name, value in event_fields.items():
            items += [name, value]
        if draw(st.booleans(), "tamper"):
            index = draw(st.integers(0, len(items) - 1), "index")
            items[index] = draw(msgpack_values, "value")
    return bytes(msgpack.packb(items, use_bin_type=True))


def _live_feed() -> tuple[UserFeeds, Feed, list[Any], ClientEventsHandler]:
    dispatched: list[Any] = []
    feeds = UserFeeds(
        None,  # type: ignore[arg-type]  # _on_live never touches Redis
        None,  # type: ignore[arg-type]
        lambda user, entry_id, fields: dispatched.append((user, entry_id, fields)),
        ttl_ms=600_000,
        max_events=1000,
        base_backoff=timedelta(milliseconds=10),
        max_backoff=timedelta(seconds=1),
        on_gone=lambda user: None,
    )
    feed = Feed(USER)
    feed.ready.set()
    handler = ClientEventsHandler(
        None,  # type: ignore[arg-type]  # decode() uses neither the hub nor the signer
        None,  # type: ignore[arg-type]
        epoch=lambda: None,
        on_drop=lambda stream, reason: None,
    )
    return feeds, feed, dispatched, handler


@fuzz_settings(300)
@given(data=live_messages())
@example(data=bytes(msgpack.packb([b"1-1", b"v", b"1", 5, b"x"]))).via(
    "regression: an integer field name reached decode_client_event (docs/fuzzing.md, bug 3)"
)
def test_live_messages_are_dropped_or_decoded(data: bytes) -> None:
    feeds, feed, dispatched, handler = _live_feed()
    assert feeds._on_live(feed, data) is None
    if not dispatched:
        event("dropped by the feed")
        return
    ((user, entry_id, fields),) = dispatched
    assert user == USER
    assert isinstance(entry_id, tuple) and len(entry_id) == 2
    assert feed.cursor == entry_id
    decoded = handler.decode(user, entry_id, fields)
    if decoded is None:
        event("malformed entry")
        return
    assert decoded.user_id == USER
    event("decoded")


def test_live_message_that_is_a_map_is_dropped() -> None:
    """Bug 4 (docs/fuzzing.md): a MessagePack map made _on_live raise KeyError, which
    ended the feeds reader."""
    feeds, feed, dispatched, _ = _live_feed()
    assert feeds._on_live(feed, bytes(msgpack.packb({b"a": 1}))) is None
    assert dispatched == []


# --- resume positions ------------------------------------------------------------------------

# What HistoryStore.epoch() creates: secrets.token_hex(8).
_EPOCH: Final = st.text(st.sampled_from("0123456789abcdef"), min_size=16, max_size=16)


@fuzz_settings(500)
@given(
    text=st.one_of(
        st.text(st.characters(exclude_categories=()), max_size=70),
        st.builds(  # a lone surrogate somewhere in an otherwise valid position
            lambda head, bad, tail: head + bad + tail,
            st.sampled_from(["", "0123abcd", "0123abcd:", "0123abcd:1-"]),
            st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
            st.sampled_from(["", "1", ":1-1"]),
        ),
        st.builds(
            lambda e, s, t: f"{e}{s}{t}",
            _EPOCH,
            st.sampled_from([":", "", "::", ": "]),
            st.text(st.sampled_from("0123456789-+ "), max_size=45),
        ),
        st.builds(  # well-formed but for the widths: long epochs, 20-digit parts
            lambda e, ms, seq: f"{e}:{ms}-{seq}",
            st.text(st.sampled_from("0123456789abcdefA"), min_size=7, max_size=33),
            st.integers(0, 2**65),
            st.integers(0, 2**65),
        ),
    )
)
@example(text="\ud800").via("regression: UnicodeEncodeError escaped (docs/fuzzing.md, bug 5)")
@example(text="0123abcd:18446744073709551616-0")
@example(text="0123abcd:1-1\n")
@example(text="0123abcd:\uff11-1")  # fullwidth digit one
def test_position_parser(text: str) -> None:
    try:
        position = Position.parse(text)
    except PositionError as exc:
        assert type(exc) is PositionError
        event("rejected")
        return
    assert Position.parse(str(position)) == position  # leading zeros are normalised
    assert len(text.encode("utf-8")) <= MAX_POSITION_BYTES
    assert all(0 <= part < 2**64 for part in position.entry_id)
    event("parsed")


@fuzz_settings(300)
@given(epoch=_EPOCH, entry_id=st.tuples(U64, U64))
def test_issued_positions_parse_back(epoch: str, entry_id: tuple[int, int]) -> None:
    position = Position(epoch, entry_id)
    assert Position.parse(str(position)) == position
    assert parse_entry_id(format_entry_id(entry_id).encode()) == entry_id
    if entry_id != (0, 0):
        # The largest id below: nothing lies in between.
        ms, seq = predecessor(entry_id)
        assert entry_id == ((ms + 1, 0) if seq == 2**64 - 1 else (ms, seq + 1))


@fuzz_settings(300)
@given(raw=st.one_of(st.binary(max_size=45), st.text(max_size=45)))
def test_entry_id_parser(raw: bytes | str) -> None:
    try:
        entry_id = parse_entry_id(raw)
    except PositionError as exc:
        assert type(exc) is PositionError
        return
    text = raw.decode("ascii") if isinstance(raw, bytes) else raw
    ms, seq = (int(part) for part in text.split("-"))
    assert entry_id == (ms, seq)
