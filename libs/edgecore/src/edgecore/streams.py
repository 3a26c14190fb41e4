"""The two Redis Streams between the backend and the gateway (docs/event-streams.md).

* session events: full session snapshots (revocations included) that keep
  every gateway's in-process SessionCache current and close revoked streams;
* client events: client-facing events that push-hub signs and fans out.

Entries are flat field maps, as Redis Streams require. Decoding is strict
and total: every entry yields either a decoded event or a ``MalformedEntry``
value naming the reason, so consumers can count and log drops instead of
crashing. Publishing trims each stream to an approximate maximum length so
an idle consumer cannot make Redis grow without bound; client events are
published into per-user histories (``edgecore.event_history``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import redis.asyncio as redis

from edgecore.event_history import DEFAULT_KEY_PREFIX, EventKeys, HistoryStore
from edgecore.sessions import SessionRecord, SessionRecordError

__all__ = [
    "CLIENT_EVENT_FIELDS",
    "ENTRY_VERSION",
    "MAX_EVENT_PAYLOAD_BYTES",
    "SESSION_SNAPSHOT_KIND",
    "ClientEvent",
    "MalformedEntry",
    "SessionSnapshot",
    "StreamPublisher",
    "decode_client_event",
    "decode_session_event",
    "encode_client_event",
    "encode_session_snapshot",
]

ENTRY_VERSION: Final = b"1"
SESSION_SNAPSHOT_KIND: Final = b"session.snapshot"
MAX_EVENT_PAYLOAD_BYTES: Final = 1 << 20
MAX_ID_BYTES: Final = 256
CLIENT_EVENT_FIELDS: Final = frozenset(
    {b"v", b"user_id", b"device_session_id", b"event_type", b"event_id", b"payload",
     b"request_id", b"trace_id"}
)  # fmt: skip
_SESSION_FIELDS: Final = frozenset({b"v", b"kind", b"session"})


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    entry_id: str
    record: SessionRecord


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """What an internal publisher provides; the gateway adds timestamp, hash and signature."""

    user_id: str
    event_type: str
    event_id: str
    payload: bytes
    device_session_id: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    entry_id: str = ""

    def __repr__(self) -> str:
        # Payload bytes stay out of logs.
        return (
            f"ClientEvent(event_type={self.event_type!r}, event_id={self.event_id!r}, "
            f"user_id={self.user_id!r}, device_session_id={self.device_session_id!r})"
        )


@dataclass(frozen=True, slots=True)
class MalformedEntry:
    """An entry that breaks the contract; ``reason`` is safe to log (no payload)."""

    entry_id: str
    reason: str


def encode_session_snapshot(record: SessionRecord) -> dict[bytes, bytes]:
    return {b"v": ENTRY_VERSION, b"kind": SESSION_SNAPSHOT_KIND, b"session": record.to_json()}


def decode_session_event(
    entry_id: str, fields: Mapping[bytes, bytes]
) -> SessionSnapshot | MalformedEntry:
    problem = _check_fields(fields, _SESSION_FIELDS, required=_SESSION_FIELDS)
    if problem:
        return MalformedEntry(entry_id, problem)
    if fields[b"kind"] != SESSION_SNAPSHOT_KIND:
        return MalformedEntry(entry_id, "unknown session event kind")
    try:
        record = SessionRecord.from_json(fields[b"session"])
    except SessionRecordError as exc:
        return MalformedEntry(entry_id, str(exc))
    return SessionSnapshot(entry_id, record)


def encode_client_event(event: ClientEvent) -> dict[bytes, bytes]:
    problem = _validate_client_event(event)
    if problem:
        raise ValueError(problem)
    out = {
        b"v": ENTRY_VERSION,
        b"user_id": event.user_id.encode(),
        b"event_type": event.event_type.encode(),
        b"event_id": event.event_id.encode(),
        b"payload": event.payload,
    }
    for name, value in (
        (b"device_session_id", event.device_session_id),
        (b"request_id", event.request_id),
        (b"trace_id", event.trace_id),
    ):
        if value:
            out[name] = value.encode()
    return out


def decode_client_event(
    entry_id: str, fields: Mapping[bytes, bytes]
) -> ClientEvent | MalformedEntry:
    problem = _check_fields(
        fields,
        CLIENT_EVENT_FIELDS,
        required=frozenset({b"v", b"user_id", b"event_type", b"event_id", b"payload"}),
    )
    if problem:
        return MalformedEntry(entry_id, problem)
    try:
        texts = {
            name: fields[name].decode("utf-8")
            for name in (b"user_id", b"event_type", b"event_id", b"device_session_id",
                         b"request_id", b"trace_id")
            if name in fields
        }  # fmt: skip
    except UnicodeDecodeError:
        return MalformedEntry(entry_id, "a text field is not UTF-8")
    event = ClientEvent(
        user_id=texts[b"user_id"],
        event_type=texts[b"event_type"],
        event_id=texts[b"event_id"],
        payload=fields[b"payload"],
        device_session_id=texts.get(b"device_session_id") or None,
        request_id=texts.get(b"request_id") or None,
        trace_id=texts.get(b"trace_id") or None,
        entry_id=entry_id,
    )
    problem = _validate_client_event(event)
    return MalformedEntry(entry_id, problem) if problem else event


def _check_fields(
    fields: Mapping[bytes, bytes], allowed: frozenset[bytes], *, required: frozenset[bytes]
) -> str | None:
    # Redis replies are bytes, but a decoder is total: names or values of other types
    # (a MessagePack live message can carry ints, lists, ...) make the entry malformed.
    if not all(type(name) is bytes and type(value) is bytes for name, value in fields.items()):
        return "field names and values must be byte strings"
    if fields.get(b"v") != ENTRY_VERSION:
        return "missing or unsupported entry version"
    unknown = sorted(set(fields) - allowed)
    if unknown:
        return f"unknown field {unknown[0].decode('utf-8', 'replace')!r}"
    missing = sorted(required - set(fields))
    if missing:
        return f"missing field {missing[0].decode()!r}"
    return None


def _validate_client_event(event: ClientEvent) -> str | None:
    for name, value in (
        ("user_id", event.user_id),
        ("event_type", event.event_type),
        ("event_id", event.event_id),
    ):
        if not value or not value.strip():
            return f"field {name!r} must not be empty"
    for name, optional in (
        ("user_id", event.user_id),
        ("event_type", event.event_type),
        ("event_id", event.event_id),
        ("device_session_id", event.device_session_id),
        ("request_id", event.request_id),
        ("trace_id", event.trace_id),
    ):
        if optional is not None and len(optional.encode()) > MAX_ID_BYTES:
            return f"field {name!r} is longer than {MAX_ID_BYTES} bytes"
    if len(event.payload) > MAX_EVENT_PAYLOAD_BYTES:
        return f"payload is larger than {MAX_EVENT_PAYLOAD_BYTES} bytes"
    return None


class StreamPublisher:
    """How a Python backend (and the mock backend) feeds the gateway.

    Session snapshots go to the session-events stream; client events go into the
    target user's history, written and published live in one atomic script
    (``edgecore.event_history``).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        session_stream: str,
        events_key_prefix: str = DEFAULT_KEY_PREFIX,
        max_len: int = 100_000,
    ) -> None:
        self._redis = client
        self._session_stream = session_stream
        self._history = HistoryStore(client, EventKeys(events_key_prefix))
        self._max_len = max_len

    async def publish_session(self, record: SessionRecord) -> str:
        entry_id = await self._redis.xadd(
            self._session_stream,
            encode_session_snapshot(record),  # type: ignore[arg-type]  # stub narrower than runtime
            maxlen=self._max_len,
            approximate=True,
        )
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def publish_client_event(self, event: ClientEvent) -> str:
        entry_id = await self._history.append(event.user_id, encode_client_event(event))
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
