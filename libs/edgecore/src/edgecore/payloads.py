"""Gateway-owned FlatBuffers payloads: the stream bootstrap and the business error.

Thin typed wrappers over the generated code in ``edgecore.fbs`` so that
services never touch builder offsets.
"""

from __future__ import annotations

from typing import Final

import flatbuffers

from edgecore.fbjson import FbJsonError, default_codec
from edgecore.fbs.gateway import ErrorResponse as _error
from edgecore.fbs.gateway import ServerTimeEvent as _server_time

__all__ = [
    "SUBSCRIBE_OPTIONS_TABLE",
    "decode_error_response",
    "decode_server_time_event",
    "decode_subscribe_options",
    "encode_error_response",
    "encode_server_time_event",
    "encode_subscribe_options",
]

SUBSCRIBE_OPTIONS_TABLE: Final = "gateway.SubscribeEventsOptions"


def encode_server_time_event(server_time_ms: int) -> bytes:
    builder = flatbuffers.Builder(32)
    _server_time.Start(builder)
    _server_time.AddServerTimeMs(builder, server_time_ms)
    builder.Finish(_server_time.End(builder))
    return bytes(builder.Output())


def decode_server_time_event(payload: bytes) -> int:
    """Return ``server_time_ms``; raises ValueError on bytes that are not a ServerTimeEvent."""
    try:
        return int(_server_time.ServerTimeEvent.GetRootAs(payload, 0).ServerTimeMs())
    except Exception as exc:  # flatbuffers raises struct/index errors on garbage
        raise ValueError("payload is not a gateway.ServerTimeEvent") from exc


def encode_error_response(code: str, message: str) -> bytes:
    builder = flatbuffers.Builder(64 + len(code) + len(message))
    code_offset = builder.CreateString(code)
    message_offset = builder.CreateString(message)
    _error.Start(builder)
    _error.AddCode(builder, code_offset)
    _error.AddMessage(builder, message_offset)
    builder.Finish(_error.End(builder))
    return bytes(builder.Output())


def decode_error_response(payload: bytes) -> tuple[str, str]:
    """Return ``(code, message)``; raises ValueError on bytes that are not an ErrorResponse."""
    try:
        table = _error.ErrorResponse.GetRootAs(payload, 0)
        code, message = table.Code(), table.Message()
    except Exception as exc:
        raise ValueError("payload is not a gateway.ErrorResponse") from exc
    return (code or b"").decode("utf-8"), (message or b"").decode("utf-8")


def encode_subscribe_options(resume_position: str) -> bytes:
    """The SubscribeEvents payload asking to resume after ``resume_position``."""
    return default_codec().encode(SUBSCRIBE_OPTIONS_TABLE, {"resume_position": resume_position})


def decode_subscribe_options(payload: bytes) -> str | None:
    """The resume position a SubscribeEvents payload asks for (None: start from now).

    Untrusted bytes are decoded bounds-checked; raises ValueError when they are
    not a ``gateway.SubscribeEventsOptions``.
    """
    if not payload:
        return None
    try:
        options = default_codec().decode(SUBSCRIBE_OPTIONS_TABLE, payload)
    except FbJsonError as exc:
        raise ValueError("payload is not a gateway.SubscribeEventsOptions") from exc
    position = options.get("resume_position")
    return position or None
