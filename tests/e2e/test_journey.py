"""The full client journey through the public interfaces of the running system."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edgeclient.jsonapi import decode_event
from edgecore.catalog import MESSAGE_TYPES, SERVER_TIME_EVENT_TYPE

from .harness import Gateway, Player

pytestmark = pytest.mark.integration


async def _next_event(stream: Any, timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        return await anext(stream)


async def test_every_message_type_with_verified_responses(gateway: Gateway) -> None:
    alice = await gateway.login(name="alice")
    bob = await gateway.login(name="bob")
    carol = await gateway.login(name="carol")
    seen: set[str] = set()

    async def call(player: Player, message_type: str, body: dict[str, Any]) -> dict[str, Any]:
        async with gateway.client(player) as client:
            answer = await client.call_json(message_type, body)
        seen.add(message_type)
        return answer

    assert (await call(alice, "user.account.get", {}))["account"]["email"] == alice.email
    assert (await call(alice, "user.profile.update", {"display_name": "Alice"}))["account"][
        "display_name"
    ] == "Alice"
    assert (await call(alice, "user.settings.update", {"time_zone": "Europe/Paris"}))["settings"][
        "time_zone"
    ] == "Europe/Paris"
    assert [
        s["device_session_id"] for s in (await call(alice, "user.sessions.list", {}))["sessions"]
    ] == [alice.device_session_id]

    game = (await call(alice, "lobby.game.create", {"name": "Andromeda", "max_players": 2}))["game"]
    await call(alice, "lobby.game.open-enrollment", {"game_id": game["game_id"]})
    assert game["game_id"] in [
        g["game_id"] for g in (await call(bob, "lobby.public.games.list", {}))["games"]
    ]
    await call(
        bob, "lobby.application.submit", {"game_id": game["game_id"], "race_name": "Zorgons"}
    )
    assert len((await call(bob, "lobby.my.applications.list", {}))["applications"]) == 1
    await call(
        alice, "lobby.application.submit", {"game_id": game["game_id"], "race_name": "Humans"}
    )
    mine = (await call(alice, "lobby.my.games.list", {}))["games"]
    assert [(g["status"], g["current_turn"]) for g in mine if g["game_id"] == game["game_id"]] == [
        ("Running", 1)
    ]

    report = await call(alice, "user.games.report", {"game_id": game["game_id"], "turn": 1})
    assert {p["kind"] for p in report["planets"]} >= {"Local"}
    assert (
        await call(
            alice,
            "user.games.command",
            {"game_id": game["game_id"], "turn": 1, "command": {"name": "ping"}},
        )
    )["output"] == ["pong"]
    assert (
        await call(
            alice,
            "user.games.order",
            {"game_id": game["game_id"], "turn": 1, "orders": [{"name": "produce"}]},
        )
    )["accepted_count"] == 1

    private = (await call(alice, "lobby.game.create", {"name": "Secret", "visibility": "Private"}))[
        "game"
    ]
    await call(alice, "lobby.game.open-enrollment", {"game_id": private["game_id"]})
    first = gateway.invite(private["game_id"], alice, carol)
    assert [
        i["invite_id"] for i in (await call(carol, "lobby.my.invites.list", {}))["invites"]
    ] == [first["invite_id"]]
    await call(
        carol, "lobby.invite.decline", {"invite_id": first["invite_id"], "code": first["code"]}
    )
    second = gateway.invite(private["game_id"], alice, carol)
    redeemed = await call(
        carol,
        "lobby.invite.redeem",
        {"invite_id": second["invite_id"], "code": second["code"], "race_name": "Carolians"},
    )
    assert redeemed["invite"]["status"] == "Redeemed"

    extra = await gateway.login(alice.email)
    assert (
        await call(alice, "user.sessions.revoke", {"device_session_id": extra.device_session_id})
    )["session"]["status"] == "Revoked"
    assert (await call(bob, "user.sessions.revoke_all", {"keep_current": True}))[
        "revoked_count"
    ] == 0
    assert seen == set(MESSAGE_TYPES)


async def test_subscribe_bootstrap_and_a_notification_from_another_user(gateway: Gateway) -> None:
    owner = await gateway.login(name="owner")
    applicant = await gateway.login(name="applicant")
    async with gateway.client(owner) as owner_client:
        game = (
            await owner_client.call_json(
                "lobby.game.create", {"name": "Private", "visibility": "Private"}
            )
        )["game"]
        await owner_client.call_json("lobby.game.open-enrollment", {"game_id": game["game_id"]})
        stream = owner_client.subscribe(request_id="open-owner-stream-1")
        bootstrap = await _next_event(stream)
        assert (bootstrap.event_type, bootstrap.event_id) == (
            SERVER_TIME_EVENT_TYPE,
            "open-owner-stream-1",
        )
        server_time = decode_event(bootstrap)["server_time_ms"]
        assert abs(server_time - bootstrap.timestamp_ms) < 60_000

        async with gateway.client(applicant) as applicant_client:
            await applicant_client.call_json(
                "lobby.application.submit",
                {"game_id": game["game_id"], "race_name": "Visitors", "message": "hi"},
            )
        event = await _next_event(stream)
        assert event.event_type == "lobby.application.submitted"
        payload = decode_event(event)
        assert (payload["game_id"], payload["applicant_user_id"], payload["race_name"]) == (
            game["game_id"],
            applicant.user_id,
            "Visitors",
        )
        await stream.aclose()
