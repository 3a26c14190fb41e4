"""Reading a service's settings from the environment, failing loudly and precisely.

A missing required variable or a malformed value stops start-up with one
line per problem, ``VARIABLE: problem``; nothing falls back silently. Values
are never echoed (some variables hold secrets).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import Final, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from edgecore.config.sections import Section

__all__ = [
    "DEPRECATED_PREFIXES",
    "DEPRECATED_VARIABLES",
    "ConfigError",
    "ServiceSettings",
    "known_variables",
    "load_settings",
    "load_settings_or_exit",
]

DEPRECATED_PREFIXES: Final = ("GATEWAY_SESSION_CACHE_REDIS_",)
DEPRECATED_VARIABLES: Final = {
    "GATEWAY_REDIS_TLS_ENABLED": "removed with the Redis session-cache projection",
    "GATEWAY_REDIS_USERNAME": "removed with the Redis session-cache projection",
    "GATEWAY_BACKEND_GRPC_PUSH_URL": (
        "events arrive over Redis Streams here (GATEWAY_REDIS_SESSION_EVENTS_STREAM, "
        "GATEWAY_REDIS_CLIENT_EVENTS_STREAM), not a backend gRPC push stream"
    ),
}


class ConfigError(Exception):
    """Invalid configuration; ``problems`` holds one ``VARIABLE: problem`` line each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class ServiceSettings(BaseModel):
    """Base of a service's settings: every field is a ``Section``."""

    model_config = ConfigDict(frozen=True)


S = TypeVar("S", bound=ServiceSettings)


def load_settings(cls: type[S], environ: Mapping[str, str] | None = None) -> S:
    env = dict(os.environ if environ is None else environ)
    problems = _deprecated(env) + _unknown(env)
    sections: dict[str, Section] = {}
    for name, section_type in _section_types(cls):
        try:
            sections[name] = section_type.model_validate(env)
        except ValidationError as exc:
            problems.extend(_describe(exc))
    if problems:
        raise ConfigError(problems)
    return cls.model_validate(sections)


def known_variables() -> frozenset[str]:
    """Every variable any section reads (the union over all services)."""
    return frozenset(
        field.alias
        for section in _all_sections()
        for field in section.model_fields.values()
        if field.alias
    )


def _section_types(cls: type[ServiceSettings]) -> list[tuple[str, type[Section]]]:
    out: list[tuple[str, type[Section]]] = []
    for name, field in cls.model_fields.items():
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, Section)):
            raise TypeError(f"{cls.__name__}.{name} must be a Section")
        out.append((name, annotation))
    return out


def _all_sections() -> list[type[Section]]:
    pending: list[type[Section]] = [Section]
    found: list[type[Section]] = []
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


def _deprecated(env: Mapping[str, str]) -> list[str]:
    problems = []
    for name in sorted(env):
        if name in DEPRECATED_VARIABLES:
            problems.append(
                f"{name}: no longer supported ({DEPRECATED_VARIABLES[name]}); remove it"
            )
        elif name.startswith(DEPRECATED_PREFIXES):
            problems.append(
                f"{name}: no longer supported (the Redis session-cache projection was "
                "removed; the session cache is in-process); remove it"
            )
    return problems


def _unknown(env: Mapping[str, str]) -> list[str]:
    known = known_variables()
    return [
        f"{name}: unknown variable (no Galaxy Edge Gateway service reads it; check the spelling)"
        for name in sorted(env)
        if name.startswith("GATEWAY_")
        and name not in known
        and name not in DEPRECATED_VARIABLES
        and not name.startswith(DEPRECATED_PREFIXES)
    ]


def _describe(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required but not set"
        loc = [str(part) for part in error["loc"]]
        lines.append(f"{loc[0]}: {message}" if loc else message)
    return lines


def load_settings_or_exit(cls: type[S], service: str) -> S:
    """Start-up helper: print each problem on its own line to stderr and exit 2."""
    try:
        return load_settings(cls)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{service}: configuration error: {problem}", file=sys.stderr)
        raise SystemExit(2) from None
