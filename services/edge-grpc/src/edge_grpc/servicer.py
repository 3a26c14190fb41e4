"""The ExecuteCommand handler: protobuf -> Envelope -> pipeline -> downstream -> signed response.

One handler for every protocol: connectrpc decodes the request (Connect,
gRPC or gRPC-Web; binary or JSON) and renders the outcome. Every reject is an
``EdgeError`` raised as its catalog code and message (``connect_error``);
nothing else reaches the client. Unexpected failures become INTERNAL
"internal error" (logged by exception type only). The success path does no
logging and allocates little beyond what the pipeline and protobuf need: it is
the benchmarked hot path.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from time import perf_counter
from typing import Any

from connectrpc.request import RequestContext
from connectrpc.server import Endpoint

from edge_grpc.responses import ResponseSigner
from edge_grpc.routing import DownstreamExecutor
from edgecore.errors import EdgeError, Reject
from edgecore.pipeline import Envelope, PeerIpCache, VerificationPipeline
from edgecore.pipeline.audit import AuthenticatedTelemetry
from edgecore.rpc.gateway import EXECUTE_COMMAND, SUBSCRIBE_EVENTS, gateway_endpoints
from edgecore.rpc.status import connect_error

__all__ = ["EdgeGatewayServicer"]

_log = logging.getLogger("edge_grpc.servicer")


class EdgeGatewayServicer:
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
        self._peer_ip = PeerIpCache()

    def endpoints(self) -> dict[str, Endpoint[Any, Any]]:
        return gateway_endpoints(self.execute_command, self.subscribe_events)

    async def execute_command(self, request: Any, ctx: RequestContext[Any, Any]) -> Any:
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
        peer_ip = self._peer_ip(ctx.client_address)
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
        raise connect_error(error, ctx)

    async def subscribe_events(
        self, request: Any, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[Any]:
        """Served by push-hub; this process answers UNIMPLEMENTED "method is not allowed"."""
        error = EdgeError(Reject.METHOD_NOT_ALLOWED)
        self._telemetry.rejected(
            SUBSCRIBE_EVENTS, None, error, self._peer_ip(ctx.client_address), 0.0
        )
        raise connect_error(error)
        yield  # an async generator, as every server-streaming handler
