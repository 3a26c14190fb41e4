"""The two pipes between a service's launcher and its app inside Envoy.

The launcher (``python -m edge_grpc``) starts Envoy, which embeds the Python
app (pyvoy); they are two processes. Envoy stops at once on SIGTERM, cutting
calls in flight, so the graceful stop is orchestrated over these pipes:

* control, launcher -> app: ``drain`` (stop taking calls, let those in flight
  finish within ``GATEWAY_SHUTDOWN_TIMEOUT``);
* report, app -> launcher: ``started``, ``refused`` (with a one-line reason
  safe to print) and ``drained``.

One JSON object a line. The file descriptors reach the app in
``EDGE_RUNTIME_CONTROL_FD`` and ``EDGE_RUNTIME_REPORT_FD``; without them
(the app served by a bare ``pyvoy``) there is no graceful drain.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "CONTROL_FD_ENV",
    "REPORT_FD_ENV",
    "Report",
    "ReportWriter",
    "decode_report",
    "encode_report",
]

CONTROL_FD_ENV: Final = "EDGE_RUNTIME_CONTROL_FD"
REPORT_FD_ENV: Final = "EDGE_RUNTIME_REPORT_FD"
DRAIN: Final = b"drain\n"

Event = Literal["started", "refused", "drained"]


@dataclass(frozen=True, slots=True)
class Report:
    event: Event
    reason: str = ""


def encode_report(report: Report) -> bytes:
    return json.dumps({"event": report.event, "reason": report.reason}).encode() + b"\n"


def decode_report(line: bytes) -> Report | None:
    try:
        data = json.loads(line)
        event = data["event"]
    except (ValueError, TypeError, KeyError):
        return None
    if event not in ("started", "refused", "drained"):
        return None
    return Report(event, str(data.get("reason", "")))


class ReportWriter:
    """The app's end of the report pipe (a no-op without a launcher)."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        fd = environ.get(REPORT_FD_ENV)
        self._fd = int(fd) if fd and fd.isdigit() else None

    def send(self, report: Report) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, encode_report(report))
        except OSError:
            self._fd = None  # the launcher is gone; nothing left to tell


def control_fd(environ: Mapping[str, str] = os.environ) -> int | None:
    fd = environ.get(CONTROL_FD_ENV)
    return int(fd) if fd and fd.isdigit() else None
