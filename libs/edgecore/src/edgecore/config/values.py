"""Parsers for configuration values: Go-style durations, addresses, URLs.

Durations use Go's ``time.ParseDuration`` syntax (``250ms``, ``5s``, ``1m``,
``1h30m``) because the specification's defaults and every existing
deployment's environment are written that way.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Final, NamedTuple
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator

__all__ = [
    "Duration",
    "GoBool",
    "HostPort",
    "HttpUrl",
    "ListenAddress",
    "ListenAddressList",
    "NameList",
    "OriginList",
    "NonEmptyStr",
    "PositiveDuration",
    "PositiveInt",
    "format_duration",
    "parse_go_duration",
    "parse_host_port",
]

_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_COMPONENT: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> timedelta:
    """Parse a Go duration string such as ``250ms``, ``1m30s`` or ``0``."""
    value = text.strip()
    if value in {"0", "+0", "-0"}:
        return timedelta(0)
    sign = 1.0
    if value[:1] in {"+", "-"}:
        sign = -1.0 if value[0] == "-" else 1.0
        value = value[1:]
    if not value:
        raise ValueError("invalid duration ''; use Go syntax such as 250ms, 5s, 1m")
    seconds = 0.0
    position = 0
    while position < len(value):
        match = _COMPONENT.match(value, position)
        if match is None:
            raise ValueError(
                f"invalid duration {text!r}; use Go syntax such as 250ms, 5s, 1m, 1h30m"
            )
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return timedelta(seconds=sign * seconds)


def format_duration(value: timedelta) -> str:
    """Render a duration in the Go syntax it was configured with (for docs and logs)."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms % 3_600_000 == 0 and total_ms:
        return f"{total_ms // 3_600_000}h"
    if total_ms % 60_000 == 0 and total_ms:
        return f"{total_ms // 60_000}m"
    if total_ms % 1000 == 0:
        return f"{total_ms // 1000}s"
    return f"{total_ms}ms"


def _to_duration(value: object) -> object:
    return parse_go_duration(value) if isinstance(value, str) else value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


def _positive_int(value: int) -> int:
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


class HostPort(NamedTuple):
    """A ``host:port`` pair; an empty host means every interface (Go's ``:8080``)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_host_port(text: str) -> HostPort:
    """Parse ``host:port``, ``:port`` or ``[v6]:port`` (Go's net.SplitHostPort forms)."""
    value = text.strip()
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"invalid address {text!r}; expected [host]:port")
    else:
        host, sep, port = value.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"invalid address {text!r}; expected host:port or :port")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid port in address {text!r}")
    return HostPort(host, int(port))


def _to_host_port(value: object) -> object:
    return parse_host_port(value) if isinstance(value, str) else value


def _comma_separated(value: object) -> object:
    """``"a, b,,c"`` -> ``("a", "b", "c")``: how the environment spells a list."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _origins(values: tuple[str, ...]) -> tuple[str, ...]:
    """Exact browser origins: ``scheme://host[:port]``, no path, no wildcard."""
    for value in values:
        scheme, sep, rest = value.partition("://")
        if (
            scheme not in ("http", "https")
            or not sep
            or not rest
            or any(char in rest for char in "/?#*@ ")
        ):
            raise ValueError(
                f"not an origin (scheme://host[:port], no path or wildcard): {value[:100]!r}"
            )
    return values


_GO_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _to_bool(value: object) -> object:
    """Go's strconv.ParseBool spellings, nothing else (``yes`` is a typo here, not true)."""
    if isinstance(value, str):
        text = value.strip()
        if text in _GO_TRUE:
            return True
        if text in _GO_FALSE:
            return False
        raise ValueError("must be true or false")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or fragment")
    return value.strip().rstrip("/")


Duration = Annotated[timedelta, BeforeValidator(_to_duration)]
PositiveDuration = Annotated[timedelta, BeforeValidator(_to_duration), AfterValidator(_positive)]
PositiveInt = Annotated[int, AfterValidator(_positive_int)]
NonEmptyStr = Annotated[str, AfterValidator(_non_empty)]
ListenAddress = Annotated[HostPort, BeforeValidator(_to_host_port)]
ListenAddressList = Annotated[tuple[ListenAddress, ...], BeforeValidator(_comma_separated)]
NameList = Annotated[tuple[str, ...], BeforeValidator(_comma_separated)]
OriginList = Annotated[tuple[str, ...], BeforeValidator(_comma_separated), AfterValidator(_origins)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
GoBool = Annotated[bool, BeforeValidator(_to_bool)]
