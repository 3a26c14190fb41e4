"""Backend client and transcoding adapter: every answer lands in exactly one outcome.

These run a scripted HTTP server on a real socket to produce answers a
well-behaved backend never sends (contract violations); the round trips
against the real mock backend process live in tests/contract/.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from edgecore.backend.client import (
    BackendApiError,
    BackendClient,
    BackendContractError,
    BackendUnavailableError,
)
from edgecore.backend.commands import BackendCommandClient, BackendRouter
from edgecore.backend.routes import BACKEND_ROUTES, MAX_ANSWER_BYTES
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
from edgecore.testing.ports import free_port

CODEC = default_codec()
RECORD = {
    "device_session_id": "ds-1",
    "user_id": "u-1",
    "client_public_key": "AAAA",
    "status": "active",
}


@dataclass(frozen=True)
class Sent:
    """What the client put on the wire, as the server saw it."""

    raw_path: str
    headers: dict[str, str]
    content: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)
    repeated: tuple[tuple[str, str], ...] = ()  # headers sent more than once


def json_answer(status: int, data: Any) -> Answer:
    return Answer(status, json.dumps(data).encode(), "application/json")


Handler = Callable[[Sent], Answer]
Start = Callable[[Handler], Awaitable[BackendClient]]


@pytest.fixture
async def backend() -> AsyncIterator[Start]:
    """Starts a scripted backend on a loopback port; returns a client pointed at it."""
    runners: list[web.AppRunner] = []
    clients: list[BackendClient] = []

    async def start(handler: Handler) -> BackendClient:
        async def serve(request: web.Request) -> web.Response:
            sent = Sent(request.raw_path, {k.lower(): v for k, v in request.headers.items()},
                        await request.read())  # fmt: skip
            answer = handler(sent)
            response = web.Response(
                status=answer.status,
                body=answer.body,
                content_type=answer.content_type,
                headers=answer.headers,
            )
            for name, value in answer.repeated:
                response.headers.add(name, value)
            return response

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", serve)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        client = BackendClient(base_url=f"http://127.0.0.1:{port}", timeout=timedelta(seconds=5))
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.aclose()
    for runner in runners:
        await runner.cleanup()


def _command(message_type: str, payload: bytes) -> AuthenticatedCommand:
    return AuthenticatedCommand(
        user_id="u-1",
        device_session_id="ds-1",
        message_type=message_type,
        payload=payload,
        request_id="req-1",
        trace_id="trace-1",
    )


async def test_session_lookup_found_and_unknown(backend: Start) -> None:
    def handler(request: Sent) -> Answer:
        if request.raw_path == "/api/v1/internal/sessions/ds-1":
            return json_answer(200, RECORD)
        return json_answer(404, {"error": {"code": "session_not_found", "message": "no"}})

    client = await backend(handler)
    record = await client.get_session("ds-1")
    assert record is not None and record.user_id == "u-1"
    assert await client.get_session("ds-2") is None


async def test_session_lookup_escapes_the_id(backend: Start) -> None:
    seen: list[str] = []

    def handler(request: Sent) -> Answer:
        seen.append(request.raw_path)
        return json_answer(404, {"error": {"code": "session_not_found", "message": ""}})

    assert await (await backend(handler)).get_session("../admin?x=1") is None
    assert seen == ["/api/v1/internal/sessions/..%2Fadmin%3Fx%3D1"]


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (Answer(503, b"down"), BackendUnavailableError),
        (
            json_answer(401, {"error": {"code": "unauthenticated", "message": "x"}}),
            BackendUnavailableError,
        ),
        (Answer(200, b"not json"), BackendContractError),
        (json_answer(200, [1]), BackendContractError),
        (json_answer(200, {**RECORD, "status": "weird"}), BackendContractError),
        (json_answer(200, {**RECORD, "device_session_id": "other"}), BackendContractError),
    ],
)
async def test_session_lookup_failures(
    response: Answer, error: type[Exception], backend: Start
) -> None:
    with pytest.raises(error):
        await (await backend(lambda _: response)).get_session("ds-1")


async def test_unreachable_backend_is_unavailable() -> None:
    client = BackendClient(base_url=f"http://127.0.0.1:{free_port()}", timeout=timedelta(seconds=1))
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


async def test_an_oversized_answer_breaks_the_contract(backend: Start) -> None:
    huge = json.dumps({**RECORD, "pad": "x" * MAX_ANSWER_BYTES}).encode()
    client = await backend(lambda _: Answer(200, huge, "application/json"))
    with pytest.raises(BackendContractError, match="too large"):
        await client.get_session("ds-1")


async def test_no_cookie_follows_one_request_into_the_next(backend: Start) -> None:
    cookies: list[str | None] = []

    def handler(request: Sent) -> Answer:
        cookies.append(request.headers.get("cookie"))
        return Answer(404, b"", "application/json", {"Set-Cookie": "sid=user-a; Path=/"})

    client = await backend(handler)
    for _ in range(2):
        with pytest.raises(BackendContractError):
            await client.get_session("ds-1")
    assert cookies == [None, None]


async def test_public_auth_error_is_projected(backend: Start) -> None:
    def handler(request: Sent) -> Answer:
        assert json.loads(request.content) == {"email": "a@b.c", "preferred_language": "de"}
        return json_answer(429, {"error": {"code": "too_many_attempts", "message": " slow down "}})

    with pytest.raises(BackendApiError) as err:
        await (await backend(handler)).send_email_code("a@b.c", "de")
    assert (err.value.status, err.value.code, err.value.message, err.value.retry_after) == (
        429,
        "too_many_attempts",
        "slow down",
        None,
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120),
        (" 7 ", 7),
        ("0", 1),  # "retry at once" still waits a second
        ("3600", 3600),
        ("3601", 3600),  # clamped to MAX_RETRY_AFTER_SECONDS (1 h)
        ("00042", 42),
        ("99999999999999999999999", 3600),
        (None, None),
        ("", None),
        ("-5", None),
        ("1.5", None),
        ("abc", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),  # HTTP-date: not used by the backend
    ],
)
async def test_backend_retry_after_rides_on_the_api_error(
    header: str | None, expected: int | None, backend: Start
) -> None:
    body = {"error": {"code": "too_many_attempts", "message": "slow down"}}
    headers = {} if header is None else {"Retry-After": header}

    def handler(_: Sent) -> Answer:
        return Answer(429, json.dumps(body).encode(), "application/json", headers)

    with pytest.raises(BackendApiError) as err:
        await (await backend(handler)).send_email_code("a@b.c", "en")
    assert (err.value.status, err.value.code, err.value.retry_after) == (
        429,
        "too_many_attempts",
        expected,
    )


async def test_repeated_retry_after_is_ignored(backend: Start) -> None:
    body = json.dumps({"error": {"code": "too_many_attempts", "message": "x"}}).encode()
    repeated = (("Retry-After", "5"), ("Retry-After", "50"))
    client = await backend(lambda _: Answer(429, body, "application/json", repeated=repeated))
    with pytest.raises(BackendApiError) as err:
        await client.send_email_code("a@b.c", "en")
    assert (err.value.status, err.value.retry_after) == (429, None)  # ambiguous: absent


async def test_command_round_trip_sends_context_headers(backend: Start) -> None:
    seen: dict[str, str] = {}

    def handler(request: Sent) -> Answer:
        seen.update(request.headers)
        seen["path"] = request.raw_path
        seen["body"] = request.content.decode()
        return json_answer(200, {"account": {"user_id": "u-1", "display_name": "Ada"}})

    route = BACKEND_ROUTES["user.account.get"]
    client = BackendCommandClient(route, await backend(handler), CODEC)
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


async def test_json_sent_to_the_backend_is_utf8_not_escaped(backend: Start) -> None:
    sent: list[bytes] = []

    def handler(request: Sent) -> Answer:
        sent.append(request.content)
        return json_answer(200, {"game": {"game_id": "g-1"}})

    route = BACKEND_ROUTES["lobby.game.create"]
    client = BackendCommandClient(route, await backend(handler), CODEC)
    name = "Élysée crème brûlée 東京 " * 1000
    payload = CODEC.encode(route.request_table, {"name": name, "visibility": "Private"})
    await client.execute(_command("lobby.game.create", payload))
    [body] = sent
    assert name.encode() in body
    assert b"\\u" not in body
    assert len(body) < len(payload) + 200  # the text costs what it costs in the payload


async def test_business_error_becomes_result_code_and_error_payload(backend: Start) -> None:
    def handler(request: Sent) -> Answer:
        return json_answer(404, {"error": {"code": "game_not_found", "message": "no such game"}})

    route = BACKEND_ROUTES["user.games.report"]
    client = BackendCommandClient(route, await backend(handler), CODEC)
    payload = CODEC.encode(route.request_table, {"game_id": "g-1", "turn": 1})
    result = await client.execute(_command("user.games.report", payload))
    assert result.result_code == "game_not_found"
    assert decode_error_response(result.payload) == ("game_not_found", "no such game")


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (Answer(502, b"bad gateway"), DownstreamUnavailableError),
        (
            json_answer(500, {"error": {"code": "boom", "message": "x"}}),
            DownstreamUnavailableError,
        ),
        (json_answer(200, {"account": {"nope": 1}}), DownstreamContractError),
        (Answer(200, b"<html>"), DownstreamContractError),
        (Answer(404, b"not found"), DownstreamContractError),
    ],
)
async def test_command_failures(response: Answer, error: type[Exception], backend: Start) -> None:
    route = BACKEND_ROUTES["user.account.get"]
    client = BackendCommandClient(route, await backend(lambda _: response), CODEC)
    with pytest.raises(error):
        await client.execute(_command("user.account.get", CODEC.encode(route.request_table, {})))


async def test_undecodable_payload_is_a_malformed_request(backend: Start) -> None:
    route = BACKEND_ROUTES["user.games.report"]
    client = BackendCommandClient(route, await backend(lambda _: json_answer(200, {})), CODEC)
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
