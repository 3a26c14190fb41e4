"""PassthroughClient against a real route target process that verifies the HMAC."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from edge_grpc.passthrough import PassthroughClient, new_passthrough_http_client
from edge_grpc.testing import RouteTargetProcess, write_hmac_secret
from edgecore.downstream import (
    AuthenticatedCommand,
    DownstreamContractError,
    DownstreamUnavailableError,
)
from edgecore.errors import EdgeError
from edgecore.routes import PassthroughRoute

pytestmark = pytest.mark.integration

PAYLOAD = bytes(range(256)) * 4


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouteTargetProcess]:
    directory = tmp_path_factory.mktemp("route-target")
    secret_path = directory / "secret"
    write_hmac_secret(secret_path)
    process = RouteTargetProcess.start(
        hmac_secret_path=secret_path, log_path=directory / "target.log", slow_ms=5000
    )
    yield process
    process.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = new_passthrough_http_client(client_id="tests")
    yield client
    await client.aclose()


def route_to(
    target: RouteTargetProcess, path: str, *, secret: bytes | None = None, **kw: object
) -> PassthroughRoute:
    return PassthroughRoute(
        message_type="arena.move",
        url=f"http://127.0.0.1:{target.port}{path}",
        timeout=kw.pop("timeout", timedelta(seconds=5)),  # type: ignore[arg-type]
        hmac_secret=secret or target.hmac_secret,
        source="games/move",
        **kw,  # type: ignore[arg-type]
    )


def command(request_id: str, trace_id: str | None = "trace-1") -> AuthenticatedCommand:
    return AuthenticatedCommand(
        user_id="user-7", device_session_id="ds-7", message_type="arena.move",
        payload=PAYLOAD, request_id=request_id, trace_id=trace_id,
    )  # fmt: skip


async def test_payload_and_context_arrive_signed_and_the_answer_returns_unchanged(
    target: RouteTargetProcess, http: httpx.AsyncClient
) -> None:
    client = PassthroughClient(route_to(target, "/routes/echo"), http, key_id="edge-grpc-1")
    result = await client.execute(command("req-echo"))
    assert (result.result_code, result.payload) == ("ok", PAYLOAD)
    [seen] = [r for r in target.received() if r["x-request-id"] == "req-echo"]
    assert seen == {
        "path": "/routes/echo",
        "key_id": "edge-grpc-1",
        "x-user-id": "user-7",
        "x-device-session-id": "ds-7",
        "x-message-type": "arena.move",
        "x-request-id": "req-echo",
        "x-trace-id": "trace-1",
        "payload_len": len(PAYLOAD),
        "payload_sha256": hashlib.sha256(PAYLOAD).hexdigest(),
    }


async def test_a_wrong_secret_is_refused_by_the_target(
    target: RouteTargetProcess, http: httpx.AsyncClient
) -> None:
    route = route_to(target, "/routes/echo", secret=b"w" * 40)
    with pytest.raises(DownstreamContractError, match="answered 401"):
        await PassthroughClient(route, http, key_id="k").execute(command("req-forged"))
    assert not [r for r in target.received() if r["x-request-id"] == "req-forged"]


@pytest.mark.parametrize(
    ("path", "error", "match"),
    [
        ("/routes/broken", DownstreamUnavailableError, "answered 503"),
        ("/routes/nocode", DownstreamContractError, "X-Galaxy-Result-Code"),
        ("/nowhere", DownstreamContractError, "answered 404"),
    ],
)
async def test_target_answers_outside_the_contract(
    target: RouteTargetProcess, http: httpx.AsyncClient, path: str, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        await PassthroughClient(route_to(target, path), http, key_id="k").execute(command("r"))


async def test_the_route_timeout_bounds_a_slow_target(
    target: RouteTargetProcess, http: httpx.AsyncClient
) -> None:
    route = route_to(target, "/routes/slow", timeout=timedelta(milliseconds=300))
    with pytest.raises(DownstreamUnavailableError, match="in time"):
        await PassthroughClient(route, http, key_id="k").execute(command("req-slow"))


async def test_a_target_that_is_down_is_unavailable(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    route = PassthroughRoute("arena.move", f"http://127.0.0.1:{port}/routes/echo",
                             timedelta(seconds=2), b"s" * 32)  # fmt: skip
    with pytest.raises(DownstreamUnavailableError, match="unreachable"):
        await PassthroughClient(route, http, key_id="k").execute(command("r"))


async def test_max_payload_bytes_refuses_before_any_call(
    target: RouteTargetProcess, http: httpx.AsyncClient
) -> None:
    route = route_to(target, "/routes/echo", max_payload_bytes=len(PAYLOAD) - 1)
    with pytest.raises(EdgeError) as refused:
        await PassthroughClient(route, http, key_id="k").execute(command("req-big"))
    assert (refused.value.grpc_code.name, refused.value.message) == (
        "RESOURCE_EXHAUSTED", "request is too large",
    )  # fmt: skip
    assert not [r for r in target.received() if r["x-request-id"] == "req-big"]
