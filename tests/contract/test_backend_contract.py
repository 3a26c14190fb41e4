"""The gateway's backend client against the real mock backend process and a real Redis.

Every one of the 18 message types goes FlatBuffers -> JSON -> backend ->
JSON -> FlatBuffers through BackendCommandClient, exactly as edge-grpc runs
it; business errors come back as result_code + gateway.ErrorResponse; a
stopped backend is "unavailable" within the timeout, never a hang.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgecore.backend.client import BackendClient, BackendUnavailableError, build_backend_client
from edgecore.backend.commands import BackendRouter
from edgecore.backend.routes import BACKEND_ROUTES
from edgecore.catalog import MESSAGE_TYPES
from edgecore.config.sections import BackendSettings
from edgecore.downstream import AuthenticatedCommand, DownstreamUnavailableError
from edgecore.fbjson import default_codec
from edgecore.payloads import decode_error_response
from edgecore.testing.ports import free_port
from edgecore.testing.processes import ManagedProcess

pytestmark = pytest.mark.integration

CODEC = default_codec()
LOGIN_CODE = "246810"


@dataclass
class Backend:
    process: ManagedProcess
    url: str
    secret_path: Path

    def settings(self, timeout: str = "2s") -> BackendSettings:
        return BackendSettings.model_validate(
            {
                "GATEWAY_BACKEND_HTTP_URL": self.url,
                "GATEWAY_BACKEND_HTTP_TIMEOUT": timeout,
                "GATEWAY_BACKEND_GATEWAY_CLIENT_ID": "gateway-contract-test",
                "GATEWAY_BACKEND_HMAC_SECRET_PATH": str(self.secret_path),
            }
        )


@pytest.fixture
def backend(redis_url: str, tmp_path: Path) -> Iterator[Backend]:
    secret = tmp_path / "hmac.secret"
    secret.write_text(secrets.token_hex(32))
    port = free_port()
    process = ManagedProcess(
        "mock_backend",
        {
            "MOCK_BACKEND_ADDR": f"127.0.0.1:{port}",
            "MOCK_BACKEND_REDIS_URL": redis_url,
            "MOCK_BACKEND_HMAC_SECRET_PATH": str(secret),
            "MOCK_BACKEND_FIXED_LOGIN_CODE": LOGIN_CODE,
            "MOCK_BACKEND_DEV_ENDPOINTS": "1",
        },
        log_path=tmp_path / "mock-backend.log",
        port=port,
    ).start()
    yield Backend(process, f"http://127.0.0.1:{port}", secret)
    process.stop()


class Journey:
    def __init__(self, backend: Backend, client: BackendClient) -> None:
        self.backend = backend
        self.client = client
        self.router = BackendRouter(client, CODEC)
        self.dev = httpx.Client(base_url=backend.url, timeout=5)
        self.seen: set[str] = set()

    async def login(self, email: str) -> tuple[str, str]:
        challenge = await self.client.send_email_code(email, "en")
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        session_id = await self.client.confirm_email_code(
            challenge, LOGIN_CODE, key, "Europe/Berlin"
        )
        record = await self.client.get_session(session_id)
        assert record is not None and record.client_public_key == key
        return record.user_id, session_id

    async def call(
        self, who: tuple[str, str], message_type: str, body: dict[str, Any]
    ) -> tuple[str, dict[str, Any] | tuple[str, str]]:
        route = BACKEND_ROUTES[message_type]
        downstream = self.router.resolve(message_type)
        assert downstream is not None
        result = await downstream.execute(
            AuthenticatedCommand(
                user_id=who[0],
                device_session_id=who[1],
                message_type=message_type,
                payload=CODEC.encode(route.request_table, body),
                request_id=f"req-{time.monotonic_ns()}",
            )
        )
        if result.result_code != "ok":
            return result.result_code, decode_error_response(result.payload)
        self.seen.add(message_type)
        return "ok", CODEC.decode(route.response_table, result.payload)

    async def ok(
        self, who: tuple[str, str], message_type: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        code, answer = await self.call(who, message_type, body)
        assert code == "ok", answer
        assert isinstance(answer, dict)
        return answer


async def test_all_18_message_types_round_trip(backend: Backend) -> None:
    client = build_backend_client(backend.settings())
    assert client is not None
    j = Journey(backend, client)
    alice = await j.login("alice@galaxy.test")
    bob = await j.login("bob@galaxy.test")
    carol = await j.login("carol@galaxy.test")
    assert (await j.ok(alice, "user.account.get", {}))["account"]["user_id"] == alice[0]
    profile = await j.ok(alice, "user.profile.update", {"display_name": "Alice A."})
    assert profile["account"]["display_name"] == "Alice A."
    settings = await j.ok(
        alice,
        "user.settings.update",
        {"time_zone": "Europe/Paris", "email_notifications_enabled": False},
    )
    assert settings["settings"]["time_zone"] == "Europe/Paris"
    sessions = await j.ok(alice, "user.sessions.list", {})
    assert [s["device_session_id"] for s in sessions["sessions"]] == [alice[1]]
    assert sessions["sessions"][0]["is_current"] is True

    game = (
        await j.ok(
            alice,
            "lobby.game.create",
            {"name": "Andromeda", "visibility": "Public", "max_players": 2},
        )
    )["game"]
    assert game["status"] == "Draft" and game["current_turn"] == 0
    opened = (await j.ok(alice, "lobby.game.open-enrollment", {"game_id": game["game_id"]}))["game"]
    assert opened["status"] == "EnrollmentOpen"
    public = await j.ok(bob, "lobby.public.games.list", {})
    assert game["game_id"] in [g["game_id"] for g in public["games"]]
    applied = await j.ok(
        bob, "lobby.application.submit", {"game_id": game["game_id"], "race_name": "Zorgons"}
    )
    assert applied["application"]["status"] == "Approved"
    mine = await j.ok(bob, "lobby.my.applications.list", {})
    assert [a["application_id"] for a in mine["applications"]] == [
        applied["application"]["application_id"]
    ]
    await j.ok(
        alice, "lobby.application.submit", {"game_id": game["game_id"], "race_name": "Humans"}
    )
    games = await j.ok(alice, "lobby.my.games.list", {})
    running = next(g for g in games["games"] if g["game_id"] == game["game_id"])
    assert (running["status"], running["current_turn"]) == ("Running", 1)

    report = await j.ok(alice, "user.games.report", {"game_id": game["game_id"], "turn": 1})
    assert report["turn"] == 1 and report["planets"]
    assert {p["kind"] for p in report["planets"]} <= {
        "Local",
        "Other",
        "Uninhabited",
        "Unidentified",
    }
    command = await j.ok(
        alice,
        "user.games.command",
        {"game_id": game["game_id"], "turn": 1, "command": {"name": "ping"}},
    )
    assert (command["accepted"], command["output"]) == (True, ["pong"])
    order = await j.ok(
        alice,
        "user.games.order",
        {
            "game_id": game["game_id"],
            "turn": 1,
            "orders": [{"name": "produce", "args": ["1", "ships"]}],
        },
    )
    assert order["accepted_count"] == 1

    private = (await j.ok(alice, "lobby.game.create", {"name": "Secret", "visibility": "Private"}))[
        "game"
    ]

    def invite() -> dict[str, Any]:
        response = j.dev.post(
            "/api/v1/dev/invites",
            json={"game_id": private["game_id"], "inviter_user_id": alice[0],
                  "invitee_email": "carol@galaxy.test"},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        invite: dict[str, Any] = response.json()["invite"]
        return invite

    first = invite()
    listed = await j.ok(carol, "lobby.my.invites.list", {})
    assert [i["invite_id"] for i in listed["invites"]] == [first["invite_id"]]
    declined = await j.ok(
        carol, "lobby.invite.decline", {"invite_id": first["invite_id"], "code": first["code"]}
    )
    assert declined["invite"]["status"] == "Declined"
    await j.ok(alice, "lobby.game.open-enrollment", {"game_id": private["game_id"]})
    again = invite()
    redeemed = await j.ok(
        carol, "lobby.invite.redeem",
        {"invite_id": again["invite_id"], "code": again["code"], "race_name": "Carolians"},
    )  # fmt: skip
    assert redeemed["invite"]["status"] == "Redeemed"

    second = await j.login("alice@galaxy.test")
    revoked = await j.ok(alice, "user.sessions.revoke", {"device_session_id": second[1]})
    assert revoked["session"]["status"] == "Revoked"
    revoke_all = await j.ok(bob, "user.sessions.revoke_all", {"keep_current": True})
    assert revoke_all["revoked_count"] == 0
    assert j.seen == set(MESSAGE_TYPES)
    await client.aclose()


async def test_business_errors_are_projected(backend: Backend) -> None:
    client = build_backend_client(backend.settings())
    assert client is not None
    j = Journey(backend, client)
    alice = await j.login("dora@galaxy.test")
    code, error = await j.call(alice, "user.games.report", {"game_id": "no-such-game", "turn": 1})
    assert code == "not_found"
    assert isinstance(error, tuple) and error[0] == "not_found" and error[1]
    code, error = await j.call(alice, "lobby.game.open-enrollment", {"game_id": "no-such-game"})
    assert code == "not_found"
    code, error = await j.call(alice, "user.profile.update", {"display_name": ""})
    assert code == "invalid_argument" and "display_name" in error[1]  # type: ignore[index]
    await client.aclose()


async def test_bodies_past_the_backend_limit_get_its_signed_answer_every_time(
    backend: Backend,
) -> None:
    """Accented text travels as UTF-8 (700 KB stays 700 KB and gets the backend's own
    answer); a body past the backend's 1 MiB limit is announced with Expect:
    100-continue, so the 413 arrives before the upload instead of a reset mid-upload."""
    client = build_backend_client(backend.settings(timeout="5s"))
    assert client is not None
    j = Journey(backend, client)
    alice = await j.login("erin@galaxy.test")
    codes = set()
    for text, expected in (
        ("é" * 350_000, "invalid_argument"),
        ("é" * 600_000, "request_too_large"),
    ):
        for _ in range(10):
            code, _answer = await j.call(alice, "lobby.game.create", {"name": text})
            codes.add((len(text), code))
            assert code == expected
    assert codes == {(350_000, "invalid_argument"), (600_000, "request_too_large")}
    await client.aclose()


async def test_unsigned_or_wrongly_signed_calls_never_reach_handlers(
    backend: Backend, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.secret"
    wrong.write_text(secrets.token_hex(32))
    settings = backend.settings().model_copy(update={"hmac_secret_path": str(wrong)})
    client = build_backend_client(settings)
    assert client is not None
    with pytest.raises(BackendUnavailableError):
        await client.get_session("anything")
    await client.aclose()


async def test_stopped_backend_is_unavailable_within_the_timeout(backend: Backend) -> None:
    client = build_backend_client(backend.settings(timeout="1s"))
    assert client is not None
    j = Journey(backend, client)
    alice = await j.login("erin@galaxy.test")
    backend.process.stop()
    started = time.monotonic()
    with pytest.raises(DownstreamUnavailableError):
        await j.call(alice, "user.account.get", {})
    with pytest.raises(BackendUnavailableError):
        await client.get_session(alice[1])
    assert time.monotonic() - started < 3.0
    await client.aclose()


async def test_slow_backend_times_out(backend: Backend) -> None:
    client = build_backend_client(backend.settings(timeout="300ms"))
    assert client is not None
    j = Journey(backend, client)
    alice = await j.login("fay@galaxy.test")
    assert j.dev.post("/api/v1/dev/latency", json={"ms": 6000}).status_code == 200
    started = time.monotonic()
    with pytest.raises(DownstreamUnavailableError):
        await j.call(alice, "user.account.get", {})
    assert time.monotonic() - started < 5.0  # the 300 ms timeout, not the 6 s latency
    await client.aclose()
