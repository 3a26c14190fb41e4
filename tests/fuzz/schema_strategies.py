"""Hypothesis strategies derived from ``FlatBuffersJsonCodec.describe()``.

``valid_document(codec, table)`` draws a document the codec must accept, and
``expected_decoding(codec, table, doc)`` says what ``decode(encode(doc))`` must give
back, from the description alone (an independent model of docs/flatbuffers.md,
"JSON mapping"): every non-deprecated plain scalar present (its default when the
document leaves it out), optional scalars, strings, tables and vectors only when
given, enums by name (an integer no value names stays an integer), keys in
field-id order. ``mixed_document`` puts arbitrary JSON-like junk where the schema
wants a value, so encoding fails deep inside a document as well as at its top.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Final

from hypothesis import strategies as st

from edgecore.fbjson import FlatBuffersJsonCodec

__all__ = [
    "expected_decoding",
    "json_junk",
    "mixed_document",
    "same",
    "valid_document",
]

RANGES: Final[dict[str, tuple[int, int]]] = {
    "byte": (-(2**7), 2**7 - 1),
    "ubyte": (0, 2**8 - 1),
    "short": (-(2**15), 2**15 - 1),
    "ushort": (0, 2**16 - 1),
    "int": (-(2**31), 2**31 - 1),
    "uint": (0, 2**32 - 1),
    "long": (-(2**63), 2**63 - 1),
    "ulong": (0, 2**64 - 1),
}
# Nested tables stop here (the test schema's Node is recursive).
MAX_NESTING: Final = 3

_ANY_TEXT: Final = st.text(st.characters(exclude_categories=()), max_size=12)
_SURROGATES: Final = st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3
)
_SCALAR_JUNK: Final = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.just(10**400),
    st.floats(),  # nan and infinities included
    _ANY_TEXT,
    _SURROGATES,
    st.binary(max_size=8),
)
json_junk: Final = st.recursive(
    _SCALAR_JUNK,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.one_of(_ANY_TEXT, st.integers()), children, max_size=4),
    ),
    max_leaves=10,
)
"""Anything a JSON parser (or a careless Python caller) could hand to ``encode``."""


def _describe(codec: FlatBuffersJsonCodec) -> dict[str, Any]:
    return _DESCRIPTIONS.setdefault(id(codec), (codec, codec.describe()))[1]


_DESCRIPTIONS: dict[int, tuple[FlatBuffersJsonCodec, dict[str, Any]]] = {}


def _live_fields(desc: dict[str, Any], table: str) -> list[dict[str, Any]]:
    return [f for f in desc["tables"][table]["fields"] if not f.get("deprecated")]


def _is_plain_scalar(field: dict[str, Any]) -> bool:
    return field["type"] not in ("string", "table", "vector")


def _scalar_strategy(desc: dict[str, Any], type_name: str, enum: str | None) -> Any:
    if enum is not None:
        lo, hi = RANGES[type_name]
        names = list(desc["enums"][enum]["values"])
        return st.one_of(st.sampled_from(names), st.integers(lo, hi))
    if type_name == "bool":
        return st.booleans()
    if type_name == "float":
        return st.floats(width=32, allow_nan=False)
    if type_name == "double":
        return st.floats(allow_nan=False)
    lo, hi = RANGES[type_name]
    return st.integers(lo, hi)


def _value_strategy(
    codec: FlatBuffersJsonCodec, field: dict[str, Any], depth: int, junk: bool
) -> Any:
    desc = _describe(codec)
    kind = field["type"]
    if kind == "string":
        value: Any = st.text(max_size=16)
    elif kind == "table":
        value = _document(codec, field["table"], depth + 1, junk)
    elif kind == "vector":
        element = field["element"]
        if element == "string":
            item: Any = st.text(max_size=8)
        elif element == "table":
            item = _document(codec, field["table"], depth + 1, junk)
        else:
            item = _scalar_strategy(desc, element, field.get("enum"))
        if junk:
            item = st.one_of(item, json_junk)
        value = st.lists(item, max_size=3)
    else:
        value = _scalar_strategy(desc, kind, field.get("enum"))
    if junk:
        value = st.one_of(value, json_junk)
    return value


@functools.cache
def _document(codec: FlatBuffersJsonCodec, table: str, depth: int, junk: bool) -> Any:
    required: dict[str, Any] = {}
    optional: dict[str, Any] = {}
    for field in _live_fields(_describe(codec), table):
        if field["type"] == "table" and depth >= MAX_NESTING and not field.get("required"):
            continue
        if field["type"] == "vector" and field["element"] == "table" and depth >= MAX_NESTING:
            continue
        value = _value_strategy(codec, field, depth, junk)
        if field.get("required"):
            required[field["name"]] = value
            continue
        if not _is_plain_scalar(field) or field.get("optional"):
            value = st.one_of(st.none(), value)  # null means absent
        optional[field["name"]] = value
    return st.fixed_dictionaries(required, optional=optional)


def valid_document(codec: FlatBuffersJsonCodec, table: str) -> Any:
    """Documents of ``table`` that ``codec.encode`` must accept."""
    return _document(codec, table, 1, False)


def mixed_document(codec: FlatBuffersJsonCodec, table: str) -> Any:
    """Documents of ``table`` with junk in arbitrary places (may still be valid)."""
    return _document(codec, table, 1, True)


def _scalar_out(desc: dict[str, Any], enum: str | None, value: Any) -> Any:
    if enum is None:
        return value
    values: dict[str, int] = desc["enums"][enum]["values"]
    if isinstance(value, str):
        value = values[value]
    # The first name wins for an aliased value (declaration order).
    by_value = {number: name for name, number in reversed(values.items())}
    return by_value.get(value, value)


def expected_decoding(codec: FlatBuffersJsonCodec, table: str, doc: dict[str, Any]) -> Any:
    """What ``decode(encode(doc))`` must return, computed from the description only."""
    desc = _describe(codec)
    out: dict[str, Any] = {}
    for field in _live_fields(desc, table):
        name = field["name"]
        value = doc.get(name)
        kind = field["type"]
        enum = field.get("enum")
        if kind == "string":
            if value is not None:
                out[name] = value
        elif kind == "table":
            if value is not None:
                out[name] = expected_decoding(codec, field["table"], value)
        elif kind == "vector":
            if value is not None:
                element = field["element"]
                if element == "table":
                    out[name] = [expected_decoding(codec, field["table"], v) for v in value]
                elif element == "string":
                    out[name] = list(value)
                else:
                    out[name] = [_scalar_out(desc, enum, v) for v in value]
        elif field.get("optional"):
            if value is not None:
                out[name] = _scalar_out(desc, enum, value)
        else:
            out[name] = _scalar_out(desc, enum, field["default"] if value is None else value)
    return out


def same(a: Any, b: Any) -> bool:
    """Structural equality where NaN equals NaN and key order matters."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
