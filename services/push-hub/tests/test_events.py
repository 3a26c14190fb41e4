"""Event signing and the client-events handler, without I/O."""

from __future__ import annotations

import hashlib

from edgecore.catalog import SERVER_TIME_EVENT_TYPE
from edgecore.payloads import decode_server_time_event
from edgecore.signing import Signer, event_signing_input, verify_signature
from edgecore.stream_drops import drop_reason
from edgecore.streams import ClientEvent, encode_client_event
from edgecore.telemetry import MetricsRegistry
from galaxy.gateway.v1 import edge_gateway_pb2 as pb
from push_hub.events import ClientEventsHandler, EventSigner
from push_hub.hub import PushHub
from push_hub.metrics import PushMetrics

NOW = 1_700_000_000_123
EPOCH = "0123456789abcdef"


def verifies(event: pb.GatewayEvent, public_key: bytes) -> bool:
    return verify_signature(
        public_key,
        event_signing_input(
            event_type=event.event_type,
            event_id=event.event_id,
            timestamp_ms=event.timestamp_ms,
            request_id=event.request_id,
            trace_id=event.trace_id,
            payload_hash=event.payload_hash,
        ),
        event.signature,
    )


def test_signed_event_has_gateway_timestamp_recomputed_hash_and_valid_signature() -> None:
    key = Signer.generate()
    raw = EventSigner(key, clock_ms=lambda: NOW).sign(
        event_type="lobby.invite.received",
        event_id="ev-1",
        payload=b"\x01\x02",
        request_id="r-1",
        trace_id="t-1",
    )
    event = pb.GatewayEvent.FromString(raw)
    assert (event.event_type, event.event_id, event.timestamp_ms) == (
        "lobby.invite.received",
        "ev-1",
        NOW,
    )
    assert (event.request_id, event.trace_id) == ("r-1", "t-1")
    assert event.payload_hash == hashlib.sha256(b"\x01\x02").digest()
    assert verifies(event, key.public_key)
    assert not verifies(event, Signer.generate().public_key)


def test_bootstrap_event() -> None:
    key = Signer.generate()
    event = pb.GatewayEvent.FromString(
        EventSigner(key, clock_ms=lambda: NOW).bootstrap(request_id="open-1", trace_id="t")
    )
    assert (event.event_type, event.event_id, event.request_id, event.trace_id) == (
        SERVER_TIME_EVENT_TYPE,
        "open-1",
        "open-1",
        "t",
    )
    assert decode_server_time_event(event.payload_bytes) == NOW
    assert verifies(event, key.public_key)


class CountingSigner(EventSigner):
    def __init__(self) -> None:
        super().__init__(Signer.generate(), clock_ms=lambda: NOW)
        self.calls = 0

    def sign(self, **kwargs: object) -> bytes:  # type: ignore[override]
        self.calls += 1
        return super().sign(**kwargs)  # type: ignore[arg-type]


def fields(**overrides: object) -> dict[bytes, bytes]:
    event = ClientEvent(user_id="ann", event_type="lobby.invite.received", event_id="e1",
                        payload=b"p")  # fmt: skip
    out = encode_client_event(event)
    for name, value in overrides.items():
        if value is None:
            out.pop(name.encode(), None)
        else:
            out[name.encode()] = value if isinstance(value, bytes) else str(value).encode()
    return out


def test_one_signature_per_event_whatever_the_fan_out() -> None:
    hub = PushHub()
    streams = [hub.open_stream("ann", f"s{i}") for i in range(50)]
    signer = CountingSigner()
    delivered: list[int] = []
    handler = ClientEventsHandler(
        hub, signer, epoch=lambda: EPOCH, on_drop=lambda *_: None, on_delivered=delivered.append
    )
    handler("ann", (1, 0), fields())
    assert signer.calls == 1
    assert delivered == [50]
    items = {s.next_nowait() for s in streams}
    assert len(items) == 1  # every stream holds the very same signed bytes
    [(entry_id, data)] = items
    assert entry_id == (1, 0)
    assert pb.GatewayEvent.FromString(data).position == f"{EPOCH}:1-0"

    handler("nobody", (2, 0), fields(user_id="nobody"))  # no recipient here: nothing to sign
    assert signer.calls == 1


def test_malformed_entries_are_dropped_and_counted() -> None:
    hub = PushHub()
    hub.open_stream("ann", "s1")
    drops: list[tuple[str, str]] = []
    handler = ClientEventsHandler(
        hub, CountingSigner(), epoch=lambda: EPOCH, on_drop=lambda s, r: drops.append((s, r))
    )
    handler("ann", (1, 0), fields(v=None))
    handler("ann", (2, 0), fields(colour="red"))
    handler("ann", (3, 0), fields(event_id=None))
    handler("ann", (4, 0), fields(user_id=b"\xff"))
    handler("ann", (5, 0), fields(event_type="  "))
    handler("ann", (6, 0), fields(user_id="bob"))  # written into ann's history by mistake
    assert [(s, drop_reason(r)) for s, r in drops] == [
        ("client_events", "unsupported_version"),
        ("client_events", "unknown_field"),
        ("client_events", "missing_field"),
        ("client_events", "invalid_utf8"),
        ("client_events", "empty_field"),
        ("client_events", "wrong_history"),
    ]
    assert hub.streams_of_user("ann")[0].queued == 0


def test_drop_reasons_are_a_bounded_label_set() -> None:
    assert drop_reason("session record field 'status' must be 'active' or 'revoked'") == (
        "invalid_session_record"
    )
    assert drop_reason("unknown session event kind") == "unknown_kind"
    assert drop_reason("field 'event_id' is longer than 256 bytes") == "field_too_long"
    assert drop_reason("payload is larger than 1048576 bytes") == "payload_too_large"
    assert drop_reason("something new") == "malformed"


def test_metrics_families_are_exposed_with_zeros() -> None:
    registry = MetricsRegistry()
    metrics = PushMetrics(registry)
    hub = PushHub(on_closed=metrics.on_closed, on_active=metrics.on_active)
    stream = hub.open_stream("ann", "s1")
    hub.revoke_session("s1")
    metrics.on_drop("client_events", "unknown field 'x'")
    text = registry.render().decode()
    assert "gateway_push_active_streams 0.0" in text
    assert 'gateway_push_stream_closures_total{reason="revoked"} 1.0' in text
    assert 'gateway_push_stream_closures_total{reason="overflow"} 0.0' in text
    assert (
        'gateway_internal_event_drops_total{reason="unknown_field",stream="client_events"} 1.0'
        in text
    )
    assert stream.closed


async def _feed(handler: ClientEventsHandler, count: int, **overrides: object) -> None:
    """What UserFeeds does with a user's backlog: call the handler, await what it returns."""
    user = str(overrides.get("user_id", "ann"))
    for n in range(count):
        outcome = handler(user, (n + 1, 0), fields(event_id=f"ev-{n}", **overrides))
        if outcome is not None:
            await outcome


async def test_a_backlog_is_paced_to_a_reading_stream_instead_of_overflowing_it() -> None:
    import asyncio  # noqa: PLC0415 - only these tests need a loop

    hub = PushHub(queue_capacity=8)
    stream = hub.open_stream("ann", "s1")
    received: list[tuple[tuple[int, int], bytes]] = []

    async def read() -> None:
        while (item := await stream.next()) is not None:
            received.append(item)
            await asyncio.sleep(0)  # a reader slower than the producer, but reading

    reader = asyncio.create_task(read())
    handler = ClientEventsHandler(
        hub, CountingSigner(), epoch=lambda: EPOCH, on_drop=lambda *_: None
    )
    await _feed(handler, 100)  # twelve queues' worth, in one batch
    while stream.queued:
        await asyncio.sleep(0)
    assert [entry_id for entry_id, _ in received] == [(n + 1, 0) for n in range(100)]
    assert stream.closure is None
    hub.close()
    await reader


async def test_a_stream_that_does_not_read_still_overflows_after_the_grace() -> None:
    from datetime import timedelta  # noqa: PLC0415

    from push_hub.hub import Closure  # noqa: PLC0415

    hub = PushHub(queue_capacity=4)
    stuck = hub.open_stream("ann", "s1")
    other = hub.open_stream("bob", "s2")
    handler = ClientEventsHandler(
        hub,
        CountingSigner(),
        epoch=lambda: EPOCH,
        on_drop=lambda *_: None,
        overflow_grace=timedelta(milliseconds=20),
    )
    await _feed(handler, 5)  # the fifth finds the queue full, waits 20 ms, overflows
    assert stuck.closure is Closure.OVERFLOW
    await _feed(handler, 3, user_id="bob")
    assert (other.closure, other.queued) == (None, 3)
