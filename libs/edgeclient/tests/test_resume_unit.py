"""Resumable streams without sockets: ``follow`` driven by a scripted ``subscribe``,
the error mapping, and the position checks of ``subscribe`` and ``verify_event``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest

from edgeclient import DeviceKey, EdgeClient, EventHistoryGoneError, GatewayError, VerifiedEvent
from edgeclient.client import Reconnect, _stream_error
from edgeclient.envelope import verify_event
from edgeclient.errors import EventVerificationError
from edgecore.catalog import SERVER_TIME_EVENT_TYPE
from edgecore.signing import Signer, event_signing_input, payload_hash
from galaxy.gateway.v1 import edge_gateway_pb2 as pb

UNAVAILABLE = GatewayError("UNAVAILABLE", "gateway is shutting down")
HISTORY_UNAVAILABLE = GatewayError("UNAVAILABLE", "event history is unavailable")
HISTORY_GONE = EventHistoryGoneError(
    "OUT_OF_RANGE", "resume position is older than the event history"
)


def event(event_id: str, position: str, event_type: str = "lobby.invite.received") -> VerifiedEvent:
    return VerifiedEvent(event_type, event_id, 1, b"", position=position)


def bootstrap(position: str) -> VerifiedEvent:
    return event("boot", position, SERVER_TIME_EVENT_TYPE)


@dataclass
class Script:
    """One entry per stream ``follow`` opens: the events it yields, then how it ends."""

    streams: list[tuple[Sequence[VerifiedEvent], GatewayError | None]]
    opened_with: list[str | None] = field(default_factory=list)

    async def subscribe(self, **kwargs: Any) -> AsyncGenerator[VerifiedEvent, None]:
        self.opened_with.append(kwargs.get("resume_position"))
        events, end = self.streams.pop(0)
        for item in events:
            yield item
        if end is not None:
            raise end


def client() -> EdgeClient:
    key = DeviceKey.generate()
    return EdgeClient(
        command_addr="127.0.0.1:1",
        device_session_id="ds-unit",
        device_key=key,
        server_public_key=key.public_key,
    )


async def follow(
    script: Script, count: int, **options: Any
) -> tuple[list[VerifiedEvent], list[Reconnect]]:
    edge = client()
    edge.subscribe = script.subscribe  # type: ignore[method-assign]
    steps: list[Reconnect] = []
    seen: list[VerifiedEvent] = []
    stream = edge.follow(on_reconnect=steps.append, random=lambda: 0.0, **options)
    async with asyncio.timeout(5), contextlib.aclosing(stream):
        async for item in stream:
            seen.append(item)
            if len(seen) == count:
                break
    return seen, steps


async def test_follow_resumes_each_stream_from_the_last_position_it_yielded() -> None:
    script = Script(
        [
            ([bootstrap("p:1"), event("e2", "p:2"), event("e3", "p:3")], UNAVAILABLE),
            ([], HISTORY_UNAVAILABLE),  # refused at open: still owed everything after p:3
            ([bootstrap("p:3"), event("e4", "p:4")], None),  # a plain end
            ([bootstrap("p:4"), event("e5", "p:5")], None),
        ]
    )
    seen, steps = await follow(script, 7)
    assert [e.event_id for e in seen] == ["boot", "e2", "e3", "boot", "e4", "boot", "e5"]
    assert script.opened_with == [None, "p:3", "p:3", "p:4"]
    assert [(s.cause, s.resume_position) for s in steps] == [
        (UNAVAILABLE, "p:3"),
        (HISTORY_UNAVAILABLE, "p:3"),
        (None, "p:4"),
    ]


async def test_follow_starts_from_the_given_position() -> None:
    script = Script(
        [
            ([bootstrap("p:7")], UNAVAILABLE),
            ([bootstrap("p:7"), event("e8", "p:8")], None),
        ]
    )
    seen, _ = await follow(script, 3, resume_position="p:7")
    assert script.opened_with == ["p:7", "p:7"]
    assert seen[-1].position == "p:8"


async def test_history_gone_ends_follow_at_once() -> None:
    script = Script(
        [
            ([bootstrap("p:1"), event("e2", "p:2")], UNAVAILABLE),
            ([], HISTORY_GONE),
            ([bootstrap("p:9")], None),  # never opened
        ]
    )
    with pytest.raises(EventHistoryGoneError) as caught:
        await follow(script, 10)
    assert caught.value is HISTORY_GONE
    assert script.opened_with == [None, "p:2"]
    assert len(script.streams) == 1


async def test_a_live_stream_whose_history_is_gone_ends_follow() -> None:
    script = Script([([bootstrap("p:1"), event("e2", "p:2")], HISTORY_GONE), ([], None)])
    with pytest.raises(EventHistoryGoneError):
        await follow(script, 10)
    assert script.opened_with == [None]


async def test_an_event_without_a_position_leaves_nothing_to_resume_from() -> None:
    script = Script(
        [
            ([bootstrap("p:1"), event("e2", "")], UNAVAILABLE),
            ([bootstrap("p:5")], None),
        ]
    )
    await follow(script, 3)
    assert script.opened_with == [None, None]


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def test_stream_statuses_of_resumable_streams() -> None:
    gone = _stream_error(
        _rpc_error(grpc.StatusCode.OUT_OF_RANGE, "resume position is older than the event history"),
        "p:3",
    )
    assert isinstance(gone, EventHistoryGoneError)
    assert (gone.code_name, gone.message, gone.resume_position) == (
        "OUT_OF_RANGE",
        "resume position is older than the event history",
        "p:3",
    )
    assert gone.permanent
    assert (
        str(gone) == "gateway error OUT_OF_RANGE: resume position is older than the event history"
    )

    unavailable = _stream_error(
        _rpc_error(grpc.StatusCode.UNAVAILABLE, "event history is unavailable"), "p:3"
    )
    assert type(unavailable) is GatewayError
    assert not unavailable.permanent
    malformed = _stream_error(
        _rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "subscribe options are malformed"), None
    )
    assert type(malformed) is GatewayError
    assert malformed.permanent


async def test_subscribe_refuses_a_payload_and_a_resume_position_together() -> None:
    async with client() as edge:
        with pytest.raises(ValueError, match="either resume_position or payload"):
            await anext(edge.subscribe(resume_position="p:1", payload=b"\x00"))
        with pytest.raises(ValueError, match="longer than 64 bytes"):
            await anext(edge.subscribe(resume_position="p" * 65))


def _signed_event(position: str) -> Any:
    signer = Signer.generate()
    digest = payload_hash(b"x")
    signature = signer.sign(
        event_signing_input(
            event_type="lobby.invite.received",
            event_id="e1",
            timestamp_ms=5,
            request_id="",
            trace_id="",
            payload_hash=digest,
        )
    )
    raw = pb.GatewayEvent(
        event_type="lobby.invite.received",
        event_id="e1",
        timestamp_ms=5,
        payload_bytes=b"x",
        payload_hash=digest,
        signature=signature,
        position=position,
    )
    return raw, signer.public_key


def test_verify_event_passes_the_unsigned_position_through() -> None:
    raw, key = _signed_event("0123abcd:17-0")
    assert verify_event(raw, server_public_key=key).position == "0123abcd:17-0"
    raw.position = "another:1-0"  # not signed: changing it keeps the signature valid
    assert verify_event(raw, server_public_key=key).position == "another:1-0"


def test_verify_event_refuses_an_over_long_position() -> None:
    raw, key = _signed_event("x" * 65)
    with pytest.raises(EventVerificationError, match="position is longer than 64 bytes"):
        verify_event(raw, server_public_key=key)
