"""The EdgeGateway gRPC surface of push-hub: SubscribeEvents (and ExecuteCommand -> UNIMPLEMENTED).

SubscribeEvents:

1. steps 1-9 of the shared pipeline with
   ``expected_message_type = "gateway.subscribe_events"``; a reject ends the
   call with the catalog's code and message;
2. the stream is bound to the verified user_id and device_session_id and
   registered in the PushHub (at the same moment the bootstrap is written,
   so an event published right after the open is queued behind it, not lost);
3. the signed ``gateway.server_time`` bootstrap event is written first;
4. queued events are written in order until the stream ends: client
   cancellation, shutdown (UNAVAILABLE "gateway is shutting down"), queue
   overflow (RESOURCE_EXHAUSTED "push stream overflowed"), revocation of the
   session (FAILED_PRECONDITION "device session is revoked") or a failed send.

Responses are pre-serialized ``GatewayEvent`` bytes (the method handler has no
response serializer), so an event fanned out to N streams is signed and
serialized once. The handler is an async generator that writes through
``context.write`` itself (it never yields): the OpenTelemetry aio interceptor
accepts only generators for streaming methods, and writing here lets the
handler see each send's outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Final

import grpc
import grpc.aio

from edgecore.catalog import SUBSCRIBE_EVENTS_MESSAGE_TYPE
from edgecore.errors import EdgeError, Reject
from edgecore.pipeline import Envelope, VerificationPipeline, peer_ip_from_grpc
from edgecore.pipeline.audit import AuthenticatedTelemetry
from edgecore.session_cache import SessionCache, SessionCacheUnavailableError
from galaxy.gateway.v1 import edge_gateway_pb2 as pb
from push_hub.events import EventSigner
from push_hub.hub import Closure, HubClosedError, PushHub, PushStream

__all__ = ["SERVICE_NAME", "PushService"]

SERVICE_NAME: Final = "galaxy.gateway.v1.EdgeGateway"
_RPC: Final = "SubscribeEvents"

_log = logging.getLogger("push_hub.streams")


def _status(reject: Reject) -> grpc.StatusCode:
    return grpc.StatusCode[reject.spec.grpc_code.name]


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
    ) -> None:
        self._hub = hub
        self._pipeline = pipeline
        self._sessions = sessions
        self._signer = signer
        self._telemetry = telemetry

    def rpc_handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "SubscribeEvents": grpc.unary_stream_rpc_method_handler(
                    self.subscribe_events,
                    request_deserializer=pb.SubscribeEventsRequest.FromString,
                    response_serializer=None,  # handlers write signed, serialized bytes
                ),
                "ExecuteCommand": grpc.unary_unary_rpc_method_handler(
                    self.execute_command,
                    request_deserializer=pb.ExecuteCommandRequest.FromString,
                    response_serializer=pb.ExecuteCommandResponse.SerializeToString,
                ),
            },
        )

    async def execute_command(
        self, request: pb.ExecuteCommandRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ExecuteCommandResponse:
        """Commands and events are separate deployments: commands go to edge-grpc."""
        reject = Reject.METHOD_NOT_ALLOWED
        await context.abort(_status(reject), reject.spec.message)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    async def subscribe_events(
        self, request: pb.SubscribeEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        await self._serve(request, context)
        return
        yield  # pragma: no cover - makes this an async generator (see the module docstring)

    async def _serve(
        self, request: pb.SubscribeEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        started = time.perf_counter()
        peer_ip = peer_ip_from_grpc(context.peer())
        envelope = _envelope(request)
        if self._hub.closed:
            self._reject(context, envelope, EdgeError(Reject.SHUTTING_DOWN), peer_ip, started)
            return
        try:
            verified = await self._pipeline.verify(
                envelope, peer_ip, expected_message_type=SUBSCRIBE_EVENTS_MESSAGE_TYPE
            )
        except EdgeError as exc:
            self._reject(context, envelope, exc, peer_ip, started)
            return
        except Exception as exc:  # a bug, not a client error: no internals on the wire
            _log.error("open verification failed", extra={"error": type(exc).__name__})
            self._reject(context, envelope, EdgeError(Reject.INTERNAL_ERROR), peer_ip, started)
            return
        try:
            stream = self._hub.open_stream(verified.user_id, envelope.device_session_id)
        except HubClosedError:
            self._reject(context, envelope, EdgeError(Reject.SHUTTING_DOWN), peer_ip, started)
            return
        try:
            await self._recheck_revocation(stream)
            bootstrap = self._signer.bootstrap(
                request_id=envelope.request_id, trace_id=envelope.trace_id
            )
            if stream.closure is not None:
                error = EdgeError(Reject.REVOKED_SESSION)
                self._telemetry.rejected(_RPC, envelope, error, peer_ip, _since(started))
            else:
                await context.write(bootstrap)
                self._telemetry.accepted(_RPC, envelope.message_type, "OK", _since(started))
                _log.debug(
                    "stream opened",
                    extra={"request_id": envelope.request_id, "user_id": verified.user_id,
                           "device_session_id": envelope.device_session_id},
                )  # fmt: skip
            await self._pump(stream, context)
        except asyncio.CancelledError:
            self._hub.end(stream, Closure.CLIENT_CANCELLED)
            raise
        except Exception as exc:
            # A failed write (the peer is gone) or a bug: the stream is over either way.
            if self._hub.end(stream, Closure.SEND_FAILED):
                _log.info(
                    "stream send failed",
                    extra={"device_session_id": stream.device_session_id,
                           "error": type(exc).__name__},
                )  # fmt: skip
            reject = Reject.INTERNAL_ERROR
            context.set_code(_status(reject))
            context.set_details(reject.spec.message)
            return
        self._finish(stream, context)

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

    @staticmethod
    async def _pump(stream: PushStream, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        write = context.write
        while True:
            item = stream.next_nowait()
            if item is None:
                item = await stream.next()
                if item is None:
                    return
            await write(item)

    def _finish(self, stream: PushStream, context: grpc.aio.ServicerContext[Any, Any]) -> None:
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
        context.set_code(_status(reject))
        context.set_details(reject.spec.message)

    def _reject(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        envelope: Envelope,
        error: EdgeError,
        peer_ip: str,
        started: float,
    ) -> None:
        self._telemetry.rejected(_RPC, envelope, error, peer_ip, _since(started))
        context.set_code(grpc.StatusCode[error.grpc_code.name])
        context.set_details(error.message)


def _since(started: float) -> float:
    return time.perf_counter() - started
