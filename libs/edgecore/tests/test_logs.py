"""JSON log lines: redaction, and nothing a client sends reaches a line unbounded."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from edgecore.telemetry.logs import MAX_FIELD_CHARS, configure_logging


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Configures logging in the test itself (capsys captures only there); returns a
    function giving the JSON lines written so far."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)

    def read() -> list[dict[str, Any]]:
        err = capsys.readouterr().err
        return [json.loads(line) for line in err.splitlines() if line[:1] == "{"]

    def start() -> None:
        configure_logging("info", "test")

    read.start = start  # type: ignore[attr-defined]
    yield read
    root.handlers[:], root.level = saved


def test_an_oversized_tracestate_is_not_logged_verbatim(logs) -> None:
    """OpenTelemetry warns about an invalid tracestate with its keys and values, before
    the gateway has authenticated anything: only their lengths reach the log."""
    hostile = "k" * 2500 + "=" + "v" * 2500
    carrier = {
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": hostile,
    }
    logs.start()
    TraceContextTextMapPropagator().extract(carrier)
    warnings = [line for line in logs() if str(line["logger"]).startswith("opentelemetry")]
    assert warnings, "the propagator no longer warns: this test no longer tests anything"
    for line in warnings:
        assert "kkkk" not in json.dumps(line) and "vvvv" not in json.dumps(line)
        assert "<5001 characters>" in str(line["msg"])


def test_every_message_and_field_is_bounded(logs) -> None:
    logs.start()
    logging.getLogger("some.library").warning("got %s", "x" * 10_000, extra={"peer": "y" * 5000})
    logging.getLogger("edgecore.test").info("short", extra={"count": 3, "email": "a@b.c"})
    long_line, short_line = logs()[-2:]
    assert len(str(long_line["msg"])) < MAX_FIELD_CHARS + 64
    assert str(long_line["msg"]).endswith(f"[{10_004 - MAX_FIELD_CHARS} more characters]")
    assert len(str(long_line["peer"])) < MAX_FIELD_CHARS + 64
    assert (short_line["msg"], short_line["count"], short_line["email"]) == (
        "short",
        3,
        "[redacted]",
    )
