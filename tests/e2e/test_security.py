"""Forged, stale, replayed and revoked requests are stopped at the edge; limits hold."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from edgeclient.errors import GatewayError, PublicApiError
from edgeclient.jsonapi import encode_request
from edgeclient.keys import DeviceKey
from edgeclient.public_auth import PublicAuthClient
from edgecore.testing.system import DEV_LOGIN_CODE

from .harness import Gateway

pytestmark = pytest.mark.integration


async def _next_event(stream: Any, timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        return await anext(stream)


def _account_get() -> bytes:
    return encode_request("user.account.get", {})


async def test_replayed_request_is_rejected(gateway: Gateway) -> None:
    player = await gateway.login(name="replay")
    async with gateway.client(player) as client:
        await client.execute("user.account.get", _account_get(), request_id="replay-1")
        with pytest.raises(GatewayError) as err:
            await client.execute("user.account.get", _account_get(), request_id="replay-1")
    assert (err.value.code_name, err.value.message) == (
        "FAILED_PRECONDITION",
        "request replay detected",
    )


@pytest.mark.parametrize("skew_ms", [-6 * 60_000, 6 * 60_000])
async def test_stale_timestamp_is_rejected(gateway: Gateway, skew_ms: int) -> None:
    player = await gateway.login(name="stale")
    async with gateway.client(player) as client:
        with pytest.raises(GatewayError) as err:
            await client.execute(
                "user.account.get", _account_get(), timestamp_ms=int(time.time() * 1000) + skew_ms
            )
    assert (err.value.code_name, err.value.message) == (
        "FAILED_PRECONDITION",
        "request timestamp is outside the freshness window",
    )


async def test_forged_signature_is_rejected(gateway: Gateway) -> None:
    player = await gateway.login(name="victim")
    async with gateway.client(player, key=DeviceKey.generate()) as forger:
        with pytest.raises(GatewayError) as err:
            await forger.call_json("user.account.get", {})
    assert (err.value.code_name, err.value.message) == (
        "UNAUTHENTICATED",
        "invalid request signature",
    )


async def test_another_sessions_key_is_rejected(gateway: Gateway) -> None:
    victim = await gateway.login(name="victim")
    attacker = await gateway.login(name="attacker")
    async with gateway.client(victim, key=attacker.key) as client:
        with pytest.raises(GatewayError) as err:
            await client.call_json("user.account.get", {})
    assert (err.value.code_name, err.value.message) == (
        "UNAUTHENTICATED",
        "invalid request signature",
    )


async def test_unknown_session_is_rejected(gateway: Gateway) -> None:
    player = await gateway.login(name="ghost")
    player.device_session_id = "ds-does-not-exist"
    async with gateway.client(player) as client:
        with pytest.raises(GatewayError) as err:
            await client.call_json("user.account.get", {})
    assert (err.value.code_name, err.value.message) == ("UNAUTHENTICATED", "unknown device session")


async def test_revoked_session_is_cut_off_while_the_users_other_session_keeps_working(
    gateway: Gateway,
) -> None:
    email = gateway.new_email("two-devices")
    phone = await gateway.login(email)
    laptop = await gateway.login(email)
    other = await gateway.login(name="other")
    async with gateway.client(phone) as phone_client, gateway.client(laptop) as laptop_client:
        phone_stream = phone_client.subscribe()
        laptop_stream = laptop_client.subscribe()
        await _next_event(phone_stream)
        await _next_event(laptop_stream)

        await phone_client.call_json(
            "user.sessions.revoke", {"device_session_id": laptop.device_session_id}
        )

        with pytest.raises(GatewayError) as closed:
            await _next_event(laptop_stream)
        assert (closed.value.code_name, closed.value.message) == (
            "FAILED_PRECONDITION",
            "device session is revoked",
        )
        with pytest.raises(GatewayError) as rejected:
            await laptop_client.call_json("user.account.get", {})
        assert (rejected.value.code_name, rejected.value.message) == (
            "FAILED_PRECONDITION",
            "device session is revoked",
        )

        # The phone keeps working: commands succeed and its stream still delivers.
        game = (
            await phone_client.call_json(
                "lobby.game.create", {"name": "Hideout", "visibility": "Private"}
            )
        )["game"]
        await phone_client.call_json("lobby.game.open-enrollment", {"game_id": game["game_id"]})
        async with gateway.client(other) as other_client:
            await other_client.call_json(
                "lobby.application.submit", {"game_id": game["game_id"], "race_name": "Knockers"}
            )
        event = await _next_event(phone_stream)
        assert event.event_type == "lobby.application.submitted"
        await phone_stream.aclose()


async def test_authenticated_session_rate_limit(gateway: Gateway) -> None:
    player = await gateway.login(name="hasty")
    codes: list[str] = []
    async with gateway.client(player) as client:
        for _ in range(40):  # per-session burst is 20 by default
            try:
                await client.execute("user.account.get", _account_get())
                codes.append("OK")
            except GatewayError as exc:
                codes.append(f"{exc.code_name}: {exc.message}")
    assert "RESOURCE_EXHAUSTED: authenticated request rate limit exceeded" in codes
    assert codes[0] == "OK"


async def test_public_identity_rate_limit(gateway: Gateway) -> None:
    email = gateway.new_email("spam")
    gateway.secrets.add(email)
    async with PublicAuthClient(gateway.public_url) as public:
        for _ in range(2):  # the e2e system allows a burst of two sends per address
            await public.send_email_code(email)
        with pytest.raises(PublicApiError) as err:
            await public.send_email_code(email)
    assert (err.value.status, err.value.code) == (429, "rate_limited")


async def test_public_input_validation(gateway: Gateway) -> None:
    async with PublicAuthClient(gateway.public_url) as public:
        challenge = await public.send_email_code(gateway.new_email("typo"))
        gateway.secrets.add(challenge)
        with pytest.raises(PublicApiError) as bad_key:
            await public.confirm_email_code(
                challenge, DEV_LOGIN_CODE, "bm90LWEta2V5", "Europe/Berlin"
            )
        with pytest.raises(PublicApiError) as bad_zone:
            await public.confirm_email_code(
                challenge, DEV_LOGIN_CODE, DeviceKey.generate().public_key_b64, "Mars/Olympus"
            )
    assert (bad_key.value.status, bad_key.value.code) == (400, "invalid_request")
    assert "client_public_key" in bad_key.value.message
    assert (bad_zone.value.status, bad_zone.value.code) == (400, "invalid_request")
    assert "time_zone" in bad_zone.value.message
