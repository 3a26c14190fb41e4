"""Protobuf codecs for connectrpc over the generated ``_pb2`` classes (google.protobuf).

Two differences from the library's own google codecs, both part of the contract:

* an undecodable request (invalid protobuf, invalid UTF-8 in a string field,
  malformed JSON) is the catalog's INVALID_ARGUMENT "request envelope is
  malformed", never the parser's text (which names Python internals);
* a response may be ``Preserialized`` bytes: push-hub signs and serializes an
  event once and writes the same bytes to every stream. The binary codec
  writes them as they are; the JSON codec parses them back (browsers that ask
  for JSON pay that, native clients do not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from connectrpc.codec import Codec
from google.protobuf import json_format
from google.protobuf.message import Message

from edgecore.errors import Reject
from edgecore.rpc.status import reject_error

__all__ = ["PROTO_CODECS", "Preserialized", "ProtoBinaryCodec", "ProtoJsonCodec"]


@dataclass(frozen=True, slots=True)
class Preserialized:
    """A message already encoded in the binary protobuf format."""

    data: bytes
    message_class: type[Message]


class ProtoBinaryCodec(Codec[Any, Any]):
    def name(self) -> str:
        return "proto"

    def encode(self, message: Any) -> bytes:
        if isinstance(message, Preserialized):
            return message.data
        data: bytes = message.SerializeToString()
        return data

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        try:
            return message_class.FromString(bytes(data))
        except Exception:
            # DecodeError, and ValueError for invalid UTF-8 in a string field.
            raise reject_error(Reject.MALFORMED_REQUEST) from None


class ProtoJsonCodec(Codec[Any, Any]):
    """The Connect JSON codec: proto3 JSON mapping, unknown fields ignored (as the library)."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Any) -> bytes:
        if isinstance(message, Preserialized):
            message = message.message_class.FromString(message.data)
        return json_format.MessageToJson(message, indent=None).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        message = message_class()
        try:
            json_format.Parse(bytes(data), message, ignore_unknown_fields=True)
        except Exception:
            raise reject_error(Reject.MALFORMED_REQUEST) from None
        return message


PROTO_CODECS: Final[tuple[Codec[Any, Any], ...]] = (ProtoBinaryCodec(), ProtoJsonCodec())
