"""Structured JSON logs, one object per line on stderr, with redaction as a safety net.

Callers never pass secrets, emails, login codes, challenge ids, public keys,
payloads, hashes or signatures to a log call; ``RedactingFilter`` is the second
line of defence that blanks such keys if one slips into ``extra``.

Libraries log what they parse, and some parse unauthenticated input before
the gateway has checked anything (OpenTelemetry logs an invalid ``tracestate``
header's keys and values at WARNING). So ``LibraryArgsFilter`` replaces the
arguments of such loggers' messages with their lengths, and the formatter
bounds every message and string field at ``MAX_FIELD_CHARS``: nothing a
client sends reaches a log line unbounded.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, Final

__all__ = [
    "MAX_FIELD_CHARS",
    "SENSITIVE_KEYS",
    "JsonFormatter",
    "LibraryArgsFilter",
    "RedactingFilter",
    "configure_logging",
]

SENSITIVE_KEYS: Final = frozenset(
    {
        "email", "code", "login_code", "challenge_id", "client_public_key", "public_key",
        "payload", "payload_bytes", "payload_hash", "signature", "password", "secret",
        "private_key", "authorization", "x_galaxy_signature",
    }
)  # fmt: skip
_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
                  "error": logging.ERROR}  # fmt: skip
_STANDARD_ATTRS: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
REDACTED: Final = "[redacted]"
MAX_FIELD_CHARS: Final = 1024
# Loggers whose message arguments can be request data the gateway has not checked.
_UNTRUSTED_ARGS_LOGGERS: Final = ("opentelemetry",)


def _bounded(text: str) -> str:
    if len(text) <= MAX_FIELD_CHARS:
        return text
    return f"{text[:MAX_FIELD_CHARS]}...[{len(text) - MAX_FIELD_CHARS} more characters]"


class LibraryArgsFilter(logging.Filter):
    """Keeps a library's message, replaces each argument with its length."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and record.name.startswith(_UNTRUSTED_ARGS_LOGGERS):
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(f"<{len(str(arg))} characters>" for arg in args)
        return True


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key in list(vars(record)):
            if key.lower() in SENSITIVE_KEYS:
                setattr(record, key, REDACTED)
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": _bounded(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                if isinstance(value, int | float | bool):
                    out[key] = value
                else:
                    out[key] = _bounded(value if isinstance(value, str) else str(value))
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: messages and tracebacks may carry request data.
            out["exc_type"] = record.exc_info[0].__name__
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def configure_logging(level: str, service: str, *, quiet: Iterable[str] = ()) -> None:
    """Route every logger (ours and the libraries') through one JSON handler on stderr.

    ``quiet`` names libraries that log routine successes at INFO (httpx: a line per
    call; kopf: a line per watch event); below ``debug`` they log warnings and up only.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(RedactingFilter())
    handler.addFilter(LibraryArgsFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
    if level != "debug":
        for name in quiet:
            logging.getLogger(name).setLevel(logging.WARNING)
