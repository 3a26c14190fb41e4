"""Fuzz target 2: the FlatBuffers <-> JSON codec, for every table of every schema.

* decode: arbitrary bytes, and valid buffers with bytes overwritten, truncated or
  spliced, raise only ``FbJsonError`` (never ``IndexError``, ``struct.error``,
  ``RecursionError``, ``MemoryError``), and quickly; whatever decodes is a valid
  document that re-encodes and decodes to itself;
* encode: arbitrary JSON-like values, at the top or deep inside an otherwise valid
  document, raise only ``FbJsonError`` (message prefixed with the table);
* round trip: documents drawn from the schema description encode, then decode to
  exactly the value a model of the JSON mapping predicts, and re-encode to the
  same bytes (canonical output).

Every table of the packaged schemas is its own test case, and so is every table of
a test schema that uses every scalar width, a float, a recursive table, a
required field, a deprecated field and an enum with a non-zero default.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from edgecore.catalog import (
    MESSAGE_TYPES,
    NOTIFICATION_KINDS,
    message_namespace,
    notification_table_name,
    request_table_name,
    response_table_name,
)
from edgecore.fbjson import FbJsonError, FlatBuffersJsonCodec, default_codec
from edgecore.payloads import (
    decode_error_response,
    decode_server_time_event,
    decode_subscribe_options,
    encode_error_response,
    encode_server_time_event,
    encode_subscribe_options,
)

from .profiles import fuzz_settings
from .schema_strategies import (
    expected_decoding,
    json_junk,
    mixed_document,
    same,
    valid_document,
)

pytestmark = pytest.mark.fuzz

CODEC = default_codec()
TABLES = CODEC.tables
# A decode of a hostile buffer is bounded by the codec's limits (100 000 objects,
# 16 MiB of strings): far below this even on a slow CI machine.
DECODE_SECONDS = 5.0

NODE_SCHEMA = """
namespace t;
enum Color : ubyte { Red = 0, Green = 1, Blue = 2 }
table Node {
  name: string (id: 0, required);
  old: int (id: 1, deprecated);
  b: byte (id: 2);
  ub: ubyte (id: 3);
  s: short (id: 4);
  us: ushort (id: 5);
  i: int (id: 6);
  ui: uint (id: 7);
  l: long (id: 8);
  ul: ulong (id: 9);
  f: float (id: 10);
  d: double = 1.5 (id: 11);
  color: Color = Green (id: 12);
  colors: [Color] (id: 13);
  bytes: [ubyte] (id: 14);
  longs: [long] (id: 15);
  floats: [float] (id: 16);
  flags: [bool] (id: 17);
  child: Node (id: 18);
  children: [Node] (id: 19);
  opt: int = null (id: 20);
  dflt: int = -42 (id: 21);
  tags: [string] (id: 22);
  shorts: [short] (id: 23);
  yes: bool = true (id: 24);
  maybe: bool = null (id: 25);
  doubles: [double] (id: 26);
}
root_type Node;
"""


def _flatc() -> str | None:
    found = shutil.which("flatc")
    if found:
        return found
    candidate = Path(sys.prefix) / "bin" / "flatc"
    return str(candidate) if candidate.exists() else None


@functools.cache
def node_codec() -> FlatBuffersJsonCodec:
    """NODE_SCHEMA compiled with flatc (a dev dependency), once per session."""
    flatc = _flatc()
    assert flatc is not None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "t.fbs").write_text(NODE_SCHEMA, "utf-8")
        subprocess.run(
            [flatc, "--binary", "--schema", "-o", str(out), str(out / "t.fbs")],
            check=True,
            capture_output=True,
        )
        return FlatBuffersJsonCodec([(out / "t.bfbs").read_bytes()])


def _codec(schema: str) -> FlatBuffersJsonCodec:
    return CODEC if schema == "packaged" else node_codec()


CASES = [pytest.param("packaged", table, id=table) for table in TABLES] + [
    pytest.param(
        "test-schema",
        "t.Node",
        id="t.Node",
        marks=pytest.mark.skipif(_flatc() is None, reason="flatc is not installed (make sync)"),
    )
]


def test_every_catalogued_table_is_fuzzed() -> None:
    """The parametrisation covers the whole catalogue (and nothing unknown)."""
    catalogued = {
        f"{message_namespace(mt)}.{name(mt)}"
        for mt in MESSAGE_TYPES
        for name in (request_table_name, response_table_name)
    } | {f"notification.{notification_table_name(kind)}" for kind in NOTIFICATION_KINDS}
    catalogued |= {
        "gateway.ServerTimeEvent",
        "gateway.ErrorResponse",
        "gateway.SubscribeEventsOptions",
    }
    assert catalogued <= set(TABLES)
    assert len(MESSAGE_TYPES) == 18
    assert len(NOTIFICATION_KINDS) == 13


def _decode_checked(codec: FlatBuffersJsonCodec, table: str, payload: bytes) -> Any:
    """Decode hostile bytes: FbJsonError or a document that is valid in every sense."""
    started = time.perf_counter()
    try:
        decoded = codec.decode(table, payload)
    except FbJsonError as exc:
        assert str(exc).startswith(f"{table}"), str(exc)
        assert "unexpected" not in str(exc), str(exc)  # the codec's last-resort net
        return None
    finally:
        assert time.perf_counter() - started < DECODE_SECONDS
    assert isinstance(decoded, dict)
    again = codec.encode(table, decoded)  # whatever decodes is a valid document
    assert same(codec.decode(table, again), decoded)
    assert codec.encode(table, codec.decode(table, again)) == again
    return decoded


# --- (a) decode: arbitrary bytes ------------------------------------------------------


def _all_tables() -> list[tuple[FlatBuffersJsonCodec, str]]:
    cases = [(CODEC, table) for table in TABLES]
    if _flatc() is not None:
        cases.append((node_codec(), "t.Node"))
    return cases


@fuzz_settings(300)
@given(payload=st.binary(max_size=200), root=st.none() | st.integers(0, 200))
@example(payload=b"", root=None)
@example(payload=b"\xff\xff\xff\x7f", root=None)  # root offset far past the end
@example(payload=b"\x04\x00\x00\x00\x04\x00\x00\x00", root=None)  # vtable = itself
def test_decode_arbitrary_bytes(payload: bytes, root: int | None) -> None:
    """The same bytes against every table (cheap per table, so all of them each time)."""
    if root is not None and len(payload) >= 4:
        # A plausible root offset lets random bytes reach past the first check.
        payload = struct.pack("<I", root % (len(payload) - 3)) + payload[4:]
    for codec, table in _all_tables():
        _decode_checked(codec, table, payload)


@pytest.mark.parametrize(("schema", "table"), CASES)
@fuzz_settings(12)
@given(data=st.data())
def test_decode_mutated_valid_buffers(schema: str, table: str, data: st.DataObject) -> None:
    codec = _codec(schema)
    payload = bytearray(codec.encode(table, data.draw(valid_document(codec, table), "doc")))
    edits = data.draw(
        st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6), "edits"
    )
    for position, value in edits:
        payload[position % len(payload)] = value
    cut = data.draw(st.none() | st.integers(0, len(payload)), "cut")
    if cut is not None:
        payload = payload[:cut]
    tail = data.draw(st.binary(max_size=16), "tail")
    _decode_checked(codec, table, bytes(payload + tail))


# --- (b) encode: arbitrary JSON-like values --------------------------------------------


def _encode_checked(codec: FlatBuffersJsonCodec, table: str, doc: Any) -> None:
    try:
        payload = codec.encode(table, doc)
    except FbJsonError as exc:
        assert str(exc).startswith(f"{table}"), str(exc)
        return
    decoded = codec.decode(table, payload)
    assert codec.encode(table, decoded) == payload


@fuzz_settings(200)
@given(doc=json_junk)
def test_encode_arbitrary_values(doc: Any) -> None:
    """Top-level junk (not even an object, unknown keys, ...) against every table."""
    for codec, table in _all_tables():
        _encode_checked(codec, table, doc)


@pytest.mark.parametrize(("schema", "table"), CASES)
@fuzz_settings(10)
@given(data=st.data())
def test_encode_junk_inside_documents(schema: str, table: str, data: st.DataObject) -> None:
    """Junk in place of any field, element or nested table of an otherwise valid document."""
    codec = _codec(schema)
    _encode_checked(codec, table, data.draw(mixed_document(codec, table), "doc"))


# --- (c) round trip --------------------------------------------------------------------


@pytest.mark.parametrize(("schema", "table"), CASES)
@fuzz_settings(15)
@given(data=st.data())
def test_round_trip_from_the_schema(schema: str, table: str, data: st.DataObject) -> None:
    codec = _codec(schema)
    doc = data.draw(valid_document(codec, table), "doc")
    payload = codec.encode(table, doc)
    decoded = codec.decode(table, payload)
    expected = expected_decoding(codec, table, doc)
    assert same(decoded, expected), (decoded, expected)
    # Canonical: independent of key order, and reproduced by encode(decode(...)).
    assert codec.encode(table, decoded) == payload
    assert codec.encode(table, dict(reversed(list(doc.items())))) == payload


# --- the gateway's own payload helpers ---------------------------------------------------


@fuzz_settings(300)
@given(payload=st.binary(max_size=64))
@example(payload=b"")
@example(payload=b"\x00" * 3)
def test_subscribe_options_decoder(payload: bytes) -> None:
    try:
        position = decode_subscribe_options(payload)
    except ValueError as exc:
        assert type(exc) is ValueError
        assert str(exc) == "payload is not a gateway.SubscribeEventsOptions"
        return
    assert position is None or (isinstance(position, str) and position)


@fuzz_settings(100)
@given(position=st.text(max_size=80))
def test_subscribe_options_round_trip(position: str) -> None:
    assert decode_subscribe_options(encode_subscribe_options(position)) == (position or None)


@fuzz_settings(300)
@given(payload=st.binary(max_size=64))
def test_generated_code_decoders_raise_value_error_only(payload: bytes) -> None:
    """Both wrap the generated (unchecked) readers: anything but ValueError escapes."""
    with contextlib.suppress(ValueError):
        assert isinstance(decode_server_time_event(payload), int)
    with contextlib.suppress(ValueError):  # a UnicodeDecodeError is a ValueError too
        code, message = decode_error_response(payload)
        assert isinstance(code, str) and isinstance(message, str)


@fuzz_settings(100)
@given(code=st.text(max_size=20), message=st.text(max_size=40), ms=st.integers(-(2**63), 2**63 - 1))
def test_generated_code_round_trips(code: str, message: str, ms: int) -> None:
    assert decode_error_response(encode_error_response(code, message)) == (code, message)
    assert decode_server_time_event(encode_server_time_event(ms)) == ms


# --- the binary schemas themselves ---------------------------------------------------------

PACKAGED_BFBS = sorted(
    (entry.name, entry.read_bytes())
    for entry in importlib.resources.files("edgecore.fbs_schema").iterdir()
    if entry.name.endswith(".bfbs")
)


@fuzz_settings(100)
@given(
    schema=st.sampled_from(PACKAGED_BFBS),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_corrupted_binary_schemas_fail_cleanly(
    schema: tuple[str, bytes], edits: list[tuple[int, int]]
) -> None:
    """Schemas are build artefacts, not input, but a corrupt one must not crash a service
    in an unexpected way: FbJsonError, or a codec that works."""
    data = bytearray(schema[1])
    for position, value in edits:
        data[position % len(data)] = value
    try:
        codec = FlatBuffersJsonCodec([bytes(data)])
    except FbJsonError:
        return
    codec.describe()
    for table in codec.tables:
        _encode_checked(codec, table, {})
        _decode_checked(codec, table, bytes(16))
