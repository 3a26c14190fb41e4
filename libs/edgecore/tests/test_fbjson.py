"""Tests for edgecore.fbjson: the schema-driven JSON <-> FlatBuffers codec.

Coverage:

* every request/response table of the 18 message types and every notification
  table round-trips a document that fills every field (derived generically
  from the reflection schema), and agrees with the generated ``edgecore.fbs``
  classes in both directions;
* the JSON conventions (defaults, optional scalars, enums, null);
* the validation errors, with their exact messages;
* hostile buffers (truncation, huge vector lengths, self-references, offset
  bombs, random bytes) raise FbJsonError and nothing else;
* with flatc available: unsupported schema features fail clearly, a test
  schema with every scalar width matches flatc's own JSON <-> binary
  conversion, and the packaged .bfbs files are up to date.
"""

from __future__ import annotations

import importlib
import importlib.resources
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import flatbuffers
import pytest

from edgecore import payloads
from edgecore.catalog import (
    MESSAGE_TYPES,
    NOTIFICATION_KINDS,
    message_namespace,
    notification_table_name,
    request_table_name,
    response_table_name,
)
from edgecore.fbjson import (
    DEFAULT_MAX_ELEMENTS,
    DEFAULT_MAX_STRING_BYTES,
    FbJsonError,
    FlatBuffersJsonCodec,
    default_codec,
)
from edgecore.fbs.lobby.GameStatus import GameStatus
from edgecore.fbs.lobby.MyGamesListResponse import MyGamesListResponse
from edgecore.fbs.user.GamesReportResponse import GamesReportResponse
from edgecore.fbs.user.PlanetKind import PlanetKind
from edgecore.fbs.user.SettingsUpdateRequest import SettingsUpdateRequest

REPO = Path(__file__).parents[3]
SCHEMA_DIR = REPO / "schema"

CATALOGUE_TABLES: list[str] = sorted(
    {f"{message_namespace(mt)}.{request_table_name(mt)}" for mt in MESSAGE_TYPES}
    | {f"{message_namespace(mt)}.{response_table_name(mt)}" for mt in MESSAGE_TYPES}
    | {f"notification.{notification_table_name(kind)}" for kind in NOTIFICATION_KINDS}
)


@pytest.fixture(scope="module")
def codec() -> FlatBuffersJsonCodec:
    return FlatBuffersJsonCodec()


# --- generic helpers driven by the reflection schema ---------------------------


def _strip(label: str) -> tuple[str, bool]:
    """('[user.Planet]?' -> ('[user.Planet]', True))."""
    return (label[:-1], True) if label.endswith("?") else (label, False)


_INT_LABELS = {"byte", "ubyte", "short", "ushort", "int", "uint", "long", "ulong"}


def _sample_value(codec: FlatBuffersJsonCodec, field: str, label: str, n: int, depth: int) -> Any:
    if label.startswith("["):
        return [_sample_value(codec, f"{field}-{i}", label[1:-1], n + i, depth) for i in range(2)]
    if label == "string":
        return f"x-{field}"
    if label == "bool":
        return True
    if label in ("long", "ulong"):
        return 1_700_000_000_000 + n  # needs more than 32 bits
    if label in _INT_LABELS:
        return n + 1
    if label in ("float", "double"):
        return n + 0.5
    enums = codec.enums
    if label in enums:
        return next(name for name, value in enums[label].items() if value != 0)
    assert label in codec.tables, label
    assert depth < 6, "unexpectedly deep schema"
    return sample_document(codec, label, depth + 1)


def sample_document(codec: FlatBuffersJsonCodec, table: str, depth: int = 0) -> dict[str, Any]:
    """A document that sets every field of `table` to a non-default value."""
    return {
        name: _sample_value(codec, name, _strip(label)[0], n, depth)
        for n, (name, label) in enumerate(codec.fields(table).items())
    }


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _generated(table: str) -> tuple[Any, Any]:
    namespace, name = table.split(".")
    module = importlib.import_module(f"edgecore.fbs.{namespace}.{name}")
    return module, getattr(module, name)


def read_with_generated(codec: FlatBuffersJsonCodec, table: str, obj: Any) -> dict[str, Any]:
    """Read a generated-class object into the codec's JSON shape, field by field."""
    enums = codec.enums

    def convert(label: str, value: Any) -> Any:
        if label == "string":
            return value.decode("utf-8")
        if label in enums:
            return {v: k for k, v in enums[label].items()}.get(value, value)
        if label in codec.tables:
            return read_with_generated(codec, label, value)
        return value

    out: dict[str, Any] = {}
    for name, raw_label in codec.fields(table).items():
        label, _ = _strip(raw_label)
        camel = _camel(name)
        if label.startswith("["):
            if getattr(obj, f"{camel}IsNone")():
                continue
            count = getattr(obj, f"{camel}Length")()
            out[name] = [convert(label[1:-1], getattr(obj, camel)(i)) for i in range(count)]
        else:
            value = getattr(obj, camel)()
            if value is not None:
                out[name] = convert(label, value)
    return out


def build_with_generated(
    codec: FlatBuffersJsonCodec, builder: flatbuffers.Builder, table: str, data: dict[str, Any]
) -> int:
    """Build `data` with the generated builder functions (children first)."""
    module, _ = _generated(table)
    short = table.split(".")[1]
    fields = codec.fields(table)
    enums = codec.enums
    offsets: dict[str, int] = {}
    for name, value in data.items():
        label, _ = _strip(fields[name])
        if label == "string":
            offsets[name] = builder.CreateString(value)
        elif label in codec.tables:
            offsets[name] = build_with_generated(codec, builder, label, value)
        elif label.startswith("["):
            inner = label[1:-1]
            if inner == "string":
                items = [builder.CreateString(v) for v in value]
            elif inner in codec.tables:
                items = [build_with_generated(codec, builder, inner, v) for v in value]
            else:
                raise AssertionError(f"no scalar vectors in the schemas: {table}.{name}")
            getattr(module, f"{short}Start{_camel(name)}Vector")(builder, len(items))
            for item in reversed(items):
                builder.PrependUOffsetTRelative(item)
            offsets[name] = builder.EndVector()
    getattr(module, f"{short}Start")(builder)
    for name, value in data.items():
        label, _ = _strip(fields[name])
        wire = offsets.get(name, value)
        if label in enums:
            wire = enums[label][value]
        getattr(module, f"{short}Add{_camel(name)}")(builder, wire)
    return int(getattr(module, f"{short}End")(builder))


def _generated_bytes(codec: FlatBuffersJsonCodec, table: str, data: dict[str, Any]) -> bytes:
    builder = flatbuffers.Builder(0)
    builder.Finish(build_with_generated(codec, builder, table, data))
    return bytes(builder.Output())


# --- loading -----------------------------------------------------------------


def test_packaged_schemas_cover_every_fbs_file() -> None:
    packaged = {
        entry.name.removesuffix(".bfbs")
        for entry in importlib.resources.files("edgecore.fbs_schema").iterdir()
        if entry.name.endswith(".bfbs")
    }
    assert packaged == {path.stem for path in SCHEMA_DIR.glob("*.fbs")}


def test_catalogue_tables_are_all_known(codec: FlatBuffersJsonCodec) -> None:
    assert len(CATALOGUE_TABLES) == 18 * 2 + 13
    assert set(CATALOGUE_TABLES) <= set(codec.tables)
    assert {"gateway.ServerTimeEvent", "gateway.ErrorResponse", "user.Planet"} <= set(codec.tables)


def test_default_codec_is_shared() -> None:
    assert default_codec() is default_codec()


def test_fields_follow_the_fbs_source(codec: FlatBuffersJsonCodec) -> None:
    # Independent of the reflection reader: the field names, in id order, as
    # written in schema/*.fbs.

    aliases = {"int32": "int", "int64": "long", "float64": "double", "uint8": "ubyte"}
    table_re = re.compile(r"^table (\w+) \{(.*?)^\}", re.MULTILINE | re.DOTALL)
    field_re = re.compile(r"^\s*(\w+): (\[?[\w.]+\]?)(?: = (\w+))? \(id: (\d+)\);", re.MULTILINE)
    seen = 0
    for path in sorted(SCHEMA_DIR.glob("*.fbs")):
        text = path.read_text("utf-8")
        namespace = re.search(r"^namespace (\w+);", text, re.MULTILINE)
        assert namespace
        for match in table_re.finditer(text):
            table = f"{namespace.group(1)}.{match.group(1)}"
            expected = {}
            for name, type_, default, _id in sorted(
                field_re.findall(match.group(2)), key=lambda m: int(m[3])
            ):
                inner = type_.strip("[]")
                inner = aliases.get(inner, inner)
                if inner not in ("string", "bool", "int", "long", "double", "ubyte"):
                    inner = f"{namespace.group(1)}.{inner}"
                label = f"[{inner}]" if type_.startswith("[") else inner
                if default == "null":
                    label += "?"
                expected[name] = label
            assert codec.fields(table) == expected, table
            seen += 1
    assert seen == len(codec.tables)


# --- round trips for every catalogued table -------------------------------------


@pytest.mark.parametrize("table", CATALOGUE_TABLES)
def test_full_document_round_trips(codec: FlatBuffersJsonCodec, table: str) -> None:
    doc = sample_document(codec, table)
    payload = codec.encode(table, doc)
    assert codec.decode(table, payload) == doc
    # Canonical: decoding and re-encoding reproduces the same bytes, and the
    # key order of the input does not matter.
    assert codec.encode(table, codec.decode(table, payload)) == payload
    assert codec.encode(table, dict(reversed(doc.items()))) == payload


@pytest.mark.parametrize("table", CATALOGUE_TABLES)
def test_encode_is_readable_by_generated_classes(codec: FlatBuffersJsonCodec, table: str) -> None:
    doc = sample_document(codec, table)
    _, cls = _generated(table)
    assert read_with_generated(codec, table, cls.GetRootAs(codec.encode(table, doc), 0)) == doc


@pytest.mark.parametrize("table", CATALOGUE_TABLES)
def test_decode_reads_generated_builder_output(codec: FlatBuffersJsonCodec, table: str) -> None:
    doc = sample_document(codec, table)
    assert codec.decode(table, _generated_bytes(codec, table, doc)) == doc


@pytest.mark.parametrize("table", CATALOGUE_TABLES)
def test_empty_document_decodes_to_defaults(codec: FlatBuffersJsonCodec, table: str) -> None:
    decoded = codec.decode(table, codec.encode(table, {}))
    # Only plain scalars appear, with their defaults.
    for name, raw_label in codec.fields(table).items():
        label, optional = _strip(raw_label)
        if optional or label == "string" or label.startswith("[") or label in codec.tables:
            assert name not in decoded
        elif label in ("bool",):
            assert decoded[name] is False
        elif label in codec.enums:
            assert codec.enums[label][decoded[name]] == 0
        else:
            assert decoded[name] == 0
    assert codec.decode(table, _generated_bytes(codec, table, {})) == decoded


# --- specific cross-checks with the generated code ------------------------------

PLANETS = [
    {
        "number": 1,
        "name": "Home",
        "kind": "Local",
        "x": 10.5,
        "y": 20.25,
        "owner": "Zorg",
        "size": 1000.0,
        "population": 950.5,
        "industry": 800.0,
        "resources": 10.0,
        "production": "Capital",
        "capital": 5.0,
        "materials": 2.5,
        "colonists": 1.25,
        "free_industry": 3.0,
    },
    {"number": 2, "name": "Rival", "kind": "Other", "x": 1.0, "y": 2.0, "owner": "Klak"},
    {"number": 3, "name": "Rock", "kind": "Uninhabited", "x": 3.0, "y": 4.0, "size": 12.0},
    {"number": 4, "kind": "Unidentified", "x": 99.75, "y": 0.5},
]


def test_games_report_with_all_planet_kinds_reads_back_with_generated_code(
    codec: FlatBuffersJsonCodec,
) -> None:

    doc = {
        "game_id": "g-42",
        "turn": 17,
        "map_width": 250.0,
        "map_height": 180.5,
        "race_name": "Zorg",
        "planets": PLANETS,
        "generated_at_ms": 1_765_000_000_123,
    }
    payload = codec.encode("user.GamesReportResponse", doc)
    report = GamesReportResponse.GetRootAs(payload, 0)
    assert report.GameId() == b"g-42"
    assert report.Turn() == 17
    assert report.MapHeight() == 180.5
    assert report.GeneratedAtMs() == 1_765_000_000_123
    assert report.PlanetsLength() == 4
    kinds = [report.Planets(i).Kind() for i in range(4)]
    assert kinds == [
        PlanetKind.Local,
        PlanetKind.Other,
        PlanetKind.Uninhabited,
        PlanetKind.Unidentified,
    ]
    assert report.Planets(0).FreeIndustry() == 3.0
    assert report.Planets(1).Owner() == b"Klak"
    assert report.Planets(2).Size() == 12.0
    assert report.Planets(3).Name() is None
    assert report.Planets(3).X() == 99.75

    decoded = codec.decode("user.GamesReportResponse", payload)
    # Absent planet scalars come back as defaults; absent strings stay absent.
    assert decoded["planets"][3] == {
        "number": 4,
        "kind": "Unidentified",
        "x": 99.75,
        "y": 0.5,
        "size": 0.0,
        "population": 0.0,
        "industry": 0.0,
        "resources": 0.0,
        "capital": 0.0,
        "materials": 0.0,
        "colonists": 0.0,
        "free_industry": 0.0,
    }
    assert decoded["planets"][0] == PLANETS[0]


def test_my_games_list_current_turn(codec: FlatBuffersJsonCodec) -> None:

    doc = {
        "games": [
            {"game_id": "g-1", "name": "One", "status": "Running", "current_turn": 12},
            {"game_id": "g-2", "status": "Draft", "visibility": "Private"},
        ],
        "next_page_token": "",
    }
    payload = codec.encode("lobby.MyGamesListResponse", doc)
    response = MyGamesListResponse.GetRootAs(payload, 0)
    assert response.GamesLength() == 2
    assert response.Games(0).CurrentTurn() == 12
    assert response.Games(0).Status() == GameStatus.Running
    assert response.Games(1).CurrentTurn() == 0
    assert response.Games(1).Visibility() == 1
    assert response.NextPageToken() == b""

    decoded = codec.decode("lobby.MyGamesListResponse", payload)
    assert decoded["next_page_token"] == ""
    assert decoded["games"][0]["current_turn"] == 12
    assert decoded["games"][1]["visibility"] == "Private"
    assert decoded["games"][1]["current_turn"] == 0
    assert "owner_user_id" not in decoded["games"][1]


def test_server_time_event_both_ways(codec: FlatBuffersJsonCodec) -> None:
    for value in (0, 1, 1_765_000_000_000, -(2**63), 2**63 - 1):
        assert codec.decode(
            "gateway.ServerTimeEvent", payloads.encode_server_time_event(value)
        ) == {"server_time_ms": value}
        encoded = codec.encode("gateway.ServerTimeEvent", {"server_time_ms": value})
        assert payloads.decode_server_time_event(encoded) == value


def test_error_response_both_ways(codec: FlatBuffersJsonCodec) -> None:
    payload = payloads.encode_error_response("not_found", "no such game \u2603")
    assert codec.decode("gateway.ErrorResponse", payload) == {
        "code": "not_found",
        "message": "no such game \u2603",
    }
    encoded = codec.encode("gateway.ErrorResponse", {"code": "conflict", "message": "taken"})
    assert payloads.decode_error_response(encoded) == ("conflict", "taken")


# --- JSON conventions ----------------------------------------------------------


def test_optional_scalars_absent_false_and_true(codec: FlatBuffersJsonCodec) -> None:

    table = "user.SettingsUpdateRequest"
    assert codec.decode(table, codec.encode(table, {})) == {}
    assert codec.decode(table, codec.encode(table, {"email_notifications_enabled": None})) == {}
    doc = {"email_notifications_enabled": False, "push_notifications_enabled": True}
    payload = codec.encode(table, doc)
    assert codec.decode(table, payload) == doc
    generated = SettingsUpdateRequest.GetRootAs(payload, 0)
    assert generated.EmailNotificationsEnabled() is False
    assert generated.PushNotificationsEnabled() is True
    assert (
        SettingsUpdateRequest.GetRootAs(codec.encode(table, {}), 0).EmailNotificationsEnabled()
        is None
    )
    # A generated builder that sets the optional field to False is read as present.
    assert codec.decode(
        table, _generated_bytes(codec, table, {"email_notifications_enabled": False})
    ) == {"email_notifications_enabled": False}


def test_null_means_absent_for_strings_tables_vectors(codec: FlatBuffersJsonCodec) -> None:
    table = "lobby.GameCreateRequest"
    assert codec.encode(table, {"name": None, "settings": None}) == codec.encode(table, {})
    assert codec.encode(
        "user.SettingsUpdateRequest", {"muted_notification_kinds": None}
    ) == codec.encode("user.SettingsUpdateRequest", {})


def test_empty_string_and_vector_are_present(codec: FlatBuffersJsonCodec) -> None:
    table = "user.SettingsUpdateRequest"
    doc = {"preferred_language": "", "muted_notification_kinds": []}
    assert codec.decode(table, codec.encode(table, doc)) == doc


def test_enums_accept_names_and_integers(codec: FlatBuffersJsonCodec) -> None:
    table = "lobby.PublicGamesListRequest"
    by_name = codec.encode(table, {"status": "Running"})
    assert codec.encode(table, {"status": 4}) == by_name
    assert codec.decode(table, by_name)["status"] == "Running"
    # An integer no value names (a newer peer's value) survives a round trip.
    unknown = codec.encode(table, {"status": 99})
    assert codec.decode(table, unknown)["status"] == 99
    assert codec.encode(table, codec.decode(table, unknown)) == unknown


def test_defaults_are_not_stored(codec: FlatBuffersJsonCodec) -> None:
    table = "lobby.GameCreateRequest"
    assert codec.encode(table, {"min_players": 0, "visibility": "Public"}) == codec.encode(
        table, {}
    )
    assert len(codec.encode(table, {})) == 12


def test_decode_accepts_bytearray_and_memoryview(codec: FlatBuffersJsonCodec) -> None:
    payload = codec.encode("gateway.ErrorResponse", {"code": "c"})
    assert codec.decode("gateway.ErrorResponse", bytearray(payload)) == {"code": "c"}
    assert codec.decode("gateway.ErrorResponse", memoryview(payload)) == {"code": "c"}


def test_unicode_strings(codec: FlatBuffersJsonCodec) -> None:
    doc = {"code": "", "message": "\u00e9\u4e2d\U0001f680\x00end"}
    assert codec.decode("gateway.ErrorResponse", codec.encode("gateway.ErrorResponse", doc)) == doc


def test_decoded_documents_are_json_serialisable(codec: FlatBuffersJsonCodec) -> None:
    for table in CATALOGUE_TABLES:
        decoded = codec.decode(table, codec.encode(table, sample_document(codec, table)))
        assert json.loads(json.dumps(decoded)) == decoded


# --- validation errors -----------------------------------------------------------

_OPTIONS = [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}, {"name": "c", "value": 3}]

VALIDATION_CASES: list[tuple[str, Any, str]] = [
    ("user.AccountGetRequest", {"foo": 1}, "user.AccountGetRequest: unknown field 'foo'"),
    ("user.AccountGetRequest", {1: 1}, "user.AccountGetRequest: unknown field 1"),
    ("user.AccountGetRequest", [], "user.AccountGetRequest: expected object"),
    ("user.AccountGetRequest", None, "user.AccountGetRequest: expected object"),
    (
        "lobby.GameCreateRequest",
        {"settings": {"options": _OPTIONS}},
        "lobby.GameCreateRequest.settings.options[2].value: expected string",
    ),
    (
        "lobby.GameCreateRequest",
        {"settings": {"options": [{"name": "a", "bogus": 1}]}},
        "lobby.GameCreateRequest.settings.options[0]: unknown field 'bogus'",
    ),
    (
        "lobby.GameCreateRequest",
        {"min_players": "3"},
        "lobby.GameCreateRequest.min_players: expected integer",
    ),
    (
        "lobby.GameCreateRequest",
        {"min_players": True},
        "lobby.GameCreateRequest.min_players: expected integer",
    ),
    (
        "lobby.GameCreateRequest",
        {"min_players": 3.0},
        "lobby.GameCreateRequest.min_players: expected integer",
    ),
    (
        "lobby.GameCreateRequest",
        {"min_players": None},
        "lobby.GameCreateRequest.min_players: expected integer",
    ),
    (
        "lobby.GameCreateRequest",
        {"min_players": 2**31},
        "lobby.GameCreateRequest.min_players: value 2147483648 out of range for int"
        " (-2147483648..2147483647)",
    ),
    (
        "lobby.GameCreateRequest",
        {"settings": {"enrollment_deadline_ms": 2**63}},
        "lobby.GameCreateRequest.settings.enrollment_deadline_ms: value 9223372036854775808"
        " out of range for long (-9223372036854775808..9223372036854775807)",
    ),
    (
        "lobby.GameCreateRequest",
        {"visibility": "Secret"},
        "lobby.GameCreateRequest.visibility: unknown lobby.GameVisibility value 'Secret'",
    ),
    (
        "lobby.GameCreateRequest",
        {"visibility": "private"},
        "lobby.GameCreateRequest.visibility: unknown lobby.GameVisibility value 'private'",
    ),
    (
        "lobby.GameCreateRequest",
        {"visibility": 128},
        "lobby.GameCreateRequest.visibility: value 128 out of range for lobby.GameVisibility (byte)",
    ),
    (
        "lobby.GameCreateRequest",
        {"visibility": True},
        "lobby.GameCreateRequest.visibility: expected lobby.GameVisibility name or integer",
    ),
    (
        "lobby.GameCreateRequest",
        {"visibility": 1.0},
        "lobby.GameCreateRequest.visibility: expected lobby.GameVisibility name or integer",
    ),
    ("lobby.GameCreateRequest", {"name": 5}, "lobby.GameCreateRequest.name: expected string"),
    ("lobby.GameCreateRequest", {"name": b"raw"}, "lobby.GameCreateRequest.name: expected string"),
    (
        "lobby.GameCreateRequest",
        {"name": "bad \ud800"},
        "lobby.GameCreateRequest.name: string is not encodable as UTF-8 (lone surrogate)",
    ),
    (
        "lobby.GameCreateRequest",
        {"settings": []},
        "lobby.GameCreateRequest.settings: expected object",
    ),
    (
        "lobby.GameCreateRequest",
        {"settings": "x"},
        "lobby.GameCreateRequest.settings: expected object",
    ),
    (
        "user.SessionsRevokeAllRequest",
        {"keep_current": 1},
        "user.SessionsRevokeAllRequest.keep_current: expected boolean",
    ),
    (
        "user.SessionsRevokeAllRequest",
        {"keep_current": "true"},
        "user.SessionsRevokeAllRequest.keep_current: expected boolean",
    ),
    (
        "user.SettingsUpdateRequest",
        {"email_notifications_enabled": 0},
        "user.SettingsUpdateRequest.email_notifications_enabled: expected boolean",
    ),
    (
        "user.SettingsUpdateRequest",
        {"muted_notification_kinds": "lobby.invite.received"},
        "user.SettingsUpdateRequest.muted_notification_kinds: expected array",
    ),
    (
        "user.SettingsUpdateRequest",
        {"muted_notification_kinds": {"a": 1}},
        "user.SettingsUpdateRequest.muted_notification_kinds: expected array",
    ),
    (
        "user.SettingsUpdateRequest",
        {"muted_notification_kinds": ["a", None]},
        "user.SettingsUpdateRequest.muted_notification_kinds[1]: expected string",
    ),
    (
        "user.GamesReportResponse",
        {"planets": [{"x": "1"}]},
        "user.GamesReportResponse.planets[0].x: expected number",
    ),
    (
        "user.GamesReportResponse",
        {"planets": [{"x": False}]},
        "user.GamesReportResponse.planets[0].x: expected number",
    ),
    (
        "user.GamesReportResponse",
        {"planets": [{}, None]},
        "user.GamesReportResponse.planets[1]: expected object",
    ),
    (
        "user.GamesReportResponse",
        {"planets": [{"kind": "Home"}]},
        "user.GamesReportResponse.planets[0].kind: unknown user.PlanetKind value 'Home'",
    ),
    (
        "user.GamesReportResponse",
        {"map_width": 10**400},
        "user.GamesReportResponse.map_width: value " + str(10**400) + " out of range for double",
    ),
    (
        "user.AccountGetResponse",
        {"settings": {"muted_notification_kinds": ["a", "b", 3]}},
        "user.AccountGetResponse.settings.muted_notification_kinds[2]: expected string",
    ),
]


@pytest.mark.parametrize(("table", "data", "message"), VALIDATION_CASES)
def test_validation_errors(
    codec: FlatBuffersJsonCodec, table: str, data: Any, message: str
) -> None:
    with pytest.raises(FbJsonError) as info:
        codec.encode(table, data)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_unknown_table(codec: FlatBuffersJsonCodec) -> None:
    with pytest.raises(FbJsonError, match=r"^unknown table 'user\.Nope'$"):
        codec.encode("user.Nope", {})
    with pytest.raises(FbJsonError, match=r"^unknown table 'AccountGetRequest'$"):
        codec.decode("AccountGetRequest", b"")


# --- hostile buffers ---------------------------------------------------------------


def _field_position(buf: bytes, table_pos: int, field_id: int) -> int:
    """Absolute position of a field's inline value (test helper, trusted input)."""
    vtable = table_pos - struct.unpack_from("<i", buf, table_pos)[0]
    (offset,) = struct.unpack_from("<H", buf, vtable + 4 + 2 * field_id)
    assert offset
    return table_pos + offset


def _root(buf: bytes) -> int:
    return int(struct.unpack_from("<I", buf, 0)[0])


def _decode_error(codec: FlatBuffersJsonCodec, table: str, payload: bytes) -> str:
    with pytest.raises(FbJsonError) as info:
        codec.decode(table, payload)
    return str(info.value)


def _report(codec: FlatBuffersJsonCodec) -> bytes:
    return codec.encode(
        "user.GamesReportResponse",
        {"game_id": "g", "turn": 3, "planets": PLANETS, "race_name": "r"},
    )


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x01\x02\x03"])
def test_too_short(codec: FlatBuffersJsonCodec, payload: bytes) -> None:
    assert _decode_error(codec, "user.AccountGetRequest", payload) == (
        "user.AccountGetRequest: malformed buffer: shorter than the root offset"
    )


def test_root_offset_out_of_bounds(codec: FlatBuffersJsonCodec) -> None:
    assert _decode_error(codec, "user.AccountGetRequest", b"\xff\xff\xff\xff") == (
        "user.AccountGetRequest: malformed buffer: table offset out of bounds"
    )


def test_every_truncation_fails_cleanly(codec: FlatBuffersJsonCodec) -> None:
    payload = _report(codec)
    for size in range(len(payload)):
        try:
            codec.decode("user.GamesReportResponse", payload[:size])
        except FbJsonError as exc:
            assert "unexpected" not in str(exc)


def test_huge_vector_length(codec: FlatBuffersJsonCodec) -> None:
    payload = bytearray(_report(codec))
    field = _field_position(payload, _root(payload), 5)  # planets
    vector = field + struct.unpack_from("<I", payload, field)[0]
    struct.pack_into("<I", payload, vector, 2**31)
    assert _decode_error(codec, "user.GamesReportResponse", bytes(payload)) == (
        "user.GamesReportResponse.planets: malformed buffer: vector of 2147483648 elements"
        " extends past the end of the buffer"
    )


def test_huge_string_length(codec: FlatBuffersJsonCodec) -> None:
    payload = bytearray(_report(codec))
    planets_field = _field_position(payload, _root(payload), 5)
    vector = planets_field + struct.unpack_from("<I", payload, planets_field)[0]
    first = vector + 4 + struct.unpack_from("<I", payload, vector + 4)[0]
    name_field = _field_position(payload, first, 1)
    string = name_field + struct.unpack_from("<I", payload, name_field)[0]
    struct.pack_into("<I", payload, string, 0xFFFFFFFF)
    assert _decode_error(codec, "user.GamesReportResponse", bytes(payload)) == (
        "user.GamesReportResponse.planets[0].name: malformed buffer: string extends past"
        " the end of the buffer"
    )


def test_invalid_utf8(codec: FlatBuffersJsonCodec) -> None:
    payload = bytearray(codec.encode("gateway.ErrorResponse", {"code": "ab", "message": "m"}))
    index = payload.index(b"ab")
    payload[index : index + 2] = b"\xed\xa0"  # an encoded surrogate: not UTF-8
    assert _decode_error(codec, "gateway.ErrorResponse", bytes(payload)) == (
        "gateway.ErrorResponse.code: malformed buffer: string is not valid UTF-8"
    )


def test_self_referencing_offsets(codec: FlatBuffersJsonCodec) -> None:
    payload = bytearray(codec.encode("lobby.GameCreateRequest", {"settings": {"description": "d"}}))
    root = _root(payload)
    field = _field_position(payload, root, 4)  # settings
    struct.pack_into("<I", payload, field, 0)  # the table "starts" at its own offset
    message = _decode_error(codec, "lobby.GameCreateRequest", bytes(payload))
    assert message.startswith("lobby.GameCreateRequest.settings: malformed buffer: ")
    # A table whose vtable offset points at the table itself.
    payload = bytearray(codec.encode("lobby.GameCreateRequest", {"name": "n"}))
    struct.pack_into("<i", payload, _root(payload), 0)
    assert _decode_error(codec, "lobby.GameCreateRequest", bytes(payload)) == (
        "lobby.GameCreateRequest: malformed buffer: vtable out of bounds"
    )
    # A vtable offset pointing before the buffer start / past its end.
    for soffset in (2**31 - 1, -(2**31)):
        struct.pack_into("<i", payload, _root(payload), soffset)
        assert _decode_error(codec, "lobby.GameCreateRequest", bytes(payload)) == (
            "lobby.GameCreateRequest: malformed buffer: vtable offset out of bounds"
        )


def test_field_outside_its_table(codec: FlatBuffersJsonCodec) -> None:
    payload = bytearray(codec.encode("user.GamesReportRequest", {"turn": 5}))
    root = _root(payload)
    vtable = root - struct.unpack_from("<i", payload, root)[0]
    struct.pack_into("<H", payload, vtable + 2, 4)  # table size too small for the field
    assert _decode_error(codec, "user.GamesReportRequest", bytes(payload)) == (
        "user.GamesReportRequest: malformed buffer: field 'turn' lies outside its table"
    )


def test_shared_subtrees_hit_the_element_limit(codec: FlatBuffersJsonCodec) -> None:
    # user.GamesOrderRequest.orders: 1000 entries that all point at ONE
    # GameCommand whose args are 1000 entries pointing at ONE string: an 8 KiB
    # buffer that would expand to 10^6 strings without the element bound.
    width = 1000
    builder = flatbuffers.Builder(0)
    arg = builder.CreateString("a")
    builder.StartVector(4, width, 4)
    for _ in range(width):
        builder.PrependUOffsetTRelative(arg)
    args = builder.EndVector()
    builder.StartObject(2)  # user.GameCommand
    builder.PrependUOffsetTRelativeSlot(1, args, 0)
    command = builder.EndObject()
    builder.StartVector(4, width, 4)
    for _ in range(width):
        builder.PrependUOffsetTRelative(command)
    orders = builder.EndVector()
    builder.StartObject(3)  # user.GamesOrderRequest
    builder.PrependUOffsetTRelativeSlot(2, orders, 0)
    builder.Finish(builder.EndObject())
    payload = bytes(builder.Output())
    assert len(payload) < 10_000
    message = _decode_error(codec, "user.GamesOrderRequest", payload)
    assert message.startswith("user.GamesOrderRequest.orders[")
    assert message.endswith(
        f"].args: payload exceeds the limit of {DEFAULT_MAX_ELEMENTS} decoded objects and"
        " vector elements"
    )


def test_shared_strings_hit_the_string_limit(codec: FlatBuffersJsonCodec) -> None:
    builder = flatbuffers.Builder(0)
    big = builder.CreateString("x" * 4096)
    count = DEFAULT_MAX_STRING_BYTES // 4096 + 1
    builder.StartVector(4, count, 4)
    for _ in range(count):
        builder.PrependUOffsetTRelative(big)
    vector = builder.EndVector()
    builder.StartObject(5)  # user.SettingsUpdateRequest.muted_notification_kinds
    builder.PrependUOffsetTRelativeSlot(4, vector, 0)
    builder.Finish(builder.EndObject())
    payload = bytes(builder.Output())
    assert len(payload) < 32_768
    assert _decode_error(codec, "user.SettingsUpdateRequest", payload) == (
        "user.SettingsUpdateRequest.muted_notification_kinds[4096]: payload exceeds the limit"
        f" of {DEFAULT_MAX_STRING_BYTES} decoded string bytes"
    )


def test_small_limits_are_enforced() -> None:
    strict = FlatBuffersJsonCodec(max_depth=2, max_elements=5, max_string_bytes=3)
    codec = FlatBuffersJsonCodec()
    nested = {"settings": {"options": [{"name": "a"}]}}  # depth 3
    with pytest.raises(FbJsonError) as info:
        strict.encode("lobby.GameCreateRequest", nested)
    assert str(info.value) == (
        "lobby.GameCreateRequest.settings.options[0]: nesting deeper than 2 tables"
    )
    assert _decode_error(
        strict, "lobby.GameCreateRequest", codec.encode("lobby.GameCreateRequest", nested)
    ) == ("lobby.GameCreateRequest.settings.options[0]: nesting deeper than 2 tables")
    kinds = {"muted_notification_kinds": ["a", "b", "c", "d", "e"]}
    assert _decode_error(
        strict, "user.SettingsUpdateRequest", codec.encode("user.SettingsUpdateRequest", kinds)
    ) == (
        "user.SettingsUpdateRequest.muted_notification_kinds: payload exceeds the limit of 5"
        " decoded objects and vector elements"
    )
    assert _decode_error(
        strict, "gateway.ErrorResponse", codec.encode("gateway.ErrorResponse", {"code": "abcd"})
    ) == ("gateway.ErrorResponse.code: payload exceeds the limit of 3 decoded string bytes")
    with pytest.raises(ValueError, match="limits"):
        FlatBuffersJsonCodec(max_depth=0)


FUZZ_TABLES = [
    "user.GamesReportResponse",
    "lobby.MyGamesListResponse",
    "lobby.GameCreateRequest",
    "user.SessionsListResponse",
    "user.AccountGetResponse",
    "gateway.ServerTimeEvent",
    "notification.RuntimeStartConfigInvalidEvent",
]


def _decode_or_error(codec: FlatBuffersJsonCodec, table: str, payload: bytes) -> None:
    try:
        decoded = codec.decode(table, payload)
    except FbJsonError as exc:
        assert "unexpected" not in str(exc), str(exc)
        assert str(exc).startswith(table)
        return
    # Whatever decodes is a valid document: it re-encodes without error.
    codec.encode(table, decoded)


def test_random_bytes_fail_cleanly(codec: FlatBuffersJsonCodec) -> None:
    rng = random.Random(20_251_219)
    for i in range(4000):
        size = rng.choice((rng.randrange(0, 16), rng.randrange(0, 96), rng.randrange(0, 600)))
        payload = rng.randbytes(size)
        if size >= 4 and i % 2:
            # A plausible root offset makes the fuzzing reach deeper.
            payload = struct.pack("<I", rng.randrange(0, max(size - 3, 1))) + payload[4:]
        _decode_or_error(codec, FUZZ_TABLES[i % len(FUZZ_TABLES)], payload)


def test_mutated_valid_buffers_fail_cleanly(codec: FlatBuffersJsonCodec) -> None:
    rng = random.Random(7)
    seeds = {table: codec.encode(table, sample_document(codec, table)) for table in FUZZ_TABLES}
    seeds["user.GamesReportResponse"] = _report(codec)
    for i in range(4000):
        table = FUZZ_TABLES[i % len(FUZZ_TABLES)]
        payload = bytearray(seeds[table])
        for _ in range(rng.randrange(1, 6)):
            position = rng.randrange(len(payload))
            if rng.random() < 0.5:
                payload[position] = rng.randrange(256)
            else:
                payload[position] ^= 1 << rng.randrange(8)
        _decode_or_error(codec, table, bytes(payload))


# --- schemas compiled at test time (need flatc) --------------------------------------


def _flatc() -> str | None:
    found = shutil.which("flatc")
    if found:
        return found
    candidate = Path(sys.prefix) / "bin" / "flatc"
    return str(candidate) if candidate.exists() else None


needs_flatc = pytest.mark.skipif(_flatc() is None, reason="flatc is not installed")

TEST_SCHEMA = """
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
  d: double (id: 11);
  color: Color = Green (id: 12);
  colors: [Color] (id: 13);
  bytes: [ubyte] (id: 14);
  longs: [long] (id: 15);
  floats: [float] (id: 16);
  flags: [bool] (id: 17);
  child: Node (id: 18);
  children: [Node] (id: 19);
  opt: int = null (id: 20);
  dflt: int = 42 (id: 21);
  tags: [string] (id: 22);
  shorts: [short] (id: 23);
}
root_type Node;
"""

NODE_DEFAULTS = {
    "b": 0,
    "ub": 0,
    "s": 0,
    "us": 0,
    "i": 0,
    "ui": 0,
    "l": 0,
    "ul": 0,
    "f": 0.0,
    "d": 0.0,
    "color": "Green",
    "dflt": 42,
}


def _compile(tmp_path: Path, source: str, name: str = "t") -> bytes:
    flatc = _flatc()
    assert flatc is not None
    schema = tmp_path / f"{name}.fbs"
    schema.write_text(source, "utf-8")
    subprocess.run(
        [flatc, "--binary", "--schema", "-o", str(tmp_path), str(schema)],
        check=True,
        capture_output=True,
    )
    return (tmp_path / f"{name}.bfbs").read_bytes()


@pytest.fixture
def node_bfbs(tmp_path: Path) -> bytes:
    """TEST_SCHEMA compiled into tmp_path (t.fbs, t.bfbs)."""
    return _compile(tmp_path, TEST_SCHEMA)


@pytest.fixture
def node_codec(node_bfbs: bytes) -> FlatBuffersJsonCodec:
    return FlatBuffersJsonCodec([node_bfbs])


@needs_flatc
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("namespace t; struct P { x: int; } table T { p: P; }", "structs are not supported"),
        ("namespace t; struct P { x: int; }", "structs are not supported"),
        ("namespace t; table A {} union U { A } table T { u: U; }", "unions are not supported"),
    ],
)
def test_unsupported_schema_features_fail_clearly(
    tmp_path: Path, source: str, message: str
) -> None:
    with pytest.raises(FbJsonError, match=message):
        FlatBuffersJsonCodec([_compile(tmp_path, source)])


def test_corrupt_binary_schemas_fail_clearly() -> None:
    with pytest.raises(FbJsonError, match="not a binary FlatBuffers schema"):
        FlatBuffersJsonCodec([b"garbage!"])
    with pytest.raises(FbJsonError, match="corrupt binary schema"):
        FlatBuffersJsonCodec([b"\xff\xff\x00\x00BFBS"])


@needs_flatc
def test_every_scalar_width_round_trips(node_codec: FlatBuffersJsonCodec) -> None:
    doc = {
        "name": "n",
        "b": -128,
        "ub": 255,
        "s": -32768,
        "us": 65535,
        "i": -(2**31),
        "ui": 2**32 - 1,
        "l": -(2**63),
        "ul": 2**64 - 1,
        "f": 1.5,
        "d": -2.25,
        "color": "Blue",
        "colors": ["Red", "Blue", 7],
        "bytes": [0, 255],
        "longs": [-1, 9_007_199_254_740_993],
        "floats": [0.5, -1.25],
        "flags": [True, False],
        "child": {"name": "c", "opt": 0, **NODE_DEFAULTS},
        "children": [{"name": "k0", **NODE_DEFAULTS}, {**NODE_DEFAULTS, "name": "k1", "dflt": 0}],
        "opt": 7,
        "dflt": 42,
        "tags": ["a", ""],
        "shorts": [1, -2, 3],
    }
    assert node_codec.decode("t.Node", node_codec.encode("t.Node", doc)) == doc


@needs_flatc
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "t.Node: missing required field 'name'"),
        ({"name": "n", "child": {}}, "t.Node.child: missing required field 'name'"),
        ({"name": "n", "old": 1}, "t.Node: field 'old' is deprecated"),
        ({"name": "n", "b": 128}, "t.Node.b: value 128 out of range for byte (-128..127)"),
        ({"name": "n", "ub": -1}, "t.Node.ub: value -1 out of range for ubyte (0..255)"),
        ({"name": "n", "us": 65536}, "t.Node.us: value 65536 out of range for ushort (0..65535)"),
        (
            {"name": "n", "ul": -1},
            "t.Node.ul: value -1 out of range for ulong (0..18446744073709551615)",
        ),
        ({"name": "n", "f": 1e39}, "t.Node.f: value 1e+39 out of range for float"),
        (
            {"name": "n", "bytes": [1, 256]},
            "t.Node.bytes[1]: value 256 out of range for ubyte (0..255)",
        ),
        ({"name": "n", "flags": [True, 1]}, "t.Node.flags[1]: expected boolean"),
        (
            {"name": "n", "colors": ["Red", "Pink"]},
            "t.Node.colors[1]: unknown t.Color value 'Pink'",
        ),
        (
            {"name": "n", "colors": [256]},
            "t.Node.colors[0]: value 256 out of range for t.Color (ubyte)",
        ),
        ({"name": "n", "floats": [1, "2"]}, "t.Node.floats[1]: expected number"),
        (
            {"name": "n", "children": [{"name": "a"}, {"name": "b", "i": 0.5}]},
            "t.Node.children[1].i: expected integer",
        ),
    ],
)
def test_node_validation(
    node_codec: FlatBuffersJsonCodec, data: dict[str, Any], message: str
) -> None:
    with pytest.raises(FbJsonError) as info:
        node_codec.encode("t.Node", data)
    assert str(info.value) == message


@needs_flatc
def test_decode_rejects_a_missing_required_field(node_codec: FlatBuffersJsonCodec) -> None:
    builder = flatbuffers.Builder(0)
    builder.StartObject(24)
    builder.PrependInt32Slot(6, 5, 0)
    builder.Finish(builder.EndObject())
    assert _decode_error(node_codec, "t.Node", bytes(builder.Output())) == (
        "t.Node: malformed buffer: required field 'name' is missing"
    )


@needs_flatc
def test_deep_nesting_is_bounded(node_bfbs: bytes, node_codec: FlatBuffersJsonCodec) -> None:
    deep: dict[str, Any] = {"name": "leaf"}
    for level in range(70):
        deep = {"name": f"n{level}", "child": deep}
    with pytest.raises(FbJsonError, match=r"nesting deeper than 64 tables$"):
        node_codec.encode("t.Node", deep)
    lenient = FlatBuffersJsonCodec([node_bfbs], max_depth=100)
    payload = lenient.encode("t.Node", deep)
    assert lenient.decode("t.Node", payload)["child"]["name"] == "n68"
    assert _decode_error(node_codec, "t.Node", payload) == (
        "t.Node" + ".child" * 64 + ": nesting deeper than 64 tables"
    )


@needs_flatc
def test_self_referencing_document_is_bounded(node_codec: FlatBuffersJsonCodec) -> None:
    node: dict[str, Any] = {"name": "loop"}
    node["child"] = node
    with pytest.raises(FbJsonError, match=r"nesting deeper than 64 tables$"):
        node_codec.encode("t.Node", node)
    looped: dict[str, Any] = {"name": "loop", "children": []}
    looped["children"].append(looped)
    with pytest.raises(FbJsonError, match=r"^t\.Node(\.children\[0\]){64}: nesting deeper"):
        node_codec.encode("t.Node", looped)


@needs_flatc
def test_matches_flatc_json_conversion(node_codec: FlatBuffersJsonCodec, tmp_path: Path) -> None:
    """flatc's own JSON -> binary, read by the codec; the codec's binary, read by flatc."""
    flatc = _flatc()
    assert flatc is not None
    schema = tmp_path / "t.fbs"
    doc = {
        "name": "n",
        "b": -5,
        "ub": 200,
        "s": -300,
        "us": 60000,
        "i": -70000,
        "ui": 4_000_000_000,
        "l": -9_000_000_000,
        "ul": 18_000_000_000_000_000_000,
        "f": 1.5,
        "d": -2.25,
        "color": "Blue",
        "colors": ["Red", "Blue"],
        "bytes": [1, 255],
        "longs": [-1, 9_007_199_254_740_993],
        "floats": [0.5, -1.25],
        "flags": [True, False],
        "child": {"name": "c", "opt": 0},
        "children": [{"name": "k0"}, {"name": "k1", "dflt": 0}],
        "opt": 7,
        "tags": ["a", ""],
        "shorts": [1, -2, 3],
    }
    (tmp_path / "doc.json").write_text(json.dumps(doc), "utf-8")
    subprocess.run(
        [flatc, "--binary", "-o", str(tmp_path), str(schema), str(tmp_path / "doc.json")],
        check=True,
        capture_output=True,
    )
    flatc_binary = (tmp_path / "doc.bin").read_bytes()

    def flatc_json(binary: bytes) -> Any:
        (tmp_path / "in.bin").write_bytes(binary)
        out = tmp_path / "out"
        subprocess.run(
            [
                flatc,
                "--json",
                "--strict-json",
                "--defaults-json",
                "--raw-binary",
                *("-o", str(out), str(schema), "--", str(tmp_path / "in.bin")),
            ],
            check=True,
            capture_output=True,
        )
        return json.loads((out / "in.json").read_text("utf-8"))

    def drop_nulls(value: Any) -> Any:
        # flatc --defaults-json prints absent optional scalars as null; the
        # codec leaves them out.
        if isinstance(value, dict):
            return {k: drop_nulls(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [drop_nulls(v) for v in value]
        return value

    expected = drop_nulls(flatc_json(flatc_binary))
    assert node_codec.decode("t.Node", flatc_binary) == expected
    ours = node_codec.encode("t.Node", doc)
    assert drop_nulls(flatc_json(ours)) == expected


@needs_flatc
def test_packaged_bfbs_are_up_to_date(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.setdefault("FLATC", _flatc() or "flatc")
    env.setdefault("PYTHON", sys.executable)
    for run in ("a", "b"):
        subprocess.run(
            ["bash", str(REPO / "scripts" / "gen-fbs-reflection.sh"), str(tmp_path / run)],
            check=True,
            capture_output=True,
            env=env,
            cwd=tmp_path,
        )
    packaged = importlib.resources.files("edgecore.fbs_schema")
    for generated in sorted((tmp_path / "a" / "edgecore" / "fbs_schema").iterdir()):
        again = tmp_path / "b" / "edgecore" / "fbs_schema" / generated.name
        assert generated.read_bytes() == again.read_bytes(), (
            f"{generated.name} is not deterministic"
        )
        assert generated.read_bytes() == packaged.joinpath(generated.name).read_bytes(), (
            f"{generated.name} is stale: run scripts/gen-fbs-reflection.sh libs/edgecore/src"
        )


def test_describe_lists_every_table_and_field_as_plain_data() -> None:
    codec = default_codec()
    described = codec.describe()
    json.dumps(described)  # plain data, nothing of the codec's internals
    assert sorted(described["tables"]) == sorted(codec.tables)
    for name, table in described["tables"].items():
        live = [f["name"] for f in table["fields"] if not f.get("deprecated")]
        assert live == list(codec.fields(name)), name
        assert [f["id"] for f in table["fields"]] == sorted(f["id"] for f in table["fields"])
    fields = {f["name"]: f for f in described["tables"]["lobby.GameCreateRequest"]["fields"]}
    assert fields["name"] == {"name": "name", "id": 0, "type": "string"}
    assert fields["visibility"]["enum"] == "lobby.GameVisibility"
    assert fields["settings"] == {
        "name": "settings",
        "id": 4,
        "type": "table",
        "table": "lobby.GameSettings",
    }
    assert (
        described["enums"]["lobby.GameVisibility"]["values"] == codec.enums["lobby.GameVisibility"]
    )
    described["tables"].clear()  # a fresh copy: the codec is unaffected
    assert codec.describe()["tables"]
