"""What the e2e tests share: a running system and clients that use only public interfaces.

Everything a test does goes through the client SDK (``edgeclient``) or plain
HTTP against the public REST surface; the mock backend's dev endpoints stand
in for what an operator or another game service would do (create an invite,
inject latency). Every secret a test handles is recorded so the suite can
prove none of it reached a service log.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from edgeclient.client import EdgeClient
from edgeclient.keys import DeviceKey, parse_server_public_key
from edgeclient.public_auth import PublicAuthClient
from edgecore.testing.system import DEV_LOGIN_CODE, System


@dataclass
class Secrets:
    """Values that must never appear in any service log."""

    values: set[str] = field(default_factory=set)

    def add(self, *values: str) -> None:
        self.values.update(v for v in values if v and len(v) >= 6)


@dataclass
class Player:
    email: str
    device_session_id: str
    key: DeviceKey
    user_id: str = ""


class Gateway:
    def __init__(self, system: System, secrets_registry: Secrets) -> None:
        self.system = system
        self.secrets = secrets_registry
        ports = system.ports
        self.public_url = f"http://127.0.0.1:{ports.public_rest}"
        self.command_addr = f"127.0.0.1:{ports.edge_grpc}"
        self.events_addr = f"127.0.0.1:{ports.push_hub}"
        self.backend_url = f"http://127.0.0.1:{ports.mock_backend}"
        self.server_key = parse_server_public_key(system.server_public_key)

    def new_email(self, name: str) -> str:
        return f"{name}-{uuid.uuid4().hex[:10]}@galaxy.test"

    async def login(self, email: str | None = None, *, name: str = "player") -> Player:
        email = email or self.new_email(name)
        key = DeviceKey.generate()
        async with PublicAuthClient(self.public_url) as public:
            challenge = await public.send_email_code(email, accept_language="de-DE,de;q=0.9")
            session_id = await public.confirm_email_code(
                challenge, DEV_LOGIN_CODE, key.public_key_b64, "Europe/Berlin"
            )
        self.secrets.add(email, challenge, key.public_key_b64, key.seed_b64())
        player = Player(email, session_id, key)
        async with self.client(player) as client:
            account = await client.call_json("user.account.get", {})
        player.user_id = account["account"]["user_id"]
        return player

    @asynccontextmanager
    async def client(
        self, player: Player, *, key: DeviceKey | None = None, timeout: float = 10.0
    ) -> AsyncIterator[EdgeClient]:
        client = EdgeClient(
            command_addr=self.command_addr,
            events_addr=self.events_addr,
            device_session_id=player.device_session_id,
            device_key=key or player.key,
            server_public_key=self.server_key,
            timeout=timeout,
        )
        try:
            yield client
        finally:
            await client.close()

    def dev(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with httpx.Client(base_url=self.backend_url, timeout=10) as http:
            return http.request(method, path, **kwargs)

    def set_backend_latency(self, ms: int) -> None:
        assert self.dev("POST", "/api/v1/dev/latency", json={"ms": ms}).status_code == 200

    def invite(self, game_id: str, inviter: Player, invitee: Player) -> dict[str, Any]:
        response = self.dev(
            "POST",
            "/api/v1/dev/invites",
            json={
                "game_id": game_id,
                "inviter_user_id": inviter.user_id,
                "invitee_email": invitee.email,
            },
        )
        assert response.status_code == 200, response.text
        invite: dict[str, Any] = response.json()["invite"]
        return invite

    def logs(self) -> dict[str, str]:
        return self.system.logs()


def unique_id(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}-{secrets.token_hex(3)}"
