"""Random device_session_ids cannot become backend load (docs/threat-model.md).

One peer sends requests with well-formed random device_session_ids, zero
hashes and zero signatures: only its budget of session-cache misses reaches
the backend (counted in the real mock backend's access log); the rest fail
as UNAUTHENTICATED "session lookup rate limit exceeded" without a lookup. A
real session keeps working from the same peer.
"""

from __future__ import annotations

import uuid

import grpc
import grpc.aio
import pytest

from edge_grpc.testing import encode_request, execute, now_ms
from galaxy.gateway.v1 import edge_gateway_pb2 as pb
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

BUDGET = 5
LOOKUP_LIMIT = "GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_SESSION_LOOKUP_RATE_LIMIT_"


async def test_unknown_sessions_spend_the_peers_lookup_budget(stack, gateway_factory):
    gateway = gateway_factory(
        **{LOOKUP_LIMIT + "BURST": str(BUDGET), LOOKUP_LIMIT + "REQUESTS": "1",
           LOOKUP_LIMIT + "WINDOW": "1h"}
    )  # fmt: skip
    prefix = f"flood-{uuid.uuid4().hex[:12]}-"
    session = stack.new_session()
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        # The real session first. The session-events stream has usually cached it
        # already; if not, its miss is one of the budget's lookups.
        code, details, _ = await execute(
            stub, session.request("user.account.get", encode_request("user.account.get"))
        )
        assert code == grpc.StatusCode.OK, details
        answers = []
        for n in range(20):
            forged = pb.ExecuteCommandRequest(
                protocol_version="v1",
                device_session_id=f"{prefix}{n}",
                message_type="user.account.get",
                timestamp_ms=now_ms(),
                request_id=str(uuid.uuid4()),
                payload_bytes=b"",
                payload_hash=bytes(32),
                signature=bytes(64),
            )
            answers.append((await execute(stub, forged))[:2])
        # Cached now, the real session is not touched by the exhausted budget.
        code, details, _ = await execute(
            stub, session.request("user.account.get", encode_request("user.account.get"))
        )
        assert code == grpc.StatusCode.OK, details

    unknown = (grpc.StatusCode.UNAUTHENTICATED, "unknown device session")
    limited = (grpc.StatusCode.UNAUTHENTICATED, "session lookup rate limit exceeded")
    looked_up = answers.count(unknown)
    assert looked_up in (BUDGET - 1, BUDGET)
    assert answers == [unknown] * looked_up + [limited] * (20 - looked_up)
    # Over budget the backend was not asked: exactly one lookup per "unknown" answer.
    assert stack.backend.log().count(f"/api/v1/internal/sessions/{prefix}") == looked_up
