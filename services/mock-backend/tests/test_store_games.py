"""Store unit tests: user.games.* (report, command, order) and the dev turn advance."""

from __future__ import annotations

import pytest

from mock_backend.errors import BackendError
from mock_backend.report import build_report, planet_count


@pytest.fixture
def running(h):
    """A public game with three members, started (turn 1)."""
    owner = h.login("owner@example.com")
    players = [h.login(f"p{i}@example.com") for i in range(3)]
    game = h.open_game(owner, max_players=3)
    for player, race in zip(players, ("Alpha", "Beta", "Gamma"), strict=True):
        h.apply(player, game["game_id"], race)
    return game["game_id"], owner, players


def report(h, user, game_id, turn):
    return h.call(user, "user.games.report", {"game_id": game_id, "turn": turn}).body


def test_report_has_all_four_kinds_and_is_deterministic(h, running):
    game_id, _, players = running
    first = report(h, players[0], game_id, 1)
    assert first == report(h, players[0], game_id, 1)
    assert first["game_id"] == game_id
    assert first["turn"] == 1
    assert first["race_name"] == "Alpha"
    assert first["map_width"] > 0 and first["map_height"] > 0
    planets = first["planets"]
    assert len(planets) == planet_count(3)
    assert [p["number"] for p in planets] == list(range(1, len(planets) + 1))
    by_kind = {}
    for p in planets:
        by_kind.setdefault(p["kind"], []).append(p)
        assert 0 <= p["x"] < first["map_width"]
        assert 0 <= p["y"] < first["map_height"]
    assert set(by_kind) == {"Local", "Other", "Uninhabited", "Unidentified"}
    assert {p["owner"] for p in by_kind["Local"]} == {"Alpha"}
    assert {p["owner"] for p in by_kind["Other"]} == {"Beta", "Gamma"}
    assert all(set(p) == {"number", "kind", "x", "y"} for p in by_kind["Unidentified"])
    assert all("owner" not in p and "population" not in p for p in by_kind["Uninhabited"])
    assert all("production" in p and "free_industry" in p for p in by_kind["Local"])
    assert all("production" not in p and "population" in p for p in by_kind["Other"])


def test_reports_differ_by_viewer_but_share_the_map(h, running):
    game_id, _, players = running
    alpha = report(h, players[0], game_id, 1)
    beta = report(h, players[1], game_id, 1)
    assert beta["race_name"] == "Beta"
    assert (alpha["map_width"], alpha["map_height"]) == (beta["map_width"], beta["map_height"])
    assert [(p["x"], p["y"]) for p in alpha["planets"]] == [
        (p["x"], p["y"]) for p in beta["planets"]
    ]
    local_alpha = {p["number"] for p in alpha["planets"] if p["kind"] == "Local"}
    other_beta = {p["number"] for p in beta["planets"] if p["kind"] == "Other"}
    assert local_alpha <= other_beta


def test_report_turns(h, running):
    game_id, owner, players = running
    initial = report(h, players[0], game_id, 0)
    assert initial["turn"] == 0
    err = h.fails(players[0], "user.games.report", {"game_id": game_id, "turn": 2})
    assert (err.status, err.code) == (404, "turn_not_available")
    err = h.fails(players[0], "user.games.report", {"game_id": game_id, "turn": -1})
    assert err.message.startswith("turn: ")
    for _ in range(3):
        h.store.dev_advance_turn(game_id)
    turn4 = report(h, players[0], game_id, 4)
    assert turn4 == report(h, players[0], game_id, 4)
    assert turn4 != report(h, players[0], game_id, 1)
    # a colony every second turn
    assert sum(p["kind"] == "Local" for p in turn4["planets"]) == 3
    # the owner does not play in this game
    err = h.fails(owner, "user.games.report", {"game_id": game_id, "turn": 1})
    assert (err.status, err.code) == (403, "forbidden")
    err = h.fails(players[0], "user.games.report", {"game_id": "game_nope", "turn": 0})
    assert (err.status, err.code) == (404, "not_found")


def test_report_before_start_and_single_member(h):
    owner = h.login("owner@example.com")
    game = h.open_game(owner)
    h.apply(owner, game["game_id"], "Solo")
    body = report(h, owner, game["game_id"], 0)
    kinds = {p["kind"] for p in body["planets"]}
    assert kinds == {"Local", "Uninhabited", "Unidentified"}
    err = h.fails(owner, "user.games.report", {"game_id": game["game_id"], "turn": 1})
    assert err.code == "turn_not_available"


def test_build_report_is_pure():
    args = {
        "game_id": "game_x",
        "turn": 7,
        "members": [("u1", "A"), ("u2", "B")],
        "viewer_user_id": "u2",
        "generated_at_ms": 5,
    }
    assert build_report(**args) == build_report(**args)
    assert build_report(**args) != build_report(**{**args, "game_id": "game_y"})


def test_advance_turn(h, running, clock):
    game_id, _, players = running
    clock.advance(1000)
    advanced = h.store.dev_advance_turn(game_id)
    h.codec.encode("lobby.GameSummary", advanced.body["game"])
    assert advanced.body["game"]["current_turn"] == 2
    assert report(h, players[0], game_id, 2)["generated_at_ms"] == clock.now
    with pytest.raises(BackendError) as info:
        h.store.dev_advance_turn("game_nope")
    assert info.value.code == "not_found"
    owner = h.login("owner@example.com")
    draft = h.game(owner)
    with pytest.raises(BackendError) as info:
        h.store.dev_advance_turn(draft["game_id"])
    assert info.value.code == "invalid_state"


def test_command(h, running):
    game_id, owner, players = running

    def command(name, *args, turn=1):
        req = {"game_id": game_id, "turn": turn, "command": {"name": name, "args": list(args)}}
        return h.call(players[0], "user.games.command", req).body

    assert command("ping") == {
        "game_id": game_id,
        "turn": 1,
        "accepted": True,
        "message": "pong",
        "output": ["pong"],
    }
    assert command("echo", "a", "b")["output"] == ["a", "b"]
    assert command("race", turn=0)["output"] == ["Alpha"]
    assert command("planets")["output"][0].startswith("#1 ")
    unknown = command("selfdestruct")
    assert (unknown["accepted"], unknown["message"]) == (False, "unknown command 'selfdestruct'")
    err = h.fails(
        players[0],
        "user.games.command",
        {"game_id": game_id, "turn": 5, "command": {"name": "ping"}},
    )
    assert (err.status, err.code) == (409, "stale_turn")
    err = h.fails(players[0], "user.games.command", {"game_id": game_id, "turn": 1})
    assert err.message.startswith("command: ")
    err = h.fails(owner, "user.games.command", {"game_id": game_id, "command": {"name": "ping"}})
    assert err.code == "forbidden"


def test_command_needs_a_running_game(h):
    owner = h.login("owner@example.com")
    game = h.open_game(owner)
    h.apply(owner, game["game_id"], "Solo")
    err = h.fails(
        owner, "user.games.command", {"game_id": game["game_id"], "command": {"name": "ping"}}
    )
    assert (err.status, err.code) == (409, "invalid_state")


def test_orders(h, running):
    game_id, _, players = running
    req = {
        "game_id": game_id,
        "turn": 1,
        "orders": [
            {"name": "produce", "args": ["1", "Drive"]},
            {"name": "teleport"},
            {"name": "send", "args": ["1", "7"]},
        ],
    }
    body = h.call(players[1], "user.games.order", req).body
    assert body["accepted_count"] == 2
    assert body["results"] == [
        {"index": 0, "accepted": True, "message": "ok"},
        {"index": 1, "accepted": False, "message": "unknown order 'teleport'"},
        {"index": 2, "accepted": True, "message": "ok"},
    ]
    recorded = h.call(
        players[1],
        "user.games.command",
        {"game_id": game_id, "turn": 1, "command": {"name": "orders"}},
    ).body
    assert recorded["output"] == ["produce 1 Drive", "send 1 7"]
    err = h.fails(players[1], "user.games.order", {**req, "turn": 0})
    assert err.code == "stale_turn"
    err = h.fails(players[1], "user.games.order", {**req, "orders": [{"name": "send"}] * 101})
    assert err.message.startswith("orders: ")
