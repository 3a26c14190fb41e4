from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ExecuteCommandRequest(_message.Message):
    __slots__ = ("protocol_version", "device_session_id", "message_type", "timestamp_ms", "request_id", "payload_bytes", "payload_hash", "signature", "trace_id")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    protocol_version: str
    device_session_id: str
    message_type: str
    timestamp_ms: int
    request_id: str
    payload_bytes: bytes
    payload_hash: bytes
    signature: bytes
    trace_id: str
    def __init__(self, protocol_version: _Optional[str] = ..., device_session_id: _Optional[str] = ..., message_type: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., request_id: _Optional[str] = ..., payload_bytes: _Optional[bytes] = ..., payload_hash: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., trace_id: _Optional[str] = ...) -> None: ...

class ExecuteCommandResponse(_message.Message):
    __slots__ = ("protocol_version", "request_id", "timestamp_ms", "result_code", "payload_bytes", "payload_hash", "signature")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    RESULT_CODE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    protocol_version: str
    request_id: str
    timestamp_ms: int
    result_code: str
    payload_bytes: bytes
    payload_hash: bytes
    signature: bytes
    def __init__(self, protocol_version: _Optional[str] = ..., request_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., result_code: _Optional[str] = ..., payload_bytes: _Optional[bytes] = ..., payload_hash: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SubscribeEventsRequest(_message.Message):
    __slots__ = ("protocol_version", "device_session_id", "message_type", "timestamp_ms", "request_id", "payload_bytes", "payload_hash", "signature", "trace_id")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    protocol_version: str
    device_session_id: str
    message_type: str
    timestamp_ms: int
    request_id: str
    payload_bytes: bytes
    payload_hash: bytes
    signature: bytes
    trace_id: str
    def __init__(self, protocol_version: _Optional[str] = ..., device_session_id: _Optional[str] = ..., message_type: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., request_id: _Optional[str] = ..., payload_bytes: _Optional[bytes] = ..., payload_hash: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., trace_id: _Optional[str] = ...) -> None: ...

class GatewayEvent(_message.Message):
    __slots__ = ("event_type", "event_id", "timestamp_ms", "payload_bytes", "payload_hash", "signature", "request_id", "trace_id", "position")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    event_id: str
    timestamp_ms: int
    payload_bytes: bytes
    payload_hash: bytes
    signature: bytes
    request_id: str
    trace_id: str
    position: str
    def __init__(self, event_type: _Optional[str] = ..., event_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., payload_bytes: _Optional[bytes] = ..., payload_hash: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., request_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., position: _Optional[str] = ...) -> None: ...
