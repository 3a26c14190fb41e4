"""The ``galaxy.gateway.v1.EdgeGateway`` endpoints, for a service that implements its methods.

Each service serves both paths of the contract: its own method, and the other
one answering the catalog's UNIMPLEMENTED "method is not allowed" (commands
and events are separate deployments). The message classes are the generated
``_pb2`` ones (``proto/``); connectrpc reads them with ``codecs.PROTO_CODECS``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import Endpoint

from galaxy.gateway.v1 import edge_gateway_pb2 as pb

__all__ = [
    "EXECUTE_COMMAND",
    "EXECUTE_COMMAND_PATH",
    "GATEWAY_SERVICE",
    "SUBSCRIBE_EVENTS",
    "SUBSCRIBE_EVENTS_PATH",
    "gateway_endpoints",
]

GATEWAY_SERVICE: Final = "galaxy.gateway.v1.EdgeGateway"
EXECUTE_COMMAND: Final = "ExecuteCommand"
SUBSCRIBE_EVENTS: Final = "SubscribeEvents"
EXECUTE_COMMAND_PATH: Final = f"/{GATEWAY_SERVICE}/{EXECUTE_COMMAND}"
SUBSCRIBE_EVENTS_PATH: Final = f"/{GATEWAY_SERVICE}/{SUBSCRIBE_EVENTS}"

ExecuteCommand = Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]]
SubscribeEvents = Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]]


def gateway_endpoints(
    execute_command: ExecuteCommand, subscribe_events: SubscribeEvents
) -> dict[str, Endpoint[Any, Any]]:
    return {
        EXECUTE_COMMAND_PATH: Endpoint.unary(
            method=MethodInfo(
                name=EXECUTE_COMMAND,
                service_name=GATEWAY_SERVICE,
                input=pb.ExecuteCommandRequest,
                output=pb.ExecuteCommandResponse,
                idempotency_level=IdempotencyLevel.UNKNOWN,
                stream_type=StreamType.UNARY,
            ),
            function=execute_command,
        ),
        SUBSCRIBE_EVENTS_PATH: Endpoint.server_stream(
            method=MethodInfo(
                name=SUBSCRIBE_EVENTS,
                service_name=GATEWAY_SERVICE,
                input=pb.SubscribeEventsRequest,
                output=pb.GatewayEvent,
                idempotency_level=IdempotencyLevel.UNKNOWN,
                stream_type=StreamType.SERVER_STREAM,
            ),
            function=subscribe_events,
        ),
    }
