"""The real process (`python -m mock_backend`) against a real Redis, called with httpx."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from edgecore.backend.routes import route_path
from edgecore.fbjson import default_codec
from edgecore.internal_auth import HmacRequestSigner
from edgecore.sessions import SessionRecord, SessionStatus
from edgecore.streams import ClientEvent, SessionSnapshot, decode_client_event, decode_session_event
from edgecore.testing.ports import free_port

pytestmark = pytest.mark.integration

SECRET = b"integration-test-hmac-secret-0123456789abcdef"
LOGIN_CODE = "424242"
SESSION_STREAM = "test:session_events"
EVENTS_PREFIX = "test:events:"


@dataclass
class Backend:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    redis: redis.Redis

    def signed(self) -> httpx.Client:
        signer = HmacRequestSigner(secret=SECRET, key_id="gateway-it")
        return httpx.Client(base_url=self.base_url, auth=signer, timeout=10)

    def plain(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10)

    def login(self, email: str, key_seed: int = 1) -> tuple[str, str]:
        key = base64.b64encode(bytes([key_seed]) * 32).decode()
        with self.plain() as client:
            sent = client.post(
                "/api/v1/public/auth/send-email-code",
                json={"email": email, "preferred_language": "en"},
            )
            assert sent.status_code == 200, sent.text
            done = client.post(
                "/api/v1/public/auth/confirm-email-code",
                json={
                    "challenge_id": sent.json()["challenge_id"],
                    "code": LOGIN_CODE,
                    "client_public_key": key,
                    "time_zone": "Europe/Berlin",
                },
            )
            assert done.status_code == 200, done.text
        session_id = done.json()["device_session_id"]
        with self.signed() as client:
            lookup = client.get(f"/api/v1/internal/sessions/{session_id}")
        assert lookup.status_code == 200, lookup.text
        return lookup.json()["user_id"], session_id

    def user(self, message_type: str, user_id: str, body: dict | None = None) -> httpx.Response:
        with self.signed() as client:
            return client.post(
                route_path(message_type),
                json=body or {},
                headers={"X-User-Id": user_id, "X-Message-Type": message_type},
            )

    def session_events(self) -> list[SessionSnapshot]:
        entries = self.redis.xrange(SESSION_STREAM)
        events = [decode_session_event(eid.decode(), fields) for eid, fields in entries]
        assert all(isinstance(e, SessionSnapshot) for e in events), events
        return events  # type: ignore[return-value]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def backend(redis_url: str, tmp_path: Path) -> Iterator[Backend]:
    secret_path = tmp_path / "hmac-secret"
    secret_path.write_bytes(SECRET + b"\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCK_BACKEND_")}
    env.update(
        MOCK_BACKEND_ADDR=f"127.0.0.1:{port}",
        MOCK_BACKEND_REDIS_URL=redis_url,
        MOCK_BACKEND_HMAC_SECRET_PATH=str(secret_path),
        MOCK_BACKEND_SESSION_EVENTS_STREAM=SESSION_STREAM,
        MOCK_BACKEND_EVENTS_KEY_PREFIX=EVENTS_PREFIX,
        MOCK_BACKEND_FIXED_LOGIN_CODE=LOGIN_CODE,
        MOCK_BACKEND_DEV_ENDPOINTS="1",
    )
    log_path = tmp_path / "mock-backend.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mock_backend"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"mock backend exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"mock backend did not come up:\n{log_path.read_text()}")
        time.sleep(0.1)
    client = redis.Redis.from_url(redis_url)
    try:
        yield Backend(base_url, process, log_path, client)
    finally:
        client.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail("mock backend ignored SIGTERM")
    assert process.returncode == 0, log_path.read_text()
    assert "mock backend stopped" in log_path.read_text()


def test_public_auth_flow_and_signed_session_lookup(backend: Backend):
    user_id, session_id = backend.login("alice@example.com")
    with backend.signed() as client:
        lookup = client.get(f"/api/v1/internal/sessions/{session_id}")
        missing = client.get("/api/v1/internal/sessions/ds_unknown")
    record = SessionRecord.from_json_dict(lookup.json())
    assert record.user_id == user_id
    assert record.status is SessionStatus.ACTIVE
    assert record.client_public_key == base64.b64encode(b"\x01" * 32).decode()
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "session_not_found"
    [snapshot] = backend.session_events()
    assert snapshot.record == record

    with backend.plain() as client:  # a wrong code is a 400 business error
        sent = client.post("/api/v1/public/auth/send-email-code", json={"email": "b@example.com"})
        wrong = client.post(
            "/api/v1/public/auth/confirm-email-code",
            json={
                "challenge_id": sent.json()["challenge_id"],
                "code": "000000",
                "client_public_key": base64.b64encode(b"\x02" * 32).decode(),
                "time_zone": "UTC",
            },
        )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "invalid_code"

    # Granian's own lines ("[INFO] ...") carry task ids, which could hold any digits.
    log = "\n".join(line for line in backend.log().splitlines() if not line.startswith("["))
    for secret in (
        "alice@example.com",
        LOGIN_CODE,
        sent.json()["challenge_id"],
        record.client_public_key,
    ):
        assert secret not in log


def test_signed_user_route(backend: Backend):
    user_id, _ = backend.login("alice@example.com")
    response = backend.user("user.account.get", user_id)
    assert response.status_code == 200
    body = response.json()
    assert body["account"]["user_id"] == user_id
    assert body["account"]["display_name"] == "alice"
    assert body["settings"]["time_zone"] == "Europe/Berlin"
    bad = backend.user("user.sessions.list", user_id, {"page_size": "many"})
    assert bad.status_code == 400
    assert bad.json()["error"] == {
        "code": "invalid_argument",
        "message": "page_size: expected integer",
    }


def test_unsigned_user_call_is_rejected(backend: Backend):
    user_id, session_id = backend.login("alice@example.com")
    with backend.plain() as client:
        response = client.post(
            route_path("user.account.get"), json={}, headers={"X-User-Id": user_id}
        )
        lookup = client.get(f"/api/v1/internal/sessions/{session_id}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert lookup.status_code == 401


def test_replayed_signed_request_is_rejected(backend: Backend):
    user_id, _ = backend.login("alice@example.com")
    signer = HmacRequestSigner(secret=SECRET, key_id="gateway-it", nonce_factory=lambda: "N" * 22)
    with httpx.Client(base_url=backend.base_url, auth=signer) as client:
        first = client.post(route_path("user.account.get"), json={}, headers={"X-User-Id": user_id})
        second = client.post(
            route_path("user.account.get"), json={}, headers={"X-User-Id": user_id}
        )
    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "replay_detected"


def test_private_application_puts_a_notification_in_the_owners_history(backend: Backend):
    owner, _ = backend.login("owner@example.com", 1)
    player, _ = backend.login("player@example.com", 2)
    created = backend.user(
        "lobby.game.create", owner, {"name": "Secret Club", "visibility": "Private"}
    )
    assert created.status_code == 200, created.text
    game_id = created.json()["game"]["game_id"]
    assert (
        backend.user("lobby.game.open-enrollment", owner, {"game_id": game_id}).status_code == 200
    )
    applied = backend.user(
        "lobby.application.submit",
        player,
        {"game_id": game_id, "race_name": "Zorgons", "message": "hello"},
    )
    assert applied.status_code == 200, applied.text
    application = applied.json()["application"]
    assert application["status"] == "Pending"

    history = f"{EVENTS_PREFIX}user:{owner}"
    streams = backend.redis.xread({history: "0-0"}, count=10, block=2000)
    [(name, entries)] = streams
    assert name.decode() == history
    [(entry_id, fields)] = entries
    event = decode_client_event(entry_id.decode(), fields)
    assert isinstance(event, ClientEvent), event
    assert event.event_type == "lobby.application.submitted"
    assert event.user_id == owner
    assert event.device_session_id is None
    assert len(event.event_id) == 36
    payload = default_codec().decode("notification.LobbyApplicationSubmittedEvent", event.payload)
    assert payload["application_id"] == application["application_id"]
    assert payload["game_id"] == game_id
    assert payload["game_name"] == "Secret Club"
    assert payload["applicant_user_id"] == player
    assert payload["applicant_display_name"] == "player"
    assert payload["race_name"] == "Zorgons"
    assert payload["message"] == "hello"
    assert payload["submitted_at_ms"] == application["created_at_ms"]


def test_revoke_publishes_revoked_snapshots(backend: Backend):
    user_id, phone = backend.login("alice@example.com", 1)
    _, laptop = backend.login("alice@example.com", 2)
    response = backend.user("user.sessions.revoke", user_id, {"device_session_id": laptop})
    assert response.status_code == 200
    assert response.json()["session"]["status"] == "Revoked"
    events = backend.session_events()
    assert [(e.record.device_session_id, e.record.status) for e in events] == [
        (phone, SessionStatus.ACTIVE),
        (laptop, SessionStatus.ACTIVE),
        (laptop, SessionStatus.REVOKED),
    ]
    assert events[-1].record.revoke_reason == "revoked_by_user"
    with backend.signed() as client:
        lookup = client.get(f"/api/v1/internal/sessions/{laptop}")
    assert lookup.json()["status"] == "revoked"


def test_redis_down_is_503(backend: Backend, redis_server):
    if not redis_server.restartable:
        pytest.skip("this Redis cannot be stopped from the tests")
    user_id, _ = backend.login("alice@example.com")
    redis_server.stop()
    try:
        with backend.plain() as client:
            sent = client.post(
                "/api/v1/public/auth/send-email-code", json={"email": "a@example.com"}
            )
            confirmed = client.post(
                "/api/v1/public/auth/confirm-email-code",
                json={
                    "challenge_id": sent.json()["challenge_id"],
                    "code": LOGIN_CODE,
                    "client_public_key": base64.b64encode(b"\x03" * 32).decode(),
                    "time_zone": "UTC",
                },
            )
        signed = backend.user("user.account.get", user_id)
    finally:
        redis_server.start()
    assert sent.status_code == 200  # publishes nothing
    assert confirmed.status_code == 503
    assert confirmed.json()["error"]["code"] == "service_unavailable"
    assert signed.status_code == 503  # the nonce store is Redis too: fail closed


def test_sigterm_lets_an_in_flight_request_finish(backend: Backend):
    with backend.plain() as client:
        assert client.post("/api/v1/dev/latency", json={"ms": 1500}).status_code == 200
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(
            httpx.post,
            f"{backend.base_url}/api/v1/public/auth/send-email-code",
            json={"email": "late@example.com"},
            timeout=10,
        )
        time.sleep(0.5)
        backend.process.send_signal(signal.SIGTERM)
        response = pending.result(timeout=10)
    assert response.status_code == 200
    assert backend.process.wait(timeout=15) == 0
