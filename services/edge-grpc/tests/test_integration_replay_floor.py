"""Replay protection survives a Redis that loses its data (docs/threat-model.md).

A request is accepted, Redis forgets everything (FLUSHALL: what a restart
without persistence or a failover to an empty replica does), and the same
bytes are sent again to the real process: refused as stale, because they
were signed before the gateway noticed the loss. A request signed after it
is served.
"""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from edge_grpc.testing import encode_request, execute
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

STALE = "request timestamp is outside the freshness window"


async def test_a_request_accepted_before_redis_lost_its_data_is_refused_after(stack):
    session = stack.new_session()
    request = session.request("user.account.get", encode_request("user.account.get"))
    async with grpc.aio.insecure_channel(stack.gateway.target) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        code, details, _ = await execute(stub, request)
        assert code == grpc.StatusCode.OK, details
        assert (await execute(stub, request))[:2] == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "request replay detected",
        )

        stack.redis().flushall()

        assert (await execute(stub, request))[:2] == (grpc.StatusCode.FAILED_PRECONDITION, STALE)
        fresh = session.request("user.account.get", encode_request("user.account.get"))
        code, details, _ = await execute(stub, fresh)
        assert code == grpc.StatusCode.OK, details
        assert (await execute(stub, fresh))[:2] == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "request replay detected",
        )
    log = stack.gateway.log()
    assert "replay epoch was missing" in log
