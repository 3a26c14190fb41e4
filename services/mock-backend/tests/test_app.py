"""HTTP layer tests, in process: the real app (HMAC verifier included) over httpx's
ASGI transport, with an in-memory nonce store and a publisher that records."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from edgecore.backend.routes import route_path
from edgecore.fbjson import default_codec
from edgecore.internal_auth import HmacRequestSigner, MemoryNonceStore
from edgecore.sessions import SessionRecord
from mock_backend.app import AppState, build_app
from mock_backend.publish import PublishError, encode_events
from mock_backend.store import Outbox, Store

SECRET = b"mock-backend-test-secret-0123456789abcdef"
KEY = base64.b64encode(b"\x01" * 32).decode()


@dataclass
class RecordingPublisher:
    calls: list[tuple[Outbox, str | None]] = field(default_factory=list)
    fail: bool = False

    async def publish(self, outbox: Outbox, *, trace_id: str | None = None) -> None:
        encode_events(outbox, default_codec(), trace_id=trace_id)  # payloads must build
        if self.fail:
            raise PublishError("redis publish failed: ConnectionError")
        self.calls.append((outbox, trace_id))


@dataclass
class Env:
    state: AppState
    publisher: RecordingPublisher
    signed: httpx.AsyncClient
    plain: httpx.AsyncClient

    async def login(self, email: str) -> tuple[str, str]:
        sent = await self.plain.post(
            "/api/v1/public/auth/send-email-code", json={"email": email, "preferred_language": "en"}
        )
        assert sent.status_code == 200, sent.text
        code = (await self.plain.get("/api/v1/dev/login-code", params={"email": email})).json()
        assert code["challenge_id"] == sent.json()["challenge_id"]
        done = await self.plain.post(
            "/api/v1/public/auth/confirm-email-code",
            json={
                "challenge_id": code["challenge_id"],
                "code": code["code"],
                "client_public_key": KEY,
                "time_zone": "UTC",
            },
        )
        assert done.status_code == 200, done.text
        session_id = done.json()["device_session_id"]
        lookup = await self.signed.get(f"/api/v1/internal/sessions/{session_id}")
        return lookup.json()["user_id"], session_id

    async def user(
        self, message_type: str, user_id: str, body: Any = None, **headers: str
    ) -> httpx.Response:
        return await self.signed.post(
            route_path(message_type),
            json={} if body is None else body,
            headers={"X-User-Id": user_id, "X-Message-Type": message_type, **headers},
        )


async def _env(*, dev: bool) -> AsyncIterator[Env]:
    publisher = RecordingPublisher()
    state = AppState(store=Store(), publisher=publisher, codec=default_codec(), dev_endpoints=dev)
    app = build_app(state, hmac_secret=SECRET, nonce_store=MemoryNonceStore())
    transport = httpx.ASGITransport(app=app)
    signer = HmacRequestSigner(secret=SECRET, key_id="gateway-test")
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://mock", auth=signer) as signed,
        httpx.AsyncClient(transport=transport, base_url="http://mock") as plain,
    ):
        yield Env(state, publisher, signed, plain)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async for e in _env(dev=True):
        yield e


@pytest.fixture
async def env_no_dev() -> AsyncIterator[Env]:
    async for e in _env(dev=False):
        yield e


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return response.status_code, body["error"]["code"], body["error"]["message"]


async def test_public_auth_flow_and_signed_session_lookup(env):
    user_id, session_id = await env.login("alice@example.com")
    [(outbox, _)] = env.publisher.calls
    [snapshot] = outbox.sessions
    assert snapshot.device_session_id == session_id
    lookup = await env.signed.get(f"/api/v1/internal/sessions/{session_id}")
    assert lookup.status_code == 200
    record = SessionRecord.from_json_dict(lookup.json())
    assert record == snapshot
    assert record.user_id == user_id
    assert record.client_public_key == KEY
    missing = await env.signed.get("/api/v1/internal/sessions/ds_missing")
    assert error(missing)[:2] == (404, "session_not_found")


async def test_unsigned_internal_and_user_calls_are_rejected(env):
    user_id, session_id = await env.login("alice@example.com")
    lookup = await env.plain.get(f"/api/v1/internal/sessions/{session_id}")
    assert error(lookup)[:2] == (401, "unauthenticated")
    call = await env.plain.post(
        route_path("user.account.get"), json={}, headers={"X-User-Id": user_id}
    )
    assert error(call)[:2] == (401, "unauthenticated")
    forged = await env.plain.post(
        route_path("user.account.get"),
        json={},
        headers={
            "X-User-Id": user_id,
            "X-Request-Id": "r1",
            "X-Galaxy-Timestamp": str(int(time.time() * 1000)),
            "X-Galaxy-Nonce": "A" * 22,
            "X-Galaxy-Key-Id": "gateway-test",
            "X-Galaxy-Signature": "v1=" + "0" * 64,
        },
    )
    assert error(forged)[:2] == (401, "invalid_signature")


async def test_user_route(env):
    user_id, session_id = await env.login("alice@example.com")
    response = await env.user(
        "user.account.get", user_id, {}, **{"X-Device-Session-Id": session_id}
    )
    assert response.status_code == 200
    assert response.json()["account"]["user_id"] == user_id
    sessions = await env.user(
        "user.sessions.list", user_id, {"page_size": 0}, **{"X-Device-Session-Id": session_id}
    )
    assert sessions.json()["sessions"][0]["is_current"] is True


async def test_user_route_headers(env):
    user_id, _ = await env.login("alice@example.com")
    no_user = await env.signed.post(route_path("user.account.get"), json={})
    assert error(no_user)[:2] == (401, "unauthenticated")
    wrong_type = await env.user("user.account.get", user_id, {}, **{"X-Message-Type": "user.x"})
    assert error(wrong_type)[:2] == (400, "invalid_argument")
    ghost = await env.user("user.account.get", "usr_ghost")
    assert error(ghost)[:2] == (404, "not_found")


async def test_empty_body_is_an_empty_table(env):
    user_id, _ = await env.login("alice@example.com")
    response = await env.signed.post(
        route_path("user.account.get"),
        content=b"",
        headers={"X-User-Id": user_id, "Content-Type": "application/json"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("message_type", "body", "message"),
    [
        ("user.sessions.list", b"{not json", "body: is not valid JSON"),
        ("user.sessions.list", b"[1, 2]", "body: must be a JSON object"),
        ("user.sessions.list", b'{"page_size": NaN}', "body: is not valid JSON"),
        ("user.sessions.list", b'{"page_size": "ten"}', "page_size: expected integer"),
        ("user.sessions.list", b'{"page_size": 1.5}', "page_size: expected integer"),
        (
            "user.sessions.list",
            b'{"page_size": 4294967296}',
            "page_size: value 4294967296 out of range",
        ),
        ("user.sessions.list", b'{"bogus": 1}', "body: unknown field 'bogus'"),
        ("user.sessions.revoke_all", b'{"keep_current": 1}', "keep_current: expected boolean"),
        ("lobby.game.create", b'{"name": "g", "visibility": "Secret"}', "visibility: unknown"),
        (
            "lobby.game.create",
            b'{"name": "g", "settings": {"options": [{"name": 5}]}}',
            "settings.options[0].name: expected string",
        ),
        ("user.games.order", b'{"orders": {"name": "x"}}', "orders: expected array"),
        ("lobby.game.create", b'{"name": ""}', "name: "),
    ],
)
async def test_bad_bodies_are_400_invalid_argument(env, message_type, body, message):
    user_id, _ = await env.login("alice@example.com")
    response = await env.signed.post(
        route_path(message_type),
        content=body,
        headers={"X-User-Id": user_id, "Content-Type": "application/json"},
    )
    status, code, text = error(response)
    assert (status, code) == (400, "invalid_argument")
    assert text.startswith(message)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("send-email-code", {"email": 5}, "email: must be a string"),
        ("send-email-code", {"email": "a@example.com", "extra": 1}, "extra: unknown field"),
        ("send-email-code", [], "body: must be a JSON object"),
        ("send-email-code", {}, "email: is required"),
        ("confirm-email-code", {"challenge_id": "x"}, "code: is required"),
    ],
)
async def test_public_validation(env, path, body, message):
    response = await env.plain.post(f"/api/v1/public/auth/{path}", json=body)
    status, code, text = error(response)
    assert (status, code, text) == (400, "invalid_argument", message)


async def test_public_business_errors(env):
    response = await env.plain.post("/api/v1/public/auth/send-email-code", json={"email": "nope"})
    assert error(response)[:2] == (400, "invalid_email")
    response = await env.plain.post(
        "/api/v1/public/auth/confirm-email-code",
        json={"challenge_id": "ch_x", "code": "1", "client_public_key": KEY, "time_zone": "UTC"},
    )
    assert error(response)[:2] == (404, "challenge_not_found")


async def test_framework_errors_keep_the_error_shape(env):
    assert error(await env.plain.get("/nope"))[:2] == (404, "not_found")
    wrong_method = await env.plain.get("/api/v1/public/auth/send-email-code")
    assert error(wrong_method)[:2] == (405, "method_not_allowed")
    huge = await env.plain.post(
        "/api/v1/public/auth/send-email-code",
        content=b'{"email": "' + b"a" * (1024 * 1024 + 10) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert error(huge)[:2] == (413, "request_too_large")


async def test_private_application_notifies_owner_with_trace_id(env):
    owner, _ = await env.login("owner@example.com")
    player, _ = await env.login("player@example.com")
    created = await env.user("lobby.game.create", owner, {"name": "G", "visibility": "Private"})
    game_id = created.json()["game"]["game_id"]
    await env.user("lobby.game.open-enrollment", owner, {"game_id": game_id})
    env.publisher.calls.clear()
    applied = await env.user(
        "lobby.application.submit",
        player,
        {"game_id": game_id, "race_name": "Zorgons"},
        **{"X-Trace-Id": "trace-123"},
    )
    assert applied.status_code == 200
    assert applied.json()["application"]["status"] == "Pending"
    [(outbox, trace_id)] = env.publisher.calls
    assert trace_id == "trace-123"
    [note] = outbox.notifications
    assert (note.kind, note.user_id) == ("lobby.application.submitted", owner)


async def test_publish_failure_is_503_without_rollback(env):
    owner, _ = await env.login("owner@example.com")
    player, _ = await env.login("player@example.com")
    created = await env.user("lobby.game.create", owner, {"name": "G"})
    game_id = created.json()["game"]["game_id"]
    await env.user("lobby.game.open-enrollment", owner, {"game_id": game_id})
    env.publisher.fail = True
    applied = await env.user(
        "lobby.application.submit", player, {"game_id": game_id, "race_name": "Z" * 3}
    )
    assert error(applied)[:2] == (503, "service_unavailable")
    # reads publish nothing, so they still work; the change stayed
    games = await env.user("lobby.my.games.list", player)
    assert games.status_code == 200
    assert games.json()["games"][0]["my_race_name"] == "ZZZ"


async def test_dev_routes(env):
    owner, _ = await env.login("owner@example.com")
    guest, _ = await env.login("guest@example.com")
    created = await env.user("lobby.game.create", owner, {"name": "G", "max_players": 1})
    game_id = created.json()["game"]["game_id"]
    await env.user("lobby.game.open-enrollment", owner, {"game_id": game_id})

    env.publisher.calls.clear()
    invited = await env.plain.post(
        "/api/v1/dev/invites",
        json={"game_id": game_id, "inviter_user_id": owner, "invitee_email": "guest@example.com"},
    )
    assert invited.status_code == 200
    [(outbox, _)] = env.publisher.calls
    assert [(n.kind, n.user_id) for n in outbox.notifications] == [("lobby.invite.received", guest)]
    invite_id = invited.json()["invite"]["invite_id"]
    redeemed = await env.user(
        "lobby.invite.redeem", guest, {"invite_id": invite_id, "race_name": "Guests"}
    )
    assert redeemed.json()["game"]["status"] == "Running"

    advanced = await env.plain.post(f"/api/v1/dev/games/{game_id}/advance-turn")
    assert advanced.status_code == 200
    assert advanced.json()["game"]["current_turn"] == 2
    missing = await env.plain.post("/api/v1/dev/games/game_nope/advance-turn")
    assert error(missing)[:2] == (404, "not_found")
    no_code = await env.plain.get("/api/v1/dev/login-code", params={"email": "x@example.com"})
    assert error(no_code)[:2] == (404, "not_found")
    no_email = await env.plain.get("/api/v1/dev/login-code")
    assert error(no_email)[:2] == (400, "invalid_argument")


async def test_dev_application_decisions(env):
    owner, _ = await env.login("owner@example.com")
    player, _ = await env.login("player@example.com")
    created = await env.user("lobby.game.create", owner, {"name": "G", "visibility": "Private"})
    game_id = created.json()["game"]["game_id"]
    await env.user("lobby.game.open-enrollment", owner, {"game_id": game_id})
    applied = await env.user(
        "lobby.application.submit", player, {"game_id": game_id, "race_name": "Zorgons"}
    )
    application_id = applied.json()["application"]["application_id"]
    rejected = await env.plain.post(
        f"/api/v1/dev/applications/{application_id}/reject", json={"reason": "sorry"}
    )
    assert rejected.json()["application"]["status"] == "Rejected"
    again = await env.plain.post(f"/api/v1/dev/applications/{application_id}/approve")
    assert error(again)[:2] == (409, "invalid_state")


async def test_dev_latency_delays_backend_routes(env):
    bad = await env.plain.post("/api/v1/dev/latency", json={"ms": -1})
    assert error(bad)[:2] == (400, "invalid_argument")
    ok = await env.plain.post("/api/v1/dev/latency", json={"ms": 2000})
    assert ok.json() == {"ms": 2000}
    started = time.monotonic()
    response = await env.plain.post("/api/v1/public/auth/send-email-code", json={"email": "a@b.co"})
    assert response.status_code == 200
    assert time.monotonic() - started >= 2.0
    started = time.monotonic()
    assert (await env.plain.get("/healthz")).status_code == 200
    assert time.monotonic() - started < 1.5  # not delayed by the 2 s latency
    await env.plain.post("/api/v1/dev/latency", json={"ms": 0})


async def test_dev_routes_are_off_by_default(env_no_dev):
    response = await env_no_dev.plain.get("/api/v1/dev/login-code", params={"email": "a@b.co"})
    assert error(response)[:2] == (404, "not_found")
    response = await env_no_dev.plain.post("/api/v1/dev/latency", json={"ms": 1})
    assert error(response)[:2] == (404, "not_found")
    assert (await env_no_dev.plain.get("/healthz")).json() == {"status": "ok"}
