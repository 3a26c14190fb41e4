"""push-hub with the mock backend as the session source and the notification publisher.

Two users log in through the mock backend's public routes; push-hub resolves
their sessions through the HMAC-signed backend lookup (or the snapshots the
mock publishes); a dev invite makes the mock publish a user-targeted
``lobby.invite.received`` that every stream of the invitee receives, verified
with the client SDK; a ``user.sessions.revoke`` closes exactly the revoked
session's stream.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta

import grpc
import httpx
import pytest

from edgeclient.client import EdgeClient
from edgeclient.errors import GatewayError
from edgeclient.keys import DeviceKey
from edgecore.backend.client import BackendClient
from edgecore.backend.routes import HEADER_USER_ID, route_path
from edgecore.fbjson import default_codec
from edgecore.internal_auth import HmacRequestSigner
from edgecore.testing.ports import free_port

pytestmark = pytest.mark.integration

CODE = "123456"


class MockBackend:
    def __init__(self, redis_url: str, secret_path: str, port: int, log_path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.secret_path = secret_path
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "MOCK_"))}
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mock_backend"],
                env={
                    **base,
                    "MOCK_BACKEND_ADDR": f"127.0.0.1:{port}",
                    "MOCK_BACKEND_REDIS_URL": redis_url,
                    "MOCK_BACKEND_HMAC_SECRET_PATH": secret_path,
                    "MOCK_BACKEND_FIXED_LOGIN_CODE": CODE,
                    "MOCK_BACKEND_DEV_ENDPOINTS": "1",
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"mock backend did not start:\n{log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def _login(http: httpx.AsyncClient, email: str, key: DeviceKey) -> str:
    sent = await http.post(
        "/api/v1/public/auth/send-email-code", json={"email": email, "preferred_language": "en"}
    )
    sent.raise_for_status()
    confirmed = await http.post(
        "/api/v1/public/auth/confirm-email-code",
        json={
            "challenge_id": sent.json()["challenge_id"],
            "code": CODE,
            "client_public_key": key.public_key_b64,
            "time_zone": "Europe/Berlin",
        },
    )
    confirmed.raise_for_status()
    return str(confirmed.json()["device_session_id"])


async def test_notifications_and_revocation_from_the_mock_backend(
    hub_harness, redis_url, unique, tmp_path
):
    secret_path = tmp_path / "hmac-secret"
    secret = secrets.token_hex(32)
    secret_path.write_text(secret)
    backend = MockBackend(redis_url, str(secret_path), free_port(), tmp_path / "mock.log")
    try:
        hub = hub_harness.start_hub(
            GATEWAY_BACKEND_HTTP_URL=backend.url,
            GATEWAY_BACKEND_HMAC_SECRET_PATH=str(secret_path),
        )
        ann_key, bob_phone_key, bob_laptop_key = (DeviceKey.generate() for _ in range(3))
        async with httpx.AsyncClient(base_url=backend.url, timeout=10) as http:
            ann_session = await _login(http, f"ann-{unique}@example.com", ann_key)
            bob_phone = await _login(http, f"bob-{unique}@example.com", bob_phone_key)
            bob_laptop = await _login(http, f"bob-{unique}@example.com", bob_laptop_key)

            internal = BackendClient(
                base_url=backend.url,
                timeout=timedelta(seconds=5),
                signer=HmacRequestSigner(secret=secret.encode(), key_id="push-hub-test"),
            )
            try:
                ann = await internal.get_session(ann_session)
                bob = await internal.get_session(bob_phone)
                assert ann is not None and bob is not None

                def client(session: str, key: DeviceKey) -> EdgeClient:
                    return EdgeClient(
                        command_addr=hub.address,
                        device_session_id=session,
                        device_key=key,
                        server_public_key=hub_harness.server_public_key,
                    )

                async with (
                    client(bob_phone, bob_phone_key) as phone,
                    client(bob_laptop, bob_laptop_key) as laptop,
                ):
                    phone_events = phone.subscribe()
                    laptop_events = laptop.subscribe()
                    for events in (phone_events, laptop_events):
                        assert (await anext(events)).event_type == "gateway.server_time"

                    created = await internal.post_json(
                        route_path("lobby.game.create"),
                        {"name": "Push test", "visibility": "Private"},
                        headers={HEADER_USER_ID: ann.user_id},
                    )
                    game_id = created["game"]["game_id"]
                    invited = await http.post(
                        "/api/v1/dev/invites",
                        json={
                            "game_id": game_id,
                            "inviter_user_id": ann.user_id,
                            "invitee_email": f"bob-{unique}@example.com",
                        },
                    )
                    invited.raise_for_status()

                    for events in (phone_events, laptop_events):
                        async with asyncio.timeout(10):
                            event = await anext(events)
                        assert event.event_type == "lobby.invite.received"
                        body = default_codec().decode(
                            "notification.LobbyInviteReceivedEvent", event.payload
                        )
                        assert body["game_id"] == game_id

                    await internal.post_json(
                        route_path("user.sessions.revoke"),
                        {"device_session_id": bob_phone},
                        headers={HEADER_USER_ID: bob.user_id},
                    )
                    with pytest.raises(GatewayError) as info:
                        async with asyncio.timeout(10):
                            await anext(phone_events)
                    assert (info.value.code_name, info.value.message) == (
                        grpc.StatusCode.FAILED_PRECONDITION.name,
                        "device session is revoked",
                    )
                    assert hub.metric("gateway_push_active_streams") == 1
                    await laptop_events.aclose()
            finally:
                await internal.aclose()
    finally:
        backend.stop()
