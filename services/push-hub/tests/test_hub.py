"""PushHub without I/O: targeting, overflow isolation, closing semantics."""

from __future__ import annotations

import asyncio

import pytest

from edgecore.errors import GrpcCode
from push_hub.hub import Closure, HubClosedError, PushHub, PushStream, QueueItem


class Recorder:
    def __init__(self) -> None:
        self.closed: list[tuple[str, Closure]] = []
        self.active: list[int] = []

    def on_closed(self, stream: PushStream, closure: Closure) -> None:
        self.closed.append((stream.device_session_id, closure))

    def on_active(self, value: int) -> None:
        self.active.append(value)


def make_hub(capacity: int = 64) -> tuple[PushHub, Recorder]:
    recorder = Recorder()
    hub = PushHub(
        queue_capacity=capacity, on_closed=recorder.on_closed, on_active=recorder.on_active
    )
    return hub, recorder


def item(data: bytes) -> QueueItem:
    """A queue item: the hub never looks inside, so the history position is a dummy."""
    return (0, 0), data


def drain(stream: PushStream) -> list[bytes]:
    out = []
    while (queued := stream.next_nowait()) is not None:
        out.append(queued[1])
    return out


def test_user_targeted_events_reach_every_stream_of_the_user_only() -> None:
    hub, _ = make_hub()
    phone_1 = hub.open_stream("ann", "ann-phone")
    phone_2 = hub.open_stream("ann", "ann-phone")
    laptop = hub.open_stream("ann", "ann-laptop")
    bob = hub.open_stream("bob", "bob-phone")

    assert hub.deliver(item(b"e1"), "ann") == 3
    assert [drain(s) for s in (phone_1, phone_2, laptop, bob)] == [[b"e1"], [b"e1"], [b"e1"], []]
    assert hub.deliver(item(b"e2"), "nobody") == 0


def test_session_targeted_events_need_user_and_session_to_match() -> None:
    hub, _ = make_hub()
    phone = hub.open_stream("ann", "ann-phone")
    laptop = hub.open_stream("ann", "ann-laptop")
    # A session id bound to another user (ids are unique in practice; the hub still checks).
    impostor = hub.open_stream("bob", "ann-laptop")

    assert hub.deliver(item(b"e1"), "ann", "ann-laptop") == 1
    assert [drain(s) for s in (phone, laptop, impostor)] == [[], [b"e1"], []]
    assert hub.deliver(item(b"e2"), "bob", "ann-phone") == 0
    assert drain(phone) == []
    assert hub.has_recipients("ann", "ann-laptop")
    assert not hub.has_recipients("carl", "ann-laptop")
    assert hub.has_recipients("ann", None)
    assert not hub.has_recipients("carl", None)


def test_a_full_queue_closes_only_that_stream() -> None:
    hub, recorder = make_hub(capacity=3)
    slow = hub.open_stream("ann", "ann-phone")
    fast = hub.open_stream("ann", "ann-laptop")
    for index in range(3):
        assert hub.deliver(item(bytes([index])), "ann") == 2
        drain(fast)
    # The fourth event finds the slow queue full: it is closed, the fast one still gets it.
    assert hub.deliver(item(b"\x03"), "ann") == 1
    assert slow.closure is Closure.OVERFLOW
    assert slow.queued == 0  # an ended stream delivers nothing more
    assert drain(fast) == [b"\x03"]
    assert recorder.closed == [("ann-phone", Closure.OVERFLOW)]
    assert hub.active == 1
    assert hub.streams_of_user("ann") == [fast]
    assert hub.deliver(item(b"\x04"), "ann") == 1


def test_overflow_of_many_streams_in_one_fan_out() -> None:
    hub, recorder = make_hub(capacity=1)
    streams = [hub.open_stream("ann", f"s{i}") for i in range(5)]
    assert hub.deliver(item(b"a"), "ann") == 5
    drain(streams[0])
    assert hub.deliver(item(b"b"), "ann") == 1
    assert [s.closure for s in streams] == [None] + [Closure.OVERFLOW] * 4
    assert len(recorder.closed) == 4
    assert hub.active == 1


def test_revocation_closes_exactly_that_session() -> None:
    hub, recorder = make_hub()
    phone_1 = hub.open_stream("ann", "ann-phone")
    phone_2 = hub.open_stream("ann", "ann-phone")
    laptop = hub.open_stream("ann", "ann-laptop")
    assert hub.revoke_session("ann-phone") == 2
    assert (phone_1.closure, phone_2.closure, laptop.closure) == (
        Closure.REVOKED,
        Closure.REVOKED,
        None,
    )
    assert hub.deliver(item(b"e"), "ann") == 1
    assert hub.revoke_session("ann-phone") == 0
    assert recorder.closed == [("ann-phone", Closure.REVOKED)] * 2


def test_a_stream_ends_once_and_is_counted_once() -> None:
    hub, recorder = make_hub()
    stream = hub.open_stream("ann", "ann-phone")
    assert hub.end(stream, Closure.REVOKED)
    assert not hub.end(stream, Closure.CLIENT_CANCELLED)
    assert not hub.end(stream, Closure.SHUTDOWN)
    assert stream.closure is Closure.REVOKED
    assert recorder.closed == [("ann-phone", Closure.REVOKED)]
    assert recorder.active == [1, 0]


def test_close_ends_every_stream_and_refuses_new_ones() -> None:
    hub, recorder = make_hub()
    streams = [hub.open_stream(f"u{i % 2}", f"s{i}") for i in range(4)]
    assert hub.close() == 4
    assert all(s.closure is Closure.SHUTDOWN for s in streams)
    assert hub.active == 0
    with pytest.raises(HubClosedError):
        hub.open_stream("ann", "ann-phone")
    assert hub.deliver(item(b"e"), "u0") == 0
    assert len(recorder.closed) == 4


def test_closure_statuses_come_from_the_error_catalog() -> None:
    assert {c: (r.spec.grpc_code, r.spec.message) for c in Closure if (r := c.reject)} == {
        Closure.OVERFLOW: (GrpcCode.RESOURCE_EXHAUSTED, "push stream overflowed"),
        Closure.REVOKED: (GrpcCode.FAILED_PRECONDITION, "device session is revoked"),
        Closure.SHUTDOWN: (GrpcCode.UNAVAILABLE, "gateway is shutting down"),
        Closure.HISTORY_GONE: (
            GrpcCode.OUT_OF_RANGE,
            "resume position is older than the event history",
        ),
        Closure.HISTORY_UNAVAILABLE: (GrpcCode.UNAVAILABLE, "event history is unavailable"),
    }
    assert Closure.CLIENT_CANCELLED.reject is None
    assert Closure.SEND_FAILED.reject is None
    assert {c.value for c in Closure} == {
        "client_cancelled", "overflow", "revoked", "shutdown", "send_failed",
        "history_gone", "history_unavailable",
    }  # fmt: skip


async def test_next_waits_for_items_and_returns_none_once_ended() -> None:
    hub, _ = make_hub()
    stream = hub.open_stream("ann", "ann-phone")
    waiter = asyncio.create_task(stream.next())
    await asyncio.sleep(0)
    assert not waiter.done()
    hub.deliver(item(b"e1"), "ann")
    assert await waiter == item(b"e1")

    waiter = asyncio.create_task(stream.next())
    await asyncio.sleep(0)
    hub.revoke_session("ann-phone")
    assert await waiter is None
    assert await stream.next() is None


async def test_fan_out_never_waits_for_a_reader() -> None:
    """Delivery is synchronous: nothing a reader does (or fails to do) can delay it."""
    hub, _ = make_hub(capacity=2)
    stalled = hub.open_stream("ann", "stalled")
    readers = [hub.open_stream("ann", f"r{i}") for i in range(3)]
    got: dict[int, list[bytes]] = {i: [] for i in range(3)}

    async def read(index: int) -> None:
        while (queued := await readers[index].next()) is not None:
            got[index].append(queued[1])

    tasks = [asyncio.create_task(read(i)) for i in range(3)]
    for index in range(10):
        hub.deliver(item(bytes([index])), "ann")  # returns at once, even with a full queue
        await asyncio.sleep(0)
    assert stalled.closure is Closure.OVERFLOW
    hub.close()
    await asyncio.gather(*tasks)
    assert all(items == [bytes([i]) for i in range(10)] for items in got.values())
