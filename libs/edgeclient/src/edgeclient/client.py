"""The authenticated gRPC client: signed ExecuteCommand calls and the SubscribeEvents stream.

Every response and event is verified against the gateway's response-signer
public key before the caller sees it; nothing that fails verification is
ever returned as data.

Resuming a stream: every event carries a resume ``position``
(:attr:`VerifiedEvent.position`; on the bootstrap, where the stream starts).
``subscribe(resume_position=p)`` first delivers every event of the user (and of
this session) published after ``p``, then continues live: no duplicate, no gap.
:meth:`EdgeClient.follow` does that on every reconnect by itself. When the
gateway's history no longer covers ``p`` the stream ends with
:class:`~edgeclient.errors.EventHistoryGoneError`: refetch state, then subscribe
without a position.
"""

from __future__ import annotations

import asyncio
import contextlib
import random as _random
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import grpc
import grpc.aio

from edgeclient.envelope import (
    CommandResult,
    VerifiedEvent,
    now_ms,
    sign_request,
    verify_event,
    verify_response,
)
from edgeclient.errors import (
    EventHistoryGoneError,
    EventVerificationError,
    GatewayError,
    ProfileError,
    parse_retry_after,
)
from edgecore.catalog import SERVER_TIME_EVENT_TYPE, SUBSCRIBE_EVENTS_MESSAGE_TYPE
from edgecore.event_positions import MAX_POSITION_BYTES
from edgecore.payloads import decode_server_time_event, encode_subscribe_options
from edgecore.signing import ED25519_PUBLIC_KEY_SIZE
from galaxy.gateway.v1 import edge_gateway_pb2 as pb
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from edgeclient.keys import DeviceKey
    from edgeclient.profile import Profile

__all__ = ["DEFAULT_TIMEOUT", "EdgeClient", "Reconnect", "parse_target"]

DEFAULT_TIMEOUT: Final = 10.0
"""Deadline of one ExecuteCommand call, in seconds."""
FOLLOW_BASE_BACKOFF: Final = 0.5
FOLLOW_MAX_BACKOFF: Final = 30.0

_USER_AGENT: Final = "edgeclient/0.1"


def parse_target(address: str) -> tuple[str, bool]:
    """Split an address into (gRPC target, use TLS).

    ``host:port``, ``grpc://host:port`` and ``http://host:port`` are plaintext
    (h2c); ``grpcs://host:port`` and ``https://host:port`` use TLS with the
    system roots. A trailing ``/`` is ignored.
    """
    value = address.strip()
    for prefix, tls in (
        ("grpcs://", True),
        ("https://", True),
        ("grpc://", False),
        ("http://", False),
    ):
        if value.startswith(prefix):
            value, use_tls = value[len(prefix) :], tls
            break
    else:
        use_tls = False
    value = value.rstrip("/")
    if not value or "/" in value:
        raise ValueError(f"invalid gRPC address {address!r}: expected host:port")
    return value, use_tls


def _gateway_error(exc: grpc.aio.AioRpcError) -> GatewayError:
    code = exc.code()
    name = code.name if isinstance(code, grpc.StatusCode) else str(code)
    return GatewayError(name, str(exc.details() or ""), _retry_after(exc))


def _stream_error(exc: grpc.aio.AioRpcError, position: str | None) -> GatewayError:
    """A SubscribeEvents status: OUT_OF_RANGE is the event history gone past ``position``."""
    error = _gateway_error(exc)
    if error.code_name == "OUT_OF_RANGE":
        return EventHistoryGoneError(
            error.code_name, error.message, error.retry_after, resume_position=position
        )
    return error


def _retry_after(exc: grpc.aio.AioRpcError) -> int | None:
    """``retry-after``, which the gateway sends with a rate-limit reject."""
    for key, value in (*(exc.trailing_metadata() or ()), *(exc.initial_metadata() or ())):
        if key == "retry-after":  # gRPC metadata keys are lowercase
            return parse_retry_after(value)
    return None


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Why and when ``follow`` opens the next stream (for a status line or a metric)."""

    attempt: int
    delay: float
    cause: GatewayError | None  # None: the gateway ended the stream without a status
    resume_position: str | None = None
    """Where the next stream resumes (None: from "now")."""


class EdgeClient:
    """Signed calls to the authenticated edge.

    ``command_addr`` serves ExecuteCommand (edge-grpc) and ``events_addr``
    SubscribeEvents (push-hub); when they are equal (one ingress routing by
    method) a single channel is shared. Use as an async context manager; the
    channels open lazily and close on exit.
    """

    def __init__(
        self,
        *,
        command_addr: str,
        device_session_id: str,
        device_key: DeviceKey,
        server_public_key: bytes,
        events_addr: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        channel_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not device_session_id:
            raise ValueError("device_session_id is required")
        if len(server_public_key) != ED25519_PUBLIC_KEY_SIZE:
            raise ValueError("server_public_key must be the raw 32-byte Ed25519 public key")
        self.command_addr = command_addr
        self.events_addr = events_addr or command_addr
        parse_target(self.command_addr)
        parse_target(self.events_addr)
        self.device_session_id = device_session_id
        self.timeout = timeout
        self._key = device_key
        self._server_key = bytes(server_public_key)
        self._options = [("grpc.primary_user_agent", _USER_AGENT), *(channel_options or {}).items()]
        self._channels: dict[str, grpc.aio.Channel] = {}

    @classmethod
    def from_profile(
        cls,
        profile: Profile,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        channel_options: Mapping[str, Any] | None = None,
    ) -> EdgeClient:
        if not profile.device_session_id:
            raise ProfileError("the profile has no device session: run `edgectl login` first")
        if not profile.command_addr:
            raise ProfileError("no ExecuteCommand address: pass --command-addr")
        return cls(
            command_addr=profile.command_addr,
            events_addr=profile.events_addr or None,
            device_session_id=profile.device_session_id,
            device_key=profile.device_key(),
            server_public_key=profile.server_key_bytes(),
            timeout=timeout,
            channel_options=channel_options,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

    def _stub(self, address: str) -> Any:
        channel = self._channels.get(address)
        if channel is None:
            target, use_tls = parse_target(address)
            if use_tls:
                channel = grpc.aio.secure_channel(
                    target, grpc.ssl_channel_credentials(), options=self._options
                )
            else:
                channel = grpc.aio.insecure_channel(target, options=self._options)
            self._channels[address] = channel
        return pb_grpc.EdgeGatewayStub(channel)

    async def execute(
        self,
        message_type: str,
        payload: bytes,
        *,
        request_id: str | None = None,
        trace_id: str | None = None,
        timestamp_ms: int | None = None,
    ) -> CommandResult:
        """Sign and send one command; return the verified result.

        A non-``ok`` result_code is returned as data (its payload is a
        ``gateway.ErrorResponse``); :meth:`call_json` turns it into
        :class:`~edgeclient.errors.BusinessError`. Raises
        :class:`~edgeclient.errors.GatewayError` for a gRPC status and
        :class:`~edgeclient.errors.ResponseVerificationError` for a response
        that fails verification.
        """
        if not message_type:
            raise ValueError("message_type is required")
        request_id = request_id if request_id is not None else str(uuid.uuid4())
        if not request_id:
            raise ValueError("request_id must not be empty")
        signed = sign_request(
            self._key,
            device_session_id=self.device_session_id,
            message_type=message_type,
            timestamp_ms=timestamp_ms if timestamp_ms is not None else now_ms(),
            request_id=request_id,
            payload=payload,
        )
        request = pb.ExecuteCommandRequest(**signed.envelope_fields(), trace_id=trace_id or "")
        try:
            response = await self._stub(self.command_addr).ExecuteCommand(
                request, timeout=self.timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise _gateway_error(exc) from None
        return verify_response(
            response, expected_request_id=request_id, server_public_key=self._server_key
        )

    async def subscribe(
        self,
        *,
        request_id: str | None = None,
        trace_id: str | None = None,
        timestamp_ms: int | None = None,
        resume_position: str | None = None,
        payload: bytes | None = None,
    ) -> AsyncGenerator[VerifiedEvent, None]:
        """Open SubscribeEvents and yield verified events, the bootstrap first.

        The first event must be ``gateway.server_time`` whose event_id is the
        opening request_id. Each event's :attr:`~VerifiedEvent.position` is its
        resume position (the bootstrap's: where the stream starts).

        ``resume_position`` (a ``position`` received on an earlier stream) asks
        for every event published after it first, then live events: the
        opening payload becomes a ``gateway.SubscribeEventsOptions`` (signed like
        any payload), and the bootstrap must carry that same position. None or
        ``""``: start from now. ``payload`` sends raw opening payload bytes
        instead (tests, future options); passing both is a ValueError.

        An event that fails verification raises
        :class:`~edgeclient.errors.EventVerificationError` and ends the
        stream; a gRPC status (for example FAILED_PRECONDITION "device session
        is revoked") raises :class:`~edgeclient.errors.GatewayError`, and
        OUT_OF_RANGE "resume position is older than the event history" (at open,
        or later on a live stream) its subclass
        :class:`~edgeclient.errors.EventHistoryGoneError`. Leaving the loop early
        cancels the call.
        """
        request_id = request_id if request_id is not None else str(uuid.uuid4())
        if not request_id:
            raise ValueError("request_id must not be empty")
        resume = resume_position or None
        if resume is not None:
            if payload is not None:
                raise ValueError("pass either resume_position or payload, not both")
            if len(resume.encode("utf-8")) > MAX_POSITION_BYTES:
                raise ValueError(f"resume_position is longer than {MAX_POSITION_BYTES} bytes")
            payload = encode_subscribe_options(resume)
        signed = sign_request(
            self._key,
            device_session_id=self.device_session_id,
            message_type=SUBSCRIBE_EVENTS_MESSAGE_TYPE,
            timestamp_ms=timestamp_ms if timestamp_ms is not None else now_ms(),
            request_id=request_id,
            payload=payload if payload is not None else b"",
        )
        request = pb.SubscribeEventsRequest(**signed.envelope_fields(), trace_id=trace_id or "")
        call = self._stub(self.events_addr).SubscribeEvents(request)
        bootstrapped = False
        position = resume  # of the last event yielded: what a history-gone refers to
        try:
            async for raw in call:
                event = verify_event(raw, server_public_key=self._server_key)
                if not bootstrapped:
                    _check_bootstrap(event, request_id, resume)
                    bootstrapped = True
                position = event.position or None
                yield event
        except grpc.aio.AioRpcError as exc:
            raise _stream_error(exc, position) from None
        finally:
            call.cancel()
        if not bootstrapped:
            raise EventVerificationError(
                "stream closed before the gateway.server_time bootstrap event"
            )

    async def follow(
        self,
        *,
        resume_position: str | None = None,
        on_reconnect: Callable[[Reconnect], None] | None = None,
        base_backoff: float = FOLLOW_BASE_BACKOFF,
        max_backoff: float = FOLLOW_MAX_BACKOFF,
        random: Callable[[], float] = _random.random,
    ) -> AsyncGenerator[VerifiedEvent, None]:
        """:meth:`subscribe`, reopened whenever the gateway ends the stream for a reason a
        new stream can fix (UNAVAILABLE "gateway is shutting down" during a rolling
        update, RESOURCE_EXHAUSTED "push stream overflowed", a network error, a plain
        end), each time with a freshly signed request.

        Waits between attempts are full-jitter exponential backoff (uniform below
        ``min(max_backoff, base_backoff * 2**attempt)``, at least the ``retry-after``
        of a rate limit), reset once a stream delivered its bootstrap, so clients cut
        off together do not come back in one wave. A permanent status (a revoked or
        unknown session, a bad signature, ...; :attr:`GatewayError.permanent`) and any
        verification failure end it by raising.

        No event is lost or repeated across reconnects: ``follow`` remembers the
        :attr:`~VerifiedEvent.position` of the last event it yielded (the bootstrap
        included) and every new stream resumes from it, so the events published
        while no stream was open come first. The first stream resumes from
        ``resume_position`` (one saved from an earlier run), or starts at "now" when
        it is None. An event without a position (a gateway that sends none) leaves
        nothing to resume from: the next stream starts at "now".

        When the gateway's history no longer holds every event after the position
        (trimmed, expired, or Redis lost its data), at open or on a live stream,
        :class:`~edgeclient.errors.EventHistoryGoneError` ends it (permanent, never
        retried): refetch the state those events would have changed, then follow
        again without a position. UNAVAILABLE "event history is unavailable" is
        retried like any transient status.
        """
        position = resume_position or None
        attempt = 0
        while True:
            cause: GatewayError | None = None
            try:
                async with contextlib.aclosing(self.subscribe(resume_position=position)) as stream:
                    async for event in stream:
                        attempt = 0
                        position = event.position or None
                        yield event
            except GatewayError as exc:
                if exc.permanent:
                    raise
                cause = exc
            delay = random() * min(max_backoff, base_backoff * 2**attempt)
            if cause is not None and cause.retry_after is not None:
                delay = max(delay, float(cause.retry_after))
            attempt += 1
            if on_reconnect is not None:
                on_reconnect(Reconnect(attempt, delay, cause, position))
            await asyncio.sleep(delay)

    async def call_json(
        self,
        message_type: str,
        body: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        trace_id: str | None = None,
    ) -> dict[str, Any]:
        """JSON in, JSON out: encode the request table, execute, decode the response table.

        Raises :class:`~edgeclient.errors.BusinessError` for a verified
        non-``ok`` result (see :mod:`edgeclient.jsonapi`).
        """
        from edgeclient import jsonapi  # noqa: PLC0415 - the codec loads only when needed

        payload = jsonapi.encode_request(message_type, body or {})
        result = await self.execute(message_type, payload, request_id=request_id, trace_id=trace_id)
        return jsonapi.decode_result(message_type, result)


def _check_bootstrap(event: VerifiedEvent, request_id: str, resume_position: str | None) -> None:
    if event.event_type != SERVER_TIME_EVENT_TYPE:
        raise EventVerificationError(
            f"first event is {event.event_type!r}, expected {SERVER_TIME_EVENT_TYPE!r}"
        )
    if event.event_id != request_id:
        raise EventVerificationError(
            f"bootstrap event_id {event.event_id!r} is not the opening request_id {request_id!r}"
        )
    if resume_position is not None and event.position != resume_position:
        # Unsigned, but a gateway that did not resume must not look as if it had: the
        # events in between would be silently missing.
        raise EventVerificationError(
            f"the stream did not resume from {resume_position!r}: "
            f"its bootstrap position is {event.position!r}"
        )
    try:
        decode_server_time_event(event.payload)
    except ValueError:
        raise EventVerificationError("bootstrap payload is not a gateway.ServerTimeEvent") from None
