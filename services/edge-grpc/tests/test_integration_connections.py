"""Idle connections do not pile up (docs/threat-model.md).

A client that completes the HTTP/2 preface and then sends nothing is closed
after GATEWAY_AUTHENTICATED_GRPC_MAX_CONNECTION_IDLE, well before the keep-alive
pings (60 s) or Envoy's own default (an hour) would; a connection in use is not.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import grpc.aio
import pytest

from edge_grpc.testing import encode_request, execute
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

IDLE_SECONDS = 1.0
# The bound: the idle timeout plus a generous margin, far below the 60 s keep-alive.
MARGIN_SECONDS = 20.0
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


async def test_an_idle_connection_is_closed_after_the_idle_timeout(stack, gateway_factory):
    gateway = gateway_factory(GATEWAY_AUTHENTICATED_GRPC_MAX_CONNECTION_IDLE=f"{IDLE_SECONDS}s")
    host, port = gateway.target.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(PREFACE + EMPTY_SETTINGS)
        await writer.drain()
        started = time.monotonic()
        async with asyncio.timeout(IDLE_SECONDS + MARGIN_SECONDS):
            while await reader.read(65536):  # SETTINGS, its ACK, then a GOAWAY
                pass
        assert time.monotonic() - started >= IDLE_SECONDS * 0.9
    finally:
        writer.close()

    # A channel that keeps calling is not idle, and calls after a close reconnect.
    session = stack.new_session()
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        for _ in range(3):
            request = session.request("user.account.get", encode_request("user.account.get"))
            code, details, _ = await execute(stub, request)
            assert code == grpc.StatusCode.OK, details
            await asyncio.sleep(IDLE_SECONDS / 4)
