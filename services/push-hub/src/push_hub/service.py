"""The EdgeGateway surface of push-hub: SubscribeEvents (and ExecuteCommand -> UNIMPLEMENTED).

One handler for every protocol (Connect, gRPC, gRPC-Web; served by
``edgecore.rpc``). SubscribeEvents:

1. steps 1-9 of the shared pipeline with
   ``expected_message_type = "gateway.subscribe_events"``; a reject ends the
   call with the catalog's code and message; the payload, when not empty, is a
   ``gateway.SubscribeEventsOptions`` (INVALID_ARGUMENT "subscribe options are
   malformed" otherwise);
2. the stream is bound to the verified user_id and device_session_id and
   registered in the PushHub, then the user's feed is attached (``UserFeeds``):
   from here on every event of the user dispatched on this replica is queued;
3. where it starts: the feed's cursor, or the resume position asked for; the
   events after a resume position up to the cursor are read from the user's
   history (OUT_OF_RANGE "resume position is older than the event history" when
   part of them is gone, UNAVAILABLE "event history is unavailable" when Redis
   does not answer in time);
4. the signed ``gateway.server_time`` bootstrap event is written first (its
   ``position`` is where the stream starts), then the history read in 3, each
   event signed as it is written;
5. queued events newer than what 4 covered are written in order until the stream ends: client
   cancellation or disconnect, shutdown (UNAVAILABLE "gateway is shutting
   down"), queue overflow (RESOURCE_EXHAUSTED "push stream overflowed") or
   revocation of the session (FAILED_PRECONDITION "device session is revoked").

Events are yielded as ``Preserialized`` ``GatewayEvent`` bytes, so an event
fanned out to N streams is signed and serialized once (a JSON client gets
them re-encoded by the codec).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from connectrpc.request import RequestContext
from connectrpc.server import Endpoint
from redis.exceptions import RedisError

from edgecore.catalog import SUBSCRIBE_EVENTS_MESSAGE_TYPE
from edgecore.errors import EdgeError, Reject
from edgecore.event_history import HISTORY_PAGE, Entry, HistoryStore, history_gone
from edgecore.event_positions import EntryId, Position, PositionError
from edgecore.payloads import decode_subscribe_options
from edgecore.pipeline import Envelope, PeerIpCache, VerificationPipeline
from edgecore.pipeline.audit import AuthenticatedTelemetry
from edgecore.rpc.codecs import Preserialized
from edgecore.rpc.gateway import EXECUTE_COMMAND, SUBSCRIBE_EVENTS, gateway_endpoints
from edgecore.rpc.status import connect_error
from edgecore.session_cache import SessionCache, SessionCacheUnavailableError
from galaxy.gateway.v1 import edge_gateway_pb2 as pb
from push_hub.events import ClientEventsHandler, EventSigner
from push_hub.feeds import Feed, FeedUnavailableError, UserFeeds
from push_hub.hub import Closure, HubClosedError, PushHub, PushStream

__all__ = ["PushService"]

_log = logging.getLogger("push_hub.streams")
_EVENT = pb.GatewayEvent


def _envelope(request: pb.SubscribeEventsRequest) -> Envelope:
    return Envelope(
        protocol_version=request.protocol_version,
        device_session_id=request.device_session_id,
        message_type=request.message_type,
        timestamp_ms=request.timestamp_ms,
        request_id=request.request_id,
        payload=request.payload_bytes,
        payload_hash=request.payload_hash,
        signature=request.signature,
        trace_id=request.trace_id,
    )


class PushService:
    def __init__(
        self,
        *,
        hub: PushHub,
        pipeline: VerificationPipeline,
        sessions: SessionCache,
        signer: EventSigner,
        telemetry: AuthenticatedTelemetry,
        feeds: UserFeeds,
        history: HistoryStore,
        events: ClientEventsHandler,
        history_ttl_ms: int,
    ) -> None:
        self._feeds = feeds
        self._history = history
        self._events = events
        self._history_ttl_ms = history_ttl_ms
        self._hub = hub
        self._pipeline = pipeline
        self._sessions = sessions
        self._signer = signer
        self._telemetry = telemetry
        self._peer_ip = PeerIpCache()

    def endpoints(self) -> dict[str, Endpoint[Any, Any]]:
        return gateway_endpoints(self.execute_command, self.subscribe_events)

    async def execute_command(self, request: Any, ctx: RequestContext[Any, Any]) -> Any:
        """Commands and events are separate deployments: commands go to edge-grpc."""
        error = EdgeError(Reject.METHOD_NOT_ALLOWED)
        self._telemetry.rejected(
            EXECUTE_COMMAND, None, error, self._peer_ip(ctx.client_address), 0.0
        )
        raise connect_error(error)

    async def subscribe_events(
        self, request: pb.SubscribeEventsRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[Preserialized]:
        started = time.perf_counter()
        peer_ip = self._peer_ip(ctx.client_address)
        envelope = _envelope(request)
        stream, feed, opening = await self._open(envelope, peer_ip, started, ctx)
        try:
            await self._recheck_revocation(stream)
            if stream.closure is None:
                bootstrap = self._signer.bootstrap(
                    request_id=envelope.request_id,
                    trace_id=envelope.trace_id,
                    position=self._events.position(opening.start),
                )
                yield Preserialized(bootstrap, _EVENT)
                self._telemetry.accepted(
                    SUBSCRIBE_EVENTS, envelope.message_type, "OK", _since(started)
                )
                _log.debug(
                    "stream opened",
                    extra={"request_id": envelope.request_id, "user_id": stream.user_id,
                           "device_session_id": envelope.device_session_id,
                           "replayed": len(opening.history)},
                )  # fmt: skip
                for data in self._replay(stream, opening.history):
                    yield Preserialized(data, _EVENT)
                covered = opening.covered
                while True:
                    item = stream.next_nowait()
                    if item is None:
                        item = await stream.next()
                        if item is None:
                            break
                    if item[0] > covered:
                        yield Preserialized(item[1], _EVENT)
            else:
                error = EdgeError(Reject.REVOKED_SESSION)
                self._telemetry.rejected(
                    SUBSCRIBE_EVENTS, envelope, error, peer_ip, _since(started)
                )
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away (or its write failed): connectrpc closes the generator.
            self._hub.end(stream, Closure.CLIENT_CANCELLED)
            raise
        finally:
            self._feeds.detach(feed)
        self._finish(stream)

    async def _open(
        self, envelope: Envelope, peer_ip: str, started: float, ctx: RequestContext[Any, Any]
    ) -> tuple[PushStream, Feed, _Opening]:
        """Steps 1-3 of the module docstring; raises the reject that ends the call."""
        if self._hub.closed:
            raise self._reject(envelope, EdgeError(Reject.SHUTTING_DOWN), peer_ip, started)
        try:
            verified = await self._pipeline.verify(
                envelope, peer_ip, expected_message_type=SUBSCRIBE_EVENTS_MESSAGE_TYPE
            )
        except EdgeError as exc:
            raise self._reject(envelope, exc, peer_ip, started, ctx) from None
        except Exception as exc:  # a bug, not a client error: no internals on the wire
            _log.error("open verification failed", extra={"error": type(exc).__name__})
            error = EdgeError(Reject.INTERNAL_ERROR)
            raise self._reject(envelope, error, peer_ip, started) from None
        try:
            resume = decode_subscribe_options(envelope.payload)
        except ValueError:
            error = EdgeError(Reject.INVALID_SUBSCRIBE_OPTIONS)
            raise self._reject(envelope, error, peer_ip, started, ctx) from None
        try:
            stream = self._hub.open_stream(verified.user_id, envelope.device_session_id)
        except HubClosedError:
            raise self._reject(
                envelope, EdgeError(Reject.SHUTTING_DOWN), peer_ip, started
            ) from None
        try:
            feed = await self._feeds.attach(stream.user_id)
        except FeedUnavailableError:
            self._hub.end(stream, Closure.HISTORY_UNAVAILABLE)
            error = EdgeError(Reject.EVENT_HISTORY_UNAVAILABLE)
            raise self._reject(envelope, error, peer_ip, started) from None
        except BaseException:
            self._hub.end(stream, Closure.CLIENT_CANCELLED)
            raise
        try:
            return stream, feed, await self._opening(stream, feed, resume)
        except _Refused as refused:
            self._feeds.detach(feed)
            self._hub.end(stream, refused.closure)
            raise self._reject(envelope, EdgeError(refused.reject), peer_ip, started) from None
        except BaseException:
            self._feeds.detach(feed)
            self._hub.end(stream, Closure.CLIENT_CANCELLED)
            raise

    async def _opening(self, stream: PushStream, feed: Feed, resume: str | None) -> _Opening:
        """Where the stream starts and what of the user's history it is owed first.

        The stream was registered before the feed was attached, so every event
        dispatched after ``feed.cursor`` was read is in its queue: the history
        needed is exactly (resume position, cursor].
        """
        cursor = feed.cursor
        assert cursor is not None, "an attached feed is caught up"
        if resume is None:
            return _Opening(cursor, [], cursor)
        try:
            position = Position.parse(resume)
        except PositionError:
            raise _Refused(Closure.HISTORY_GONE, Reject.INVALID_SUBSCRIBE_OPTIONS) from None
        if position.epoch != self._feeds.epoch:
            raise _Refused(Closure.HISTORY_GONE, Reject.EVENT_HISTORY_GONE)
        after = position.entry_id
        if after == cursor:
            return _Opening(after, [], cursor)
        user = stream.user_id
        try:
            read = await self._history.read(user, after=after, upto=cursor)
            if history_gone(after, read, self._history_ttl_ms):
                raise _Refused(Closure.HISTORY_GONE, Reject.EVENT_HISTORY_GONE)
            history = list(read.entries)
            while len(read.entries) >= HISTORY_PAGE and history[-1][0] < cursor:
                read = await self._history.read(user, after=history[-1][0], upto=cursor)
                history += read.entries
        except (RedisError, OSError):
            raise _Refused(Closure.HISTORY_UNAVAILABLE, Reject.EVENT_HISTORY_UNAVAILABLE) from None
        return _Opening(after, history, max(after, cursor))

    def _replay(self, stream: PushStream, history: list[Entry]) -> Iterator[bytes]:
        """The history entries meant for this stream, each signed as it is written."""
        events = self._events
        for entry_id, fields in history:
            event = events.decode(stream.user_id, entry_id, fields)
            if event is None:
                continue
            target = event.device_session_id
            if target is None or target == stream.device_session_id:
                yield events.sign(event, entry_id)

    async def _recheck_revocation(self, stream: PushStream) -> None:
        """Close a stream whose session was revoked while its open was being verified.

        The stream is registered before this check, so a revocation that lands
        afterwards is the hub's to handle: nothing slips between the two.
        """
        try:
            current = await self._sessions.get(stream.device_session_id)
        except SessionCacheUnavailableError:
            return  # verified a moment ago; later revocations still reach the hub
        if current is not None and current.record.revoked:
            self._hub.end(stream, Closure.REVOKED)

    def _finish(self, stream: PushStream) -> None:
        """The end-of-stream status the server decided (none: a plain end)."""
        closure = stream.closure
        reject = closure.reject if closure is not None else None
        if reject is None:
            return
        if closure in (Closure.OVERFLOW, Closure.REVOKED):
            _log.info(
                "stream closed",
                extra={"reason": closure.value if closure else "",
                       "device_session_id": stream.device_session_id},
            )  # fmt: skip
        raise connect_error(EdgeError(reject))

    def _reject(
        self,
        envelope: Envelope,
        error: EdgeError,
        peer_ip: str,
        started: float,
        ctx: RequestContext[Any, Any] | None = None,
    ) -> Exception:
        self._telemetry.rejected(SUBSCRIBE_EVENTS, envelope, error, peer_ip, _since(started))
        return connect_error(error, ctx, stream=True)


@dataclass(frozen=True, slots=True)
class _Opening:
    start: EntryId  # the bootstrap's position
    history: list[Entry]  # owed before anything queued
    covered: EntryId  # queued events up to here are in `history` or before `start`


class _Refused(Exception):
    def __init__(self, closure: Closure, reject: Reject) -> None:
        self.closure = closure
        self.reject = reject


def _since(started: float) -> float:
    return time.perf_counter() - started
