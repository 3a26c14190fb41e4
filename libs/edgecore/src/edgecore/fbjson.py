"""Schema-driven JSON <-> FlatBuffers transcoding for every table of ``schema/*.fbs``.

:class:`FlatBuffersJsonCodec` loads the binary schemas (``.bfbs``, FlatBuffers
reflection) that ``scripts/gen-fbs-reflection.sh`` writes into
``edgecore/fbs_schema/`` and precomputes one encode/decode plan per table.
One codec instance serves all tables and is safe to share between threads and
tasks (its only mutable state is a per-table cache of inline layouts, filled
idempotently). :func:`default_codec` returns the process-wide instance.

JSON mapping (also in ``docs/flatbuffers.md``, "JSON mapping"):

* A table is a JSON object keyed by the schema's field names, exactly as
  written in the ``.fbs`` (snake_case). Tables are named by their fully
  qualified name, ``<namespace>.<Table>`` (``user.AccountGetRequest``).
* Integer scalars (``byte`` ... ``ulong``, ``long`` included) are JSON integers
  (Python ``int``), range-checked against the scalar's width. ``float`` and
  ``double`` are JSON numbers (``int`` accepted on input, ``float`` on output).
  ``bool`` is ``true``/``false``. Booleans are never accepted for numbers and
  numbers never for booleans; floats are never accepted for integers.
* Enums are their value *name* (``"Private"``) on output. Input accepts the
  name or an integer within the enum's underlying type; an integer that names
  no value is kept as is (and decoded back as that integer), so a newer peer's
  values survive a round trip.
* Strings are JSON strings (UTF-8 on the wire). Vectors are JSON arrays.
  Nested tables are JSON objects.
* Decode output: every plain scalar field is always present, with its default
  when the buffer omits it (FlatBuffers does not store defaults, so absent and
  default are indistinguishable). Optional scalars (``= null``), strings,
  tables and vectors appear only when present in the buffer; an empty string
  or vector that is present decodes as ``""`` / ``[]``. Deprecated fields are
  never emitted. Keys come in field-id order. This is what
  ``flatc --json --strict-json --defaults-json`` prints, except that flatc
  prints absent optional scalars as ``null`` where the codec leaves them out.
* Encode input: a missing key means absent (the default for scalars). ``null``
  also means absent for fields that can be absent (optional scalars, strings,
  tables, vectors); it is rejected for plain scalars and inside vectors.
  Scalars equal to their default are not written (as the generated builders
  do; so ``-0.0`` for a ``0.0`` default reads back as ``0.0``). Unknown keys,
  deprecated fields and missing ``(required)`` fields are errors. The output
  is canonical: it depends on the document's content, not on its key order,
  and ``encode(decode(b))`` reproduces ``encode``'s own output byte for byte.

Errors are :class:`FbJsonError` (a ``ValueError``) and name the offending
path, e.g. ``lobby.GameCreateRequest.settings.options[2].value: expected
string``. ``decode`` treats its input as hostile: out-of-bounds offsets,
truncation and invalid UTF-8 raise ``FbJsonError`` (never ``IndexError`` or
``struct.error``), and the nesting depth, the number of decoded objects plus
vector elements and the total decoded string bytes are bounded.

The reflection schema itself (``reflection.fbs``) is not shipped with the
Python ``flatbuffers`` runtime, so the few reflection tables needed here are
described by hand below (field ids from ``flatbuffers/reflection_generated.h``
of flatc 25.12.19) and read with this module's own hardened decoder.
"""

from __future__ import annotations

import functools
import importlib.resources
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ELEMENTS",
    "DEFAULT_MAX_STRING_BYTES",
    "FbJsonError",
    "FlatBuffersJsonCodec",
    "default_codec",
]

DEFAULT_MAX_DEPTH: Final = 64
"""Deepest table nesting accepted by ``encode``/``decode`` (the root table is depth 1)."""

DEFAULT_MAX_ELEMENTS: Final = 100_000
"""Most tables plus vector elements one ``decode`` call materialises."""

DEFAULT_MAX_STRING_BYTES: Final = 16 * 1024 * 1024
"""Most string bytes one ``decode`` call materialises (shared strings count each time)."""

SCHEMA_PACKAGE: Final = "edgecore.fbs_schema"
"""Package holding the generated ``.bfbs`` files."""


class FbJsonError(ValueError):
    """A JSON document or a FlatBuffers payload does not fit its table."""


class _Fail(Exception):
    """Internal failure; collects the path while unwinding (zero cost on success)."""

    __slots__ = ("msg", "path")

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg
        self.path: list[str] = []


# --- reflection base types (reflection.fbs `BaseType`) -----------------------

_BT_NONE: Final = 0
_BT_UTYPE: Final = 1
_BT_BOOL: Final = 2
_BT_BYTE: Final = 3
_BT_UBYTE: Final = 4
_BT_SHORT: Final = 5
_BT_USHORT: Final = 6
_BT_INT: Final = 7
_BT_UINT: Final = 8
_BT_LONG: Final = 9
_BT_ULONG: Final = 10
_BT_FLOAT: Final = 11
_BT_DOUBLE: Final = 12
_BT_STRING: Final = 13
_BT_VECTOR: Final = 14
_BT_OBJ: Final = 15
_BT_UNION: Final = 16
_BT_ARRAY: Final = 17
_BT_VECTOR64: Final = 18

_BT_NAMES: Final = {
    _BT_NONE: "none",
    _BT_UTYPE: "union type",
    _BT_BOOL: "bool",
    _BT_BYTE: "byte",
    _BT_UBYTE: "ubyte",
    _BT_SHORT: "short",
    _BT_USHORT: "ushort",
    _BT_INT: "int",
    _BT_UINT: "uint",
    _BT_LONG: "long",
    _BT_ULONG: "ulong",
    _BT_FLOAT: "float",
    _BT_DOUBLE: "double",
    _BT_STRING: "string",
    _BT_VECTOR: "vector",
    _BT_OBJ: "table",
    _BT_UNION: "union",
    _BT_ARRAY: "array",
    _BT_VECTOR64: "vector64",
}


@dataclass(frozen=True, slots=True)
class _Scalar:
    size: int
    fmt: str  # struct format character (little-endian)
    lo: int
    hi: int


_SCALARS: Final[dict[int, _Scalar]] = {
    _BT_BOOL: _Scalar(1, "?", 0, 1),
    _BT_BYTE: _Scalar(1, "b", -(2**7), 2**7 - 1),
    _BT_UBYTE: _Scalar(1, "B", 0, 2**8 - 1),
    _BT_SHORT: _Scalar(2, "h", -(2**15), 2**15 - 1),
    _BT_USHORT: _Scalar(2, "H", 0, 2**16 - 1),
    _BT_INT: _Scalar(4, "i", -(2**31), 2**31 - 1),
    _BT_UINT: _Scalar(4, "I", 0, 2**32 - 1),
    _BT_LONG: _Scalar(8, "q", -(2**63), 2**63 - 1),
    _BT_ULONG: _Scalar(8, "Q", 0, 2**64 - 1),
    _BT_FLOAT: _Scalar(4, "f", 0, 0),
    _BT_DOUBLE: _Scalar(8, "d", 0, 0),
}

# Python values accepted without calling _scalar (float needs its range check).
_FAST_TYPES: Final[dict[int, type]] = {
    _BT_BOOL: bool,
    _BT_DOUBLE: float,
    **dict.fromkeys(
        (_BT_BYTE, _BT_UBYTE, _BT_SHORT, _BT_USHORT, _BT_INT, _BT_UINT, _BT_LONG, _BT_ULONG), int
    ),
}

# Field kinds (what a field or a vector element holds).
_K_BOOL: Final = 0
_K_INT: Final = 1
_K_FLOAT: Final = 2
_K_ENUM: Final = 3
_K_STRING: Final = 4
_K_TABLE: Final = 5
_K_VECTOR: Final = 6

_U16: Final = struct.Struct("<H").unpack_from
_U16X2: Final = struct.Struct("<HH").unpack_from
_U32: Final = struct.Struct("<I").unpack_from
_I32: Final = struct.Struct("<i").unpack_from
_F32_PACK: Final = struct.Struct("<f").pack
_PACK_U32: Final = struct.Struct("<I").pack
_PACK_U32_INTO: Final = struct.Struct("<I").pack_into
_MAX_BUFFER_SIZE: Final = 2**31
_MAX_CACHED_LAYOUTS: Final = 256

_ABSENT: Final[Any] = object()


# --- plans -------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Enum:
    name: str
    base: int
    by_name: dict[str, int]
    by_value: dict[int, str]


@dataclass(slots=True, eq=False)
class _Field:
    """Everything needed to encode/decode one field (or one vector element)."""

    name: str
    slot: int  # field id = vtable slot
    bit: int  # 1 << slot
    vo_end: int  # vtable offset of the slot + 2 (the vtable must reach it)
    voffset: int
    kind: int
    base: int  # scalar base type (or the element's, see `elem`)
    size: int  # bytes the field occupies inline in its table
    default: Any  # scalar default (encode: skip when equal)
    default_out: Any  # scalar default as decode emits it
    optional: bool
    deprecated: bool
    required: bool
    unpack: Callable[[bytes, int], tuple[Any, ...]] | None
    lo: int
    hi: int
    fmt: str  # struct format character of the inline value ("I" for offsets)
    fast_type: Any  # Python type valid as is (ints: after the range check), or None
    enum: _Enum | None
    table: _Table | None  # resolved after all tables exist
    elem: _Field | None  # vector element descriptor
    label: str  # schema type, for messages


@dataclass(slots=True, eq=False)
class _Table:
    name: str
    fields: tuple[_Field, ...] = ()  # non-deprecated, by id: decode order
    by_name: dict[str, _Field] = field(default_factory=dict)  # all, incl. deprecated
    pack_order: tuple[_Field, ...] = ()  # encode order (largest inline size first)
    required: tuple[_Field, ...] = ()
    num_slots: int = 0
    signature: tuple[Any, ...] = ()
    layouts: dict[int, _Layout] = field(default_factory=dict)  # by bit set of present slots

    def finish(self, all_fields: Iterable[_Field]) -> None:
        ordered = sorted(all_fields, key=lambda f: f.slot)
        self.by_name = {f.name: f for f in ordered}
        self.fields = tuple(f for f in ordered if not f.deprecated)
        # Offsets (4 bytes) and scalars, biggest first, like flatc's Create*()
        # helpers: keeps padding minimal. Ties keep id order (deterministic).
        self.pack_order = tuple(sorted(self.fields, key=lambda f: -f.size))
        self.required = tuple(f for f in self.fields if f.required)
        self.num_slots = max((f.slot + 1 for f in ordered), default=0)

    def layout(self, present: int) -> _Layout:
        """Inline layout for a bit set of present slots, cached."""
        fields = [f for f in self.pack_order if present & f.bit]
        entries = [0] * present.bit_length()
        fmt = ["<i"]
        inline = 4
        offset_fields: list[tuple[_Field, int]] = []
        for f in fields:  # biggest first: every field is naturally aligned
            entries[f.slot] = inline
            if f.kind >= _K_STRING:
                offset_fields.append((f, inline))
                fmt.append("4x")
            else:
                fmt.append(f.fmt)
            inline += f.size
        vtable = struct.pack(f"<{2 + len(entries)}H", 4 + 2 * len(entries), inline, *entries)
        layout = _Layout(
            pack=struct.Struct("".join(fmt)).pack,
            align=max(4, fields[0].size) if fields else 4,
            vtable=vtable,
            scalar_slots=tuple(f.slot for f in fields if f.kind < _K_STRING),
            offset_fields=tuple(offset_fields),
        )
        if len(self.layouts) < _MAX_CACHED_LAYOUTS:
            self.layouts[present] = layout
        return layout


@dataclass(frozen=True, slots=True)
class _Layout:
    pack: Callable[..., bytes]  # soffset to the vtable, then the scalars
    align: int  # (table position + 4) must be a multiple of this
    vtable: bytes
    scalar_slots: tuple[int, ...]
    offset_fields: tuple[tuple[_Field, int], ...]  # (field, position inside the table)


def _classify(base_type: int, enum: _Enum | None) -> tuple[int, _Scalar | None]:
    if base_type == _BT_VECTOR:
        return _K_VECTOR, None
    if base_type == _BT_STRING:
        return _K_STRING, None
    if base_type == _BT_OBJ:
        return _K_TABLE, None
    scalar = _SCALARS.get(base_type)
    if scalar is None:
        raise _Fail(f"unsupported type {_BT_NAMES.get(base_type, base_type)}")
    if base_type == _BT_BOOL:
        return _K_BOOL, scalar
    if base_type in (_BT_FLOAT, _BT_DOUBLE):
        return _K_FLOAT, scalar
    return (_K_INT if enum is None else _K_ENUM), scalar


def _make_field(
    name: str,
    slot: int,
    base_type: int,
    *,
    element: int = _BT_NONE,
    enum: _Enum | None = None,
    default_integer: int = 0,
    default_real: float = 0.0,
    optional: bool = False,
    deprecated: bool = False,
    required: bool = False,
    label: str = "",
) -> _Field:
    voffset = 4 + 2 * slot
    elem: _Field | None = None
    if base_type == _BT_VECTOR:
        elem = _make_field(f"{name}[]", 0, element, enum=enum, label=label)
    kind, scalar = _classify(base_type, enum)
    size = scalar.size if scalar is not None else 4
    default: Any = None
    default_out: Any = None
    if scalar is not None and not optional:
        if kind == _K_BOOL:
            default = default_out = default_integer != 0
        elif kind == _K_FLOAT:
            default = default_out = float(default_real)
        else:
            default = default_out = default_integer
            if enum is not None:
                default_out = enum.by_value.get(default_integer, default_integer)
    if not label:
        label = enum.name if enum is not None else _BT_NAMES[base_type]
    return _Field(
        name=name,
        slot=slot,
        bit=1 << slot,
        vo_end=voffset + 2,
        voffset=voffset,
        kind=kind,
        base=base_type,
        size=size,
        default=default,
        default_out=default_out,
        optional=optional,
        deprecated=deprecated,
        required=required,
        unpack=struct.Struct("<" + scalar.fmt).unpack_from if scalar is not None else None,
        lo=scalar.lo if scalar is not None else 0,
        hi=scalar.hi if scalar is not None else 0,
        fmt=scalar.fmt if scalar is not None else "I",
        fast_type=_FAST_TYPES.get(base_type) if kind != _K_ENUM else None,
        enum=enum,
        table=None,
        elem=elem,
        label=label,
    )


def _link(f: _Field, table: _Table) -> _Field:
    f.table = table
    if f.elem is not None:
        f.elem.table = table
    return f


# --- the reflection schema, described by hand ----------------------------------
# Only the fields this module reads. Ids: (VT_<FIELD> - 4) / 2 in
# flatbuffers/reflection_generated.h (flatc 25.12.19).


def _reflection_plans() -> _Table:
    type_ = _Table("reflection.Type")
    type_.finish(
        [
            _make_field("base_type", 0, _BT_BYTE),
            _make_field("element", 1, _BT_BYTE),
            _make_field("index", 2, _BT_INT, default_integer=-1),
            _make_field("fixed_length", 3, _BT_USHORT),
            _make_field("base_size", 4, _BT_UINT, default_integer=4),
            _make_field("element_size", 5, _BT_UINT),
        ]
    )
    enum_val = _Table("reflection.EnumVal")
    enum_val.finish(
        [_make_field("name", 0, _BT_STRING, required=True), _make_field("value", 1, _BT_LONG)]
    )
    enum = _Table("reflection.Enum")
    enum.finish(
        [
            _make_field("name", 0, _BT_STRING, required=True),
            _link(_make_field("values", 1, _BT_VECTOR, element=_BT_OBJ, required=True), enum_val),
            _make_field("is_union", 2, _BT_BOOL),
            _link(_make_field("underlying_type", 3, _BT_OBJ), type_),
        ]
    )
    field_ = _Table("reflection.Field")
    field_.finish(
        [
            _make_field("name", 0, _BT_STRING, required=True),
            _link(_make_field("type", 1, _BT_OBJ, required=True), type_),
            _make_field("id", 2, _BT_USHORT),
            _make_field("offset", 3, _BT_USHORT),
            _make_field("default_integer", 4, _BT_LONG),
            _make_field("default_real", 5, _BT_DOUBLE),
            _make_field("deprecated", 6, _BT_BOOL),
            _make_field("required", 7, _BT_BOOL),
            _make_field("optional", 11, _BT_BOOL),
            _make_field("offset64", 13, _BT_BOOL),
        ]
    )
    obj = _Table("reflection.Object")
    obj.finish(
        [
            _make_field("name", 0, _BT_STRING, required=True),
            _link(_make_field("fields", 1, _BT_VECTOR, element=_BT_OBJ, required=True), field_),
            _make_field("is_struct", 2, _BT_BOOL),
        ]
    )
    schema = _Table("reflection.Schema")
    schema.finish(
        [
            _link(_make_field("objects", 0, _BT_VECTOR, element=_BT_OBJ, required=True), obj),
            _link(_make_field("enums", 1, _BT_VECTOR, element=_BT_OBJ, required=True), enum),
            _make_field("file_ident", 2, _BT_STRING),
            _make_field("advanced_features", 6, _BT_ULONG),
        ]
    )
    return schema


_REFLECTION_SCHEMA: Final = _reflection_plans()
_BFBS_IDENTIFIER: Final = b"BFBS"
_ADVANCED_ARRAYS: Final = 1
_ADVANCED_UNIONS: Final = 2
_ADVANCED_DEFAULT_VECTORS_AND_STRINGS: Final = 8


def _load_schema(
    label: str, data: bytes, tables: dict[str, _Table], enums: dict[str, _Enum]
) -> None:
    """Add the tables and enums of one binary schema to `tables` / `enums`."""
    if len(data) < 8 or data[4:8] != _BFBS_IDENTIFIER:
        raise FbJsonError(f"{label}: not a binary FlatBuffers schema (no 'BFBS' identifier)")
    try:
        schema = _Decoder(data, 64, 10_000_000, 1 << 30).root(_REFLECTION_SCHEMA)
    except _Fail as exc:
        raise FbJsonError(f"{label}: corrupt binary schema: {exc.msg}") from None

    features = schema["advanced_features"]
    if features & (_ADVANCED_ARRAYS | _ADVANCED_UNIONS | _ADVANCED_DEFAULT_VECTORS_AND_STRINGS):
        raise FbJsonError(
            f"{label}: unsupported schema features (fixed-size arrays, advanced unions or "
            f"string/vector defaults; advanced_features={features})"
        )

    local_enums = [_read_enum(label, raw) for raw in schema["enums"]]
    raw_objects: list[dict[str, Any]] = schema["objects"]
    for raw in raw_objects:
        if raw["is_struct"]:
            raise FbJsonError(
                f"{label}: structs are not supported by edgecore.fbjson ({raw['name']})"
            )
    local_tables = [_Table(raw["name"]) for raw in raw_objects]
    for raw, table in zip(raw_objects, local_tables, strict=True):
        table.finish(
            _read_field(f"{label}: {table.name}", rf, local_enums, local_tables)
            for rf in raw["fields"]
        )

    for enum in local_enums:
        known_enum = enums.setdefault(enum.name, enum)
        if (known_enum.base, known_enum.by_name) != (enum.base, enum.by_name):
            raise FbJsonError(f"{label}: enum {enum.name} is defined differently elsewhere")
    for table in local_tables:
        table.signature = tuple(
            (
                f.name,
                f.slot,
                f.base,
                f.elem.base if f.elem else None,
                f.label,
                f.default,
                f.optional,
            )
            for f in table.by_name.values()
        )
        known = tables.setdefault(table.name, table)
        if known.signature != table.signature:
            raise FbJsonError(f"{label}: table {table.name} is defined differently elsewhere")


def _read_enum(label: str, raw: dict[str, Any]) -> _Enum:
    name: str = raw["name"]
    if raw["is_union"]:
        raise FbJsonError(f"{label}: unions are not supported by edgecore.fbjson ({name})")
    base = raw.get("underlying_type", {}).get("base_type", _BT_NONE)
    if base not in _SCALARS or base in (_BT_BOOL, _BT_FLOAT, _BT_DOUBLE):
        raise FbJsonError(f"{label}: enum {name}: unsupported underlying type")
    values = [(v["name"], v["value"]) for v in raw["values"]]
    # by_value: the first name wins for aliased values.
    return _Enum(name, base, dict(values), {value: vname for vname, value in reversed(values)})


def _read_field(where: str, rf: dict[str, Any], enums: list[_Enum], tables: list[_Table]) -> _Field:
    where = f"{where}.{rf['name']}"
    rtype = rf["type"]
    base, element, index = rtype["base_type"], rtype["element"], rtype["index"]
    if rf["offset64"] or base in (_BT_UNION, _BT_UTYPE, _BT_ARRAY, _BT_VECTOR64):
        raise FbJsonError(f"{where}: unsupported type {_BT_NAMES.get(base, base)}")
    if rf["offset"] != 4 + 2 * rf["id"]:
        raise FbJsonError(f"{where}: vtable offset does not match the field id")
    value_type = element if base == _BT_VECTOR else base
    enum: _Enum | None = None
    if value_type in _SCALARS and index >= 0:
        if index >= len(enums):
            raise FbJsonError(f"{where}: enum index out of range")
        enum = enums[index]
    try:
        f = _make_field(
            rf["name"],
            rf["id"],
            base,
            element=element,
            enum=enum,
            default_integer=rf["default_integer"],
            default_real=rf["default_real"],
            optional=rf["optional"],
            deprecated=rf["deprecated"],
            required=rf["required"],
        )
    except _Fail as exc:
        raise FbJsonError(f"{where}: {exc.msg}") from None
    if value_type == _BT_OBJ:
        if not 0 <= index < len(tables):
            raise FbJsonError(f"{where}: table index out of range")
        _link(f, tables[index])
        f.label = tables[index].name
        if f.elem is not None:
            f.elem.label = f.label
    return f


# --- decoding ----------------------------------------------------------------


class _Decoder:
    """Bounds-checked reader over one buffer; every reading is validated first."""

    __slots__ = (
        "buf",
        "elements_left",
        "end",
        "max_depth",
        "max_elements",
        "max_string_bytes",
        "string_bytes_left",
    )

    def __init__(self, buf: bytes, max_depth: int, max_elements: int, max_string_bytes: int):
        self.buf = buf
        self.end = len(buf)
        self.max_depth = max_depth
        self.max_elements = self.elements_left = max_elements
        self.max_string_bytes = self.string_bytes_left = max_string_bytes

    def too_many_elements(self) -> _Fail:
        return _Fail(
            f"payload exceeds the limit of {self.max_elements} decoded objects and vector elements"
        )

    def root(self, plan: _Table) -> dict[str, Any]:
        if self.end < 4:
            raise _Fail("malformed buffer: shorter than the root offset")
        return self.table(plan, _U32(self.buf, 0)[0], 1)

    # Hot path: deliberately one flat loop (no per-field helper calls).
    def table(self, plan: _Table, tpos: int, depth: int) -> dict[str, Any]:  # noqa: PLR0912
        if depth > self.max_depth:
            raise _Fail(f"nesting deeper than {self.max_depth} tables")
        self.elements_left -= 1
        if self.elements_left < 0:
            raise self.too_many_elements()
        buf = self.buf
        end = self.end
        if tpos + 4 > end:
            raise _Fail("malformed buffer: table offset out of bounds")
        vt = tpos - _I32(buf, tpos)[0]
        if vt < 0 or vt + 4 > end:
            raise _Fail("malformed buffer: vtable offset out of bounds")
        vtsize, tsize = _U16X2(buf, vt)
        if vtsize < 4 or vt + vtsize > end:
            raise _Fail("malformed buffer: vtable out of bounds")
        if tsize < 4 or tpos + tsize > end:
            raise _Fail("malformed buffer: table out of bounds")
        out: dict[str, Any] = {}
        for f in plan.fields:
            fo = _U16(buf, vt + f.voffset)[0] if f.vo_end <= vtsize else 0
            kind = f.kind
            if fo == 0:
                if f.required:
                    raise _Fail(f"malformed buffer: required field {f.name!r} is missing")
                if f.default_out is not None:
                    out[f.name] = f.default_out
                continue
            if fo + f.size > tsize:
                raise _Fail(f"malformed buffer: field {f.name!r} lies outside its table")
            pos = tpos + fo
            if kind < _K_STRING:
                value = f.unpack(buf, pos)[0]  # type: ignore[misc]
                if kind == _K_ENUM:
                    value = f.enum.by_value.get(value, value)  # type: ignore[union-attr]
                out[f.name] = value
                continue
            target = pos + _U32(buf, pos)[0]
            try:
                if kind == _K_STRING:
                    out[f.name] = self.string(target)
                elif kind == _K_TABLE:
                    out[f.name] = self.table(f.table, target, depth + 1)  # type: ignore[arg-type]
                else:
                    out[f.name] = self.vector(f.elem, target, depth)  # type: ignore[arg-type]
            except _Fail as exc:
                exc.path.append("." + f.name)
                raise
        return out

    def string(self, pos: int) -> str:
        if pos + 4 > self.end:
            raise _Fail("malformed buffer: string offset out of bounds")
        start = pos + 4
        stop = start + _U32(self.buf, pos)[0]
        if stop > self.end:
            raise _Fail("malformed buffer: string extends past the end of the buffer")
        self.string_bytes_left -= stop - start
        if self.string_bytes_left < 0:
            raise _Fail(
                f"payload exceeds the limit of {self.max_string_bytes} decoded string bytes"
            )
        try:
            return str(self.buf[start:stop], "utf-8")
        except UnicodeDecodeError:
            raise _Fail("malformed buffer: string is not valid UTF-8") from None

    def vector(self, elem: _Field, pos: int, depth: int) -> list[Any]:
        buf = self.buf
        if pos + 4 > self.end:
            raise _Fail("malformed buffer: vector offset out of bounds")
        count = _U32(buf, pos)[0]
        start = pos + 4
        if start + count * elem.size > self.end:
            raise _Fail(
                f"malformed buffer: vector of {count} elements extends past the end of the buffer"
            )
        self.elements_left -= count
        if self.elements_left < 0:
            raise self.too_many_elements()
        kind = elem.kind
        if kind == _K_BOOL:
            return [b != 0 for b in buf[start : start + count]]
        if kind < _K_STRING:
            values = list(struct.unpack_from(f"<{count}{_SCALARS[elem.base].fmt}", buf, start))
            if kind == _K_ENUM:
                names = elem.enum.by_value  # type: ignore[union-attr]
                return [names.get(v, v) for v in values]
            return values
        out: list[Any] = []
        index = 0
        try:
            for index in range(count):
                epos = start + 4 * index
                target = epos + _U32(buf, epos)[0]
                if kind == _K_STRING:
                    out.append(self.string(target))
                else:
                    out.append(self.table(elem.table, target, depth + 1))  # type: ignore[arg-type]
        except _Fail as exc:
            exc.path.append(f"[{index}]")
            raise
        return out


# --- encoding ----------------------------------------------------------------


def _scalar(f: _Field, value: Any) -> Any:
    """Validate one JSON scalar for a bool/int/float/enum field; return the wire value."""
    kind = f.kind
    if kind == _K_INT:
        if type(value) is not int and (isinstance(value, bool) or not isinstance(value, int)):
            raise _Fail("expected integer")
        if not f.lo <= value <= f.hi:
            raise _Fail(f"value {value} out of range for {f.label} ({f.lo}..{f.hi})")
        return int(value)
    if kind == _K_FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Fail("expected number")
        try:
            number = float(value)
            if f.base == _BT_FLOAT:
                _F32_PACK(number)
        except (OverflowError, struct.error):
            raise _Fail(f"value {value} out of range for {f.label}") from None
        return number
    if kind == _K_BOOL:
        if not isinstance(value, bool):
            raise _Fail("expected boolean")
        return value
    return _enum_value(f, value)


def _enum_value(f: _Field, value: Any) -> int:
    enum = f.enum
    assert enum is not None
    if isinstance(value, str):
        known = enum.by_name.get(value)
        if known is None:
            raise _Fail(f"unknown {enum.name} value {value!r}")
        return known
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Fail(f"expected {enum.name} name or integer")
    if not f.lo <= value <= f.hi:
        raise _Fail(f"value {value} out of range for {enum.name} ({_BT_NAMES[f.base]})")
    return int(value)


class _Encoder:
    """Forward FlatBuffers writer: a table, then its children after it.

    The buffer is laid out front to back (root offset, then the root table,
    then what it references, depth first), so every uoffset points forward as
    the format requires. Scalars are naturally aligned relative to the buffer
    start, strings are NUL-terminated and identical vtables are shared, like
    the generated builders do; the result reads back with any FlatBuffers
    reader. Each table's inline part is packed by one precompiled struct per
    combination of present fields (cached on the table plan).
    """

    __slots__ = ("buf", "max_depth", "vtables")

    def __init__(self, max_depth: int) -> None:
        self.buf = bytearray(4)  # root uoffset, patched by `root`
        self.max_depth = max_depth
        self.vtables: dict[bytes, int] = {}

    def root(self, plan: _Table, data: Any) -> bytes:
        _PACK_U32_INTO(self.buf, 0, self.table(plan, data, 1))
        if len(self.buf) >= _MAX_BUFFER_SIZE:
            raise _Fail("payload too large for a FlatBuffer (2 GiB)")
        return bytes(self.buf)

    # Hot path: deliberately one flat loop (no per-field helper calls).
    def table(self, plan: _Table, data: Any, depth: int) -> int:  # noqa: PLR0912, PLR0915
        if not isinstance(data, Mapping):
            raise _Fail("expected object")
        if depth > self.max_depth:
            raise _Fail(f"nesting deeper than {self.max_depth} tables")
        by_name = plan.by_name
        values: list[Any] = [_ABSENT] * plan.num_slots
        present = 0  # bit set of the slots written
        value: Any
        for key, value in data.items():
            f = by_name.get(key)
            if f is None:
                raise _Fail(f"unknown field {key!r}")
            if f.deprecated:
                raise _Fail(f"field {key!r} is deprecated")
            kind = f.kind
            if kind >= _K_STRING:
                if value is not None:
                    # Converted (and checked) when written, after this table.
                    values[f.slot] = value
                    present |= f.bit
                continue
            if value is None and f.optional:
                continue
            if type(value) is f.fast_type and (kind != _K_INT or f.lo <= value <= f.hi):
                converted = value  # the common, already valid case
            else:
                try:
                    converted = _scalar(f, value)
                except _Fail as exc:
                    exc.path.append("." + key)
                    raise
            if f.optional or converted != f.default:
                values[f.slot] = converted  # defaults are not stored, as in flatc builders
                present |= f.bit
        for f in plan.required:
            if values[f.slot] is _ABSENT:
                raise _Fail(f"missing required field {f.name!r}")

        layout = plan.layouts.get(present)
        if layout is None:
            layout = plan.layout(present)
        buf = self.buf
        vtpos = self.vtables.get(layout.vtable)
        if vtpos is None:
            if len(buf) & 1:
                buf.append(0)
            vtpos = len(buf)
            buf += layout.vtable
            self.vtables[layout.vtable] = vtpos
        pad = -(len(buf) + 4) % layout.align
        if pad:
            buf += bytes(pad)
        tpos = len(buf)
        buf += layout.pack(tpos - vtpos, *[values[slot] for slot in layout.scalar_slots])

        for f, inline in layout.offset_fields:
            value = values[f.slot]
            kind = f.kind
            try:
                if kind == _K_STRING:
                    child = self.string(value)
                elif kind == _K_TABLE:
                    child = self.table(f.table, value, depth + 1)  # type: ignore[arg-type]
                else:
                    child = self.vector(f.elem, value, depth)  # type: ignore[arg-type]
            except _Fail as exc:
                exc.path.append("." + f.name)
                raise
            pos = tpos + inline
            _PACK_U32_INTO(buf, pos, child - pos)
        return tpos

    def string(self, value: Any) -> int:
        if not isinstance(value, str):
            raise _Fail("expected string")
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Fail("string is not encodable as UTF-8 (lone surrogate)") from None
        buf = self.buf
        pad = -len(buf) % 4
        if pad:
            buf += bytes(pad)
        pos = len(buf)
        buf += _PACK_U32(len(data))
        buf += data
        buf.append(0)
        return pos

    def vector(self, elem: _Field, value: Any, depth: int) -> int:
        if not isinstance(value, list | tuple):
            raise _Fail("expected array")
        buf = self.buf
        kind = elem.kind
        count = len(value)
        index = 0
        try:
            if kind < _K_STRING:
                items: list[Any] = []
                for item in value:
                    items.append(_scalar(elem, item))
                    index += 1
                pad = -(len(buf) + 4) % max(4, elem.size)
                if pad:
                    buf += bytes(pad)
                pos = len(buf)
                buf += struct.pack(f"<I{count}{elem.fmt}", count, *items)
                return pos
            pad = -len(buf) % 4
            if pad:
                buf += bytes(pad)
            pos = len(buf)
            buf += _PACK_U32(count)
            buf += bytes(4 * count)
            slot = pos + 4
            for item in value:
                if kind == _K_STRING:
                    child = self.string(item)
                else:
                    child = self.table(elem.table, item, depth + 1)  # type: ignore[arg-type]
                _PACK_U32_INTO(buf, slot, child - slot)
                slot += 4
                index += 1
        except _Fail as exc:
            exc.path.append(f"[{index}]")
            raise
        return pos


# --- public API --------------------------------------------------------------


class FlatBuffersJsonCodec:
    """JSON-like dicts <-> FlatBuffers bytes for every table of the loaded schemas.

    ``schemas`` defaults to every ``.bfbs`` packaged in ``edgecore.fbs_schema``;
    pass raw ``.bfbs`` contents to use others (tests do). Limits bound the work
    ``decode`` does on a hostile payload (``max_depth`` also bounds ``encode``).
    """

    __slots__ = ("_enums", "_max_depth", "_max_elements", "_max_string_bytes", "_tables")

    def __init__(
        self,
        schemas: Iterable[bytes] | None = None,
        *,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        max_string_bytes: int = DEFAULT_MAX_STRING_BYTES,
    ) -> None:
        if max_depth < 1 or max_elements < 1 or max_string_bytes < 0:
            raise ValueError("codec limits must be positive")
        self._max_depth = max_depth
        self._max_elements = max_elements
        self._max_string_bytes = max_string_bytes
        tables: dict[str, _Table] = {}
        enums: dict[str, _Enum] = {}
        if schemas is None:
            for name, data in _packaged_schemas():
                _load_schema(name, data, tables, enums)
        else:
            for number, data in enumerate(schemas):
                _load_schema(f"schema #{number}", bytes(data), tables, enums)
        self._tables = dict(sorted(tables.items()))
        self._enums = dict(sorted(enums.items()))

    @property
    def tables(self) -> tuple[str, ...]:
        """Fully qualified names of every table, sorted (``gateway.ErrorResponse``, ...)."""
        return tuple(self._tables)

    @property
    def enums(self) -> dict[str, dict[str, int]]:
        """Every enum by fully qualified name: value name -> integer (a copy)."""
        return {name: dict(enum.by_name) for name, enum in self._enums.items()}

    def fields(self, table: str) -> dict[str, str]:
        """The non-deprecated fields of a table and their schema types, in id order.

        Types read ``int``, ``long``, ``double``, ``bool``, ``string``, an enum or
        table name, ``[...]`` for vectors and a trailing ``?`` for optional scalars.
        """
        plan = self._plan(table)
        out: dict[str, str] = {}
        for f in plan.fields:
            label = f"[{f.elem.label}]" if f.elem is not None else f.label
            out[f.name] = label + ("?" if f.optional and f.kind < _K_STRING else "")
        return out

    def describe(self) -> dict[str, Any]:
        """Every loaded table and enum as plain, JSON-serialisable data (a fresh copy).

        For codecs in other languages (``scripts/gen_ts_schema.py`` writes the
        TypeScript SDK's descriptor from it). The result is
        ``{"tables": {name: table}, "enums": {name: enum}}``, both keyed by fully
        qualified name and sorted by it:

        * a table is ``{"name": str, "fields": [field, ...]}`` with *every*
          field, deprecated ones included, in field-id order;
        * a field is ``{"name", "id", "type"}`` plus, only where they apply:
          ``"element"`` (vectors), ``"enum"`` (qualified enum name, for an enum
          scalar or a vector of them), ``"table"`` (qualified table name, for a
          table or a vector of tables), ``"default"`` (every plain, non-optional
          scalar: ``bool``, ``int`` or ``float``; an enum's default is its
          integer value), and ``"optional"`` / ``"deprecated"`` / ``"required"``
          (always ``True`` when present). ``name`` is as written in the ``.fbs``,
          ``id`` is the field id (the vtable slot);
        * ``type`` is a scalar name (``bool``, ``byte``, ``ubyte``, ``short``,
          ``ushort``, ``int``, ``uint``, ``long``, ``ulong``, ``float``,
          ``double``; an enum field has its underlying type), ``string``,
          ``table`` or ``vector``; ``element`` is a scalar name, ``string`` or
          ``table``;
        * an enum is ``{"name": str, "type": scalar name, "values": {value
          name: int}}`` with the values in declaration order.
        """
        tables: dict[str, Any] = {}
        for name, plan in self._tables.items():
            fields: list[dict[str, Any]] = []
            for f in plan.by_name.values():  # every field, by id
                out: dict[str, Any] = {"name": f.name, "id": f.slot, "type": _BT_NAMES[f.base]}
                target = f.elem if f.elem is not None else f
                if f.elem is not None:
                    out["element"] = _BT_NAMES[f.elem.base]
                if target.enum is not None:
                    out["enum"] = target.enum.name
                if target.table is not None:
                    out["table"] = target.table.name
                if f.kind < _K_STRING:  # the flag is set for every non-required offset too
                    if f.optional:
                        out["optional"] = True
                    else:
                        out["default"] = f.default
                if f.deprecated:
                    out["deprecated"] = True
                if f.required:
                    out["required"] = True
                fields.append(out)
            tables[name] = {"name": name, "fields": fields}
        enums = {
            name: {"name": name, "type": _BT_NAMES[enum.base], "values": dict(enum.by_name)}
            for name, enum in self._enums.items()
        }
        return {"tables": tables, "enums": enums}

    def encode(self, table: str, data: Mapping[str, Any]) -> bytes:
        """Build a finished FlatBuffers buffer with root ``table`` from a JSON-like dict."""
        plan = self._plan(table)
        try:
            return _Encoder(self._max_depth).root(plan, data)
        except _Fail as exc:
            raise FbJsonError(f"{table}{''.join(reversed(exc.path))}: {exc.msg}") from None

    def decode(self, table: str, payload: bytes | bytearray | memoryview) -> dict[str, Any]:
        """Read a FlatBuffers buffer with root ``table`` into a JSON-like dict."""
        plan = self._plan(table)
        buf = payload if type(payload) is bytes else bytes(payload)
        decoder = _Decoder(buf, self._max_depth, self._max_elements, self._max_string_bytes)
        try:
            return decoder.root(plan)
        except _Fail as exc:
            raise FbJsonError(f"{table}{''.join(reversed(exc.path))}: {exc.msg}") from None
        except (struct.error, IndexError, OverflowError, RecursionError) as exc:
            # Unreachable by construction (every read is bounds-checked first);
            # kept so a hostile payload can never escape as a non-ValueError.
            raise FbJsonError(f"{table}: malformed buffer (unexpected {exc!r})") from None

    def _plan(self, table: str) -> _Table:
        plan = self._tables.get(table)
        if plan is None:
            raise FbJsonError(f"unknown table {table!r}")
        return plan


def _packaged_schemas() -> list[tuple[str, bytes]]:
    root = importlib.resources.files(SCHEMA_PACKAGE)
    found = sorted(
        (entry.name, entry.read_bytes())
        for entry in root.iterdir()
        if entry.name.endswith(".bfbs") and entry.is_file()
    )
    if not found:
        raise FbJsonError(f"no .bfbs files in {SCHEMA_PACKAGE} (run scripts/gen-fbs-reflection.sh)")
    return found


@functools.cache
def default_codec() -> FlatBuffersJsonCodec:
    """The process-wide codec over the packaged schemas (built on first use)."""
    return FlatBuffersJsonCodec()
