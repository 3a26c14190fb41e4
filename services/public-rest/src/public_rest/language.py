"""``Accept-Language`` -> the preferred language forwarded on send-email-code.

The header is read as RFC 9110 describes it: comma-separated language ranges,
each with an optional ``q`` weight (default 1, ``q=0`` means "not acceptable").
Ranges are tried by descending weight, ties in header order. A range matches a
supported language when it equals it or when its primary subtag does
(``de-AT`` -> ``de``, ``pt-BR`` -> ``pt``); ``*`` matches the default. The
first match wins; with no match, or a header that does not parse, the answer
is ``en``. Parsing is bounded (``MAX_HEADER_LENGTH``, ``MAX_RANGES``) so a
hostile header costs nothing.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "DEFAULT_LANGUAGE",
    "MAX_HEADER_LENGTH",
    "MAX_RANGES",
    "SUPPORTED_LANGUAGES",
    "resolve_preferred_language",
]

DEFAULT_LANGUAGE: Final = "en"
# Languages the auth mail can be localised in (primary BCP 47 subtags).
SUPPORTED_LANGUAGES: Final = ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "ru", "uk")
MAX_HEADER_LENGTH: Final = 1024
MAX_RANGES: Final = 32

_SUPPORTED: Final = frozenset(SUPPORTED_LANGUAGES)
_RANGE: Final = re.compile(r"(?:\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)")
_QVALUE: Final = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")


def resolve_preferred_language(header: str | None) -> str:
    if not header or len(header) > MAX_HEADER_LENGTH:
        return DEFAULT_LANGUAGE
    candidates: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:MAX_RANGES]):
        parsed = _parse_range(item)
        if parsed is not None and parsed[1] > 0:
            candidates.append((-parsed[1], position, parsed[0]))
    for _, _, language_range in sorted(candidates):
        match = _match(language_range)
        if match is not None:
            return match
    return DEFAULT_LANGUAGE


def _parse_range(item: str) -> tuple[str, float] | None:
    parts = [part.strip() for part in item.split(";")]
    language_range = parts[0]
    if not _RANGE.fullmatch(language_range):
        return None
    weight = 1.0
    for param in parts[1:]:
        name, sep, value = param.partition("=")
        if sep and name.strip().lower() == "q":
            value = value.strip()
            if not _QVALUE.fullmatch(value):
                return None
            weight = float(value)
    return language_range.lower(), weight


def _match(language_range: str) -> str | None:
    if language_range == "*":
        return DEFAULT_LANGUAGE
    if language_range in _SUPPORTED:
        return language_range
    primary = language_range.split("-", 1)[0]
    return primary if primary in _SUPPORTED else None
