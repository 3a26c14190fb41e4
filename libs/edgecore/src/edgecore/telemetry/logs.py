"""Structured JSON logs, one object per line on stderr, with redaction as a safety net.

Callers never pass secrets, emails, login codes, challenge ids, public keys,
payloads, hashes or signatures to a log call; ``RedactingFilter`` is the second
line of defence that blanks such keys if one slips into ``extra``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["SENSITIVE_KEYS", "JsonFormatter", "RedactingFilter", "configure_logging"]

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
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) else str(value)
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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
    if level != "debug":
        for name in quiet:
            logging.getLogger(name).setLevel(logging.WARNING)
