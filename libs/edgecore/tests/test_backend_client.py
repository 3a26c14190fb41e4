"""Backend client and transcoding adapter: every answer lands in exactly one outcome.

These use httpx.MockTransport to produce answers a well-behaved backend never
sends (contract violations); the round trips against the real mock backend
process live in tests/contract/.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from edgecore.backend.client import (
    BackendApiError,
    BackendClient,
    BackendContractError,
    BackendUnavailableError,
)
from edgecore.backend.commands import BackendCommandClient, BackendRouter
from edgecore.backend.routes import BACKEND_ROUTES
from edgecore.catalog import MESSAGE_TYPES
from edgecore.downstream import (
    AuthenticatedCommand,
    DownstreamContractError,
    DownstreamResult,
    DownstreamUnavailableError,
)
from edgecore.errors import EdgeError, Reject
from edgecore.fbjson import default_codec
from edgecore.payloads import decode_error_response

CODEC = default_codec()
RECORD = {
    "device_session_id": "ds-1",
    "user_id": "u-1",
    "client_public_key": "AAAA",
    "status": "active",
}


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> BackendClient:
    return BackendClient(
        base_url="http://backend.test",
        timeout=timedelta(seconds=1),
        transport=httpx.MockTransport(handler),
    )


def _command(message_type: str, payload: bytes) -> AuthenticatedCommand:
    return AuthenticatedCommand(
        user_id="u-1",
        device_session_id="ds-1",
        message_type=message_type,
        payload=payload,
        request_id="req-1",
        trace_id="trace-1",
    )


async def test_session_lookup_found_and_unknown() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/internal/sessions/ds-1":
            return httpx.Response(200, json=RECORD)
        return httpx.Response(404, json={"error": {"code": "session_not_found", "message": "no"}})

    client = _client(handler)
    record = await client.get_session("ds-1")
    assert record is not None and record.user_id == "u-1"
    assert await client.get_session("ds-2") is None


async def test_session_lookup_escapes_the_id() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(404, json={"error": {"code": "session_not_found", "message": ""}})

    assert await _client(handler).get_session("../admin?x=1") is None
    assert seen == ["/api/v1/internal/sessions/..%2Fadmin%3Fx%3D1"]


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(503, text="down"), BackendUnavailableError),
        (
            httpx.Response(401, json={"error": {"code": "unauthenticated", "message": "x"}}),
            BackendUnavailableError,
        ),
        (httpx.Response(200, text="not json"), BackendContractError),
        (httpx.Response(200, json=[1]), BackendContractError),
        (httpx.Response(200, json={**RECORD, "status": "weird"}), BackendContractError),
        (httpx.Response(200, json={**RECORD, "device_session_id": "other"}), BackendContractError),
    ],
)
async def test_session_lookup_failures(response: httpx.Response, error: type[Exception]) -> None:
    with pytest.raises(error):
        await _client(lambda _: response).get_session("ds-1")


async def test_unreachable_backend_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = BackendClient(base_url=f"http://127.0.0.1:{port}", timeout=timedelta(seconds=1))
    with pytest.raises(BackendUnavailableError, match="unreachable"):
        await client.get_session("ds-1")
    await client.aclose()


async def test_silent_backend_times_out_within_the_bound() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = BackendClient(base_url=f"http://127.0.0.1:{port}", timeout=timedelta(milliseconds=200))
    try:
        async with asyncio.timeout(5):  # a hang would fail here, not block the suite
            with pytest.raises(BackendUnavailableError, match="in time"):
                await client.get_session("ds-1")
    finally:
        await client.aclose()
        server.close()


async def test_public_auth_error_is_projected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"email": "a@b.c", "preferred_language": "de"}
        return httpx.Response(
            429, json={"error": {"code": "too_many_attempts", "message": " slow down "}}
        )

    with pytest.raises(BackendApiError) as err:
        await _client(handler).send_email_code("a@b.c", "de")
    assert (err.value.status, err.value.code, err.value.message) == (
        429,
        "too_many_attempts",
        "slow down",
    )


async def test_command_round_trip_sends_context_headers() -> None:
    seen: dict[str, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(request.headers)
        seen["path"] = request.url.path
        seen["body"] = request.content.decode()
        return httpx.Response(200, json={"account": {"user_id": "u-1", "display_name": "Ada"}})

    route = BACKEND_ROUTES["user.account.get"]
    client = BackendCommandClient(route, _client(handler), CODEC)
    result = await client.execute(
        _command("user.account.get", CODEC.encode(route.request_table, {}))
    )
    assert result.result_code == "ok"
    assert CODEC.decode(route.response_table, result.payload)["account"]["display_name"] == "Ada"
    assert seen["path"] == "/api/v1/user/account/get"
    assert (seen["x-user-id"], seen["x-device-session-id"], seen["x-message-type"]) == (
        "u-1",
        "ds-1",
        "user.account.get",
    )
    assert (seen["x-request-id"], seen["x-trace-id"], seen["body"]) == ("req-1", "trace-1", "{}")


async def test_json_sent_to_the_backend_is_utf8_not_escaped() -> None:
    sent: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(200, json={"game": {"game_id": "g-1"}})

    route = BACKEND_ROUTES["lobby.game.create"]
    client = BackendCommandClient(route, _client(handler), CODEC)
    name = "Élysée crème brûlée 東京 " * 1000
    payload = CODEC.encode(route.request_table, {"name": name, "visibility": "Private"})
    await client.execute(_command("lobby.game.create", payload))
    [body] = sent
    assert name.encode() in body
    assert b"\\u" not in body
    assert len(body) < len(payload) + 200  # the text costs what it costs in the payload


async def test_business_error_becomes_result_code_and_error_payload() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            404, json={"error": {"code": "game_not_found", "message": "no such game"}}
        )

    route = BACKEND_ROUTES["user.games.report"]
    client = BackendCommandClient(route, _client(handler), CODEC)
    payload = CODEC.encode(route.request_table, {"game_id": "g-1", "turn": 1})
    result = await client.execute(_command("user.games.report", payload))
    assert result.result_code == "game_not_found"
    assert decode_error_response(result.payload) == ("game_not_found", "no such game")


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(502, text="bad gateway"), DownstreamUnavailableError),
        (
            httpx.Response(500, json={"error": {"code": "boom", "message": "x"}}),
            DownstreamUnavailableError,
        ),
        (httpx.Response(200, json={"account": {"nope": 1}}), DownstreamContractError),
        (httpx.Response(200, text="<html>"), DownstreamContractError),
        (httpx.Response(404, text="not found"), DownstreamContractError),
    ],
)
async def test_command_failures(response: httpx.Response, error: type[Exception]) -> None:
    route = BACKEND_ROUTES["user.account.get"]
    client = BackendCommandClient(route, _client(lambda _: response), CODEC)
    with pytest.raises(error):
        await client.execute(_command("user.account.get", CODEC.encode(route.request_table, {})))


async def test_undecodable_payload_is_a_malformed_request() -> None:
    route = BACKEND_ROUTES["user.games.report"]
    client = BackendCommandClient(route, _client(lambda _: httpx.Response(200, json={})), CODEC)
    with pytest.raises(EdgeError) as err:
        await client.execute(_command("user.games.report", b"\x01\x02"))
    assert err.value.reject is Reject.MALFORMED_REQUEST
    assert err.value.message == "payload_bytes is not a valid user.GamesReportRequest"


async def test_router_without_backend_fails_closed_as_unavailable() -> None:
    router = BackendRouter(None, CODEC)
    assert router.resolve("lobby.game.create") is not None
    assert router.resolve("lobby.game.delete") is None
    assert all(router.resolve(mt) is not None for mt in MESSAGE_TYPES)
    client = router.resolve("user.account.get")
    assert client is not None
    with pytest.raises(DownstreamUnavailableError):
        await client.execute(
            _command("user.account.get", CODEC.encode("user.AccountGetRequest", {}))
        )


def test_blank_result_code_is_a_contract_violation() -> None:
    with pytest.raises(DownstreamContractError):
        DownstreamResult("  ", b"")
