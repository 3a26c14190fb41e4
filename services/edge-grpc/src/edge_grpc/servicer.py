"""The gRPC adapter: protobuf -> Envelope -> pipeline -> downstream -> signed response.

Every reject is an ``EdgeError`` rendered as its catalog code and message
(``grpc.StatusCode[code.name]``); nothing else reaches the client. Unexpected
failures become INTERNAL "internal error" (logged by exception type only).
The success path does no logging and allocates little beyond what the
pipeline and protobuf need: it is the benchmarked hot path.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from time import perf_counter
from typing import Any, Final

import grpc

from edge_grpc.responses import ResponseSigner
from edge_grpc.routing import DownstreamExecutor
from edgecore.errors import EdgeError, GrpcCode, Reject
from edgecore.pipeline import Envelope, VerificationPipeline, peer_ip_from_grpc
from edgecore.pipeline.audit import AuthenticatedTelemetry
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

__all__ = ["EXECUTE_COMMAND", "SUBSCRIBE_EVENTS", "EdgeGatewayServicer", "grpc_status"]

_log = logging.getLogger("edge_grpc.servicer")

EXECUTE_COMMAND: Final = "ExecuteCommand"
SUBSCRIBE_EVENTS: Final = "SubscribeEvents"

_STATUS: Final[dict[GrpcCode, Any]] = {code: grpc.StatusCode[code.name] for code in GrpcCode}
_PEER_CACHE_MAX: Final = 4096


def grpc_status(code: GrpcCode) -> Any:
    """``edgecore.errors.GrpcCode`` -> ``grpc.StatusCode`` (same names)."""
    return _STATUS[code]


class EdgeGatewayServicer(pb_grpc.EdgeGatewayServicer):  # type: ignore[misc]
    def __init__(
        self,
        *,
        pipeline: VerificationPipeline,
        executor: DownstreamExecutor,
        signer: ResponseSigner,
        telemetry: AuthenticatedTelemetry,
    ) -> None:
        self._verify = pipeline.verify
        self._execute = executor.execute
        self._sign = signer.sign
        self._telemetry = telemetry
        self._accepted = telemetry.accepted
        # "ipv4:127.0.0.1:53412" -> "127.0.0.1": parsing per request is measurable on the
        # hot path; a bounded memo keeps it to a dict lookup for connected peers.
        self._peers: dict[str, str] = {}

    def _peer_ip(self, peer: str | None) -> str:
        if peer is None:
            return peer_ip_from_grpc(peer)
        ip = self._peers.get(peer)
        if ip is None:
            ip = peer_ip_from_grpc(peer)
            if len(self._peers) >= _PEER_CACHE_MAX:
                self._peers.clear()
            self._peers[peer] = ip
        return ip

    async def ExecuteCommand(self, request: Any, context: Any) -> Any:
        started = perf_counter()
        envelope = Envelope(
            request.protocol_version,
            request.device_session_id,
            request.message_type,
            request.timestamp_ms,
            request.request_id,
            request.payload_bytes,
            request.payload_hash,
            request.signature,
            request.trace_id,
        )
        peer_ip = self._peer_ip(context.peer())
        try:
            verified = await self._verify(envelope, peer_ip)
            result = await self._execute(verified.command())
            response = self._sign(envelope.request_id, result)
        except EdgeError as exc:
            error = exc
        except Exception as exc:
            _log.error(
                "ExecuteCommand failed unexpectedly",
                extra={"error": type(exc).__name__, "request_id": envelope.request_id[:128]},
            )
            error = EdgeError(Reject.INTERNAL_ERROR)
        else:
            self._accepted(
                EXECUTE_COMMAND, envelope.message_type, result.result_code, perf_counter() - started
            )
            return response
        elapsed = perf_counter() - started
        self._telemetry.rejected(EXECUTE_COMMAND, envelope, error, peer_ip, elapsed)
        await context.abort(_STATUS[error.grpc_code], error.message)

    async def SubscribeEvents(self, request: Any, context: Any) -> AsyncIterator[Any]:
        """Served by push-hub; this process answers UNIMPLEMENTED "method is not allowed".

        An async generator, like every server-streaming handler (interceptors iterate it).
        """
        error = EdgeError(Reject.METHOD_NOT_ALLOWED)
        self._telemetry.rejected(SUBSCRIBE_EVENTS, None, error, self._peer_ip(context.peer()), 0.0)
        await context.abort(_STATUS[error.grpc_code], error.message)
        yield  # never reached: abort raises
