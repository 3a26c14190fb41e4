"""JSON convenience on top of the FlatBuffers payloads, using ``edgecore.fbjson``.

Tables follow docs/flatbuffers.md: message type ``user.account.get`` uses
``user.AccountGetRequest`` / ``user.AccountGetResponse``; notification kind
``lobby.invite.received`` uses ``notification.LobbyInviteReceivedEvent``. The
JSON mapping (snake_case keys, enums by name, ``long`` as integers) is the
codec's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeclient.envelope import CommandResult, VerifiedEvent
from edgeclient.errors import BusinessError, RequestEncodingError, UnknownMessageTypeError
from edgecore.catalog import (
    SERVER_TIME_EVENT_TYPE,
    message_namespace,
    notification_table_name,
    request_table_name,
    response_table_name,
)
from edgecore.fbjson import FbJsonError, FlatBuffersJsonCodec, default_codec
from edgecore.payloads import decode_error_response, decode_server_time_event

__all__ = [
    "decode_event",
    "decode_result",
    "encode_request",
    "request_table",
    "response_table",
]

_NOTIFICATION_NAMESPACE = "notification"


def _qualified(message_type: str, name: str) -> str:
    return f"{message_namespace(message_type)}.{name}"


def _known_table(codec: FlatBuffersJsonCodec, message_type: str, table: str) -> str:
    if table not in codec.tables:
        raise UnknownMessageTypeError(message_type)
    return table


def request_table(message_type: str, *, codec: FlatBuffersJsonCodec | None = None) -> str:
    """Fully qualified request table of a message type (``user.AccountGetRequest``)."""
    try:
        table = _qualified(message_type, request_table_name(message_type))
    except ValueError:
        raise UnknownMessageTypeError(message_type) from None
    return _known_table(codec or default_codec(), message_type, table)


def response_table(message_type: str, *, codec: FlatBuffersJsonCodec | None = None) -> str:
    """Fully qualified response table of a message type (``user.AccountGetResponse``)."""
    try:
        table = _qualified(message_type, response_table_name(message_type))
    except ValueError:
        raise UnknownMessageTypeError(message_type) from None
    return _known_table(codec or default_codec(), message_type, table)


def encode_request(
    message_type: str, body: Mapping[str, Any], *, codec: FlatBuffersJsonCodec | None = None
) -> bytes:
    """Encode a JSON request body as the message type's request table."""
    codec = codec or default_codec()
    table = request_table(message_type, codec=codec)
    try:
        return codec.encode(table, body)
    except FbJsonError as exc:
        raise RequestEncodingError(f"request does not fit {exc}") from None


def decode_result(
    message_type: str, result: CommandResult, *, codec: FlatBuffersJsonCodec | None = None
) -> dict[str, Any]:
    """Decode a verified result: the response table for ``ok``, else raise BusinessError."""
    if not result.ok:
        try:
            code, message = decode_error_response(result.payload)
        except ValueError:
            code, message = result.result_code, ""
        raise BusinessError(result.result_code, code or result.result_code, message)
    codec = codec or default_codec()
    return codec.decode(response_table(message_type, codec=codec), result.payload)


def decode_event(
    event: VerifiedEvent, *, codec: FlatBuffersJsonCodec | None = None
) -> dict[str, Any]:
    """Decode a verified event's payload to JSON.

    ``gateway.server_time`` gives ``{"server_time_ms": ...}``; a notification
    kind gives its ``notification.<Kind>Event`` table; an event type without a
    table gives ``{"payload_hex": ...}``, and a payload that does not decode
    gives ``payload_hex`` plus ``decode_error``.
    """
    if event.event_type == SERVER_TIME_EVENT_TYPE:
        try:
            return {"server_time_ms": decode_server_time_event(event.payload)}
        except ValueError as exc:
            return {"payload_hex": event.payload.hex(), "decode_error": str(exc)}
    codec = codec or default_codec()
    try:
        table = f"{_NOTIFICATION_NAMESPACE}.{notification_table_name(event.event_type)}"
    except ValueError:
        table = ""
    if table not in codec.tables:
        return {"payload_hex": event.payload.hex()}
    try:
        return codec.decode(table, event.payload)
    except FbJsonError as exc:
        return {"payload_hex": event.payload.hex(), "decode_error": str(exc)}
