"""Store unit tests: the lobby.* message types, invites, and notification targeting."""

from __future__ import annotations

import pytest

from mock_backend.errors import BackendError
from mock_backend.store import INVITE_TTL_MS, Caller


def kinds(result):
    return [(n.kind, n.user_id) for n in result.outbox.notifications]


# --- lobby.game.create / open-enrollment ----------------------------------------------


def test_game_create_defaults(h, clock):
    owner = h.login("owner@example.com")
    game = h.game(owner)
    assert game["status"] == "Draft"
    assert game["visibility"] == "Public"
    assert (game["min_players"], game["max_players"], game["player_count"]) == (2, 8, 0)
    assert game["current_turn"] == 0
    assert game["owner_user_id"] == owner.user_id
    assert game["owner_display_name"] == "owner"
    assert game["created_at_ms"] == clock.now
    assert game["started_at_ms"] == 0
    assert "my_race_name" not in game
    assert "description" not in game


def test_game_create_with_everything(h):
    owner = h.login("owner@example.com")
    game = h.game(
        owner,
        name="  Private Club ",
        visibility="Private",
        min_players=3,
        max_players=4,
        settings={
            "description": "friends only",
            "turn_interval_seconds": 3600,
            "engine_version": "9.1",
            "options": [{"name": "size", "value": "large"}, {"name": "fog"}],
        },
    )
    assert game["name"] == "Private Club"
    assert game["visibility"] == "Private"
    assert (game["min_players"], game["max_players"]) == (3, 4)
    assert game["description"] == "friends only"


def test_game_create_small_max_lowers_the_default_min(h):
    owner = h.login("owner@example.com")
    game = h.game(owner, max_players=1)
    assert (game["min_players"], game["max_players"]) == (1, 1)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 81}, "name"),
        ({"visibility": 7}, "visibility"),
        ({"min_players": 5, "max_players": 4}, "min_players"),
        ({"max_players": 65}, "max_players"),
        ({"min_players": -1}, "min_players"),
        ({"settings": {"turn_interval_seconds": -5}}, "settings.turn_interval_seconds"),
        ({"settings": {"enrollment_deadline_ms": -1}}, "settings.enrollment_deadline_ms"),
        (
            {"settings": {"options": [{"name": "a"}, {"name": "a"}]}},
            "settings.options[1].name",
        ),
        ({"settings": {"options": [{"name": ""}]}}, "settings.options[0].name"),
        ({"settings": {"description": "d" * 2001}}, "settings.description"),
    ],
)
def test_game_create_validation(h, fields, field):
    owner = h.login("owner@example.com")
    err = h.fails(owner, "lobby.game.create", {"name": "G", **fields})
    assert (err.status, err.code) == (400, "invalid_argument")
    assert err.message.startswith(f"{field}: ")


def test_open_enrollment(h):
    owner = h.login("owner@example.com")
    other = h.login("other@example.com")
    game = h.game(owner)
    err = h.fails(other, "lobby.game.open-enrollment", {"game_id": game["game_id"]})
    assert (err.status, err.code) == (403, "forbidden")
    opened = h.call(owner, "lobby.game.open-enrollment", {"game_id": game["game_id"]})
    assert opened.body["game"]["status"] == "EnrollmentOpen"
    err = h.fails(owner, "lobby.game.open-enrollment", {"game_id": game["game_id"]})
    assert (err.status, err.code) == (409, "invalid_state")
    err = h.fails(owner, "lobby.game.open-enrollment", {"game_id": "game_missing"})
    assert (err.status, err.code) == (404, "not_found")


# --- lists ---------------------------------------------------------------------------


def test_public_games_list_filters_and_pages(h):
    owner = h.login("owner@example.com")
    viewer = h.login("viewer@example.com")
    h.game(owner, name="draft")  # drafts are never listed
    h.open_game(owner, name="private", visibility="Private")
    open_ids = [h.open_game(owner, name=f"open {i}")["game_id"] for i in range(3)]
    body = h.call(viewer, "lobby.public.games.list", {"page_size": 2}).body
    assert [g["game_id"] for g in body["games"]] == open_ids[::-1][:2]
    rest = h.call(
        viewer, "lobby.public.games.list", {"page_size": 2, "page_token": body["next_page_token"]}
    ).body
    assert [g["game_id"] for g in rest["games"]] == open_ids[:1]
    running = h.call(viewer, "lobby.public.games.list", {"status": "Running"}).body
    assert running["games"] == []
    everything = h.call(viewer, "lobby.public.games.list", {"status": "Unspecified"}).body
    assert len(everything["games"]) == 3
    err = h.fails(viewer, "lobby.public.games.list", {"status": "Sleeping"})
    assert err.message.startswith("status: ")


def test_my_games_list_has_owned_and_joined_games(h):
    owner = h.login("owner@example.com")
    player = h.login("player@example.com")
    owned = h.game(owner, name="mine")
    joined = h.open_game(owner, name="theirs")
    h.apply(player, joined["game_id"], "Zorgons")
    mine = h.call(owner, "lobby.my.games.list", {}).body["games"]
    assert [g["game_id"] for g in mine] == [joined["game_id"], owned["game_id"]]
    theirs = h.call(player, "lobby.my.games.list", {}).body["games"]
    assert [(g["game_id"], g["my_race_name"], g["player_count"]) for g in theirs] == [
        (joined["game_id"], "Zorgons", 1)
    ]


# --- applications & notifications ---------------------------------------------------


def test_public_application_is_approved_and_notifies_the_applicant(h, clock):
    owner = h.login("owner@example.com")
    player = h.login("player@example.com")
    game = h.open_game(owner)
    result = h.apply(player, game["game_id"], "Zorgons", message="hi")
    app = result.body["application"]
    assert app["status"] == "Approved"
    assert app["decided_at_ms"] == clock.now
    assert app["applicant_display_name"] == "player"
    assert app["message"] == "hi"
    assert kinds(result) == [
        ("lobby.application.approved", player.user_id),
        ("lobby.race_name.registered", player.user_id),
    ]
    approved, registered = result.outbox.notifications
    assert approved.table == "notification.LobbyApplicationApprovedEvent"
    assert dict(approved.fields) == {
        "application_id": app["application_id"],
        "game_id": game["game_id"],
        "game_name": "Andromeda",
        "race_name": "Zorgons",
        "approved_at_ms": clock.now,
    }
    assert registered.table == "notification.LobbyRaceNameRegisteredEvent"
    assert dict(registered.fields) == {
        "race_name": "Zorgons",
        "game_id": game["game_id"],
        "game_name": "Andromeda",
        "registered_at_ms": clock.now,
    }
    assert approved.event_id != registered.event_id
    assert all(n.device_session_id is None for n in result.outbox.notifications)
    apps = h.call(player, "lobby.my.applications.list", {}).body["applications"]
    assert [a["application_id"] for a in apps] == [app["application_id"]]


def test_private_application_stays_pending_and_notifies_the_owner(h, clock):
    owner = h.login("owner@example.com")
    player = h.login("player@example.com")
    game = h.open_game(owner, visibility="Private")
    result = h.apply(player, game["game_id"], "Zorgons", message="let me in")
    app = result.body["application"]
    assert app["status"] == "Pending"
    assert app["decided_at_ms"] == 0
    [note] = result.outbox.notifications
    assert (note.kind, note.user_id, note.device_session_id) == (
        "lobby.application.submitted",
        owner.user_id,
        None,
    )
    assert note.table == "notification.LobbyApplicationSubmittedEvent"
    assert dict(note.fields) == {
        "application_id": app["application_id"],
        "game_id": game["game_id"],
        "game_name": "Andromeda",
        "applicant_user_id": player.user_id,
        "applicant_display_name": "player",
        "race_name": "Zorgons",
        "message": "let me in",
        "submitted_at_ms": clock.now,
    }
    listed = h.call(owner, "lobby.my.games.list", {}).body["games"][0]
    assert listed["player_count"] == 0


def test_owner_applying_to_own_private_game_is_approved(h):
    owner = h.login("owner@example.com")
    game = h.open_game(owner, visibility="Private")
    result = h.apply(owner, game["game_id"], "Founders")
    assert result.body["application"]["status"] == "Approved"
    assert kinds(result) == [
        ("lobby.application.approved", owner.user_id),
        ("lobby.race_name.registered", owner.user_id),
    ]


def test_dev_decisions_on_private_applications(h):
    owner = h.login("owner@example.com")
    a = h.login("a@example.com")
    b = h.login("b@example.com")
    game = h.open_game(owner, visibility="Private")
    app_a = h.apply(a, game["game_id"], "Alpha").body["application"]["application_id"]
    app_b = h.apply(b, game["game_id"], "Beta").body["application"]["application_id"]
    approved = h.store.dev_decide_application(app_a, approve=True)
    h.check_outbox(approved)
    assert approved.body["application"]["status"] == "Approved"
    assert kinds(approved) == [
        ("lobby.application.approved", a.user_id),
        ("lobby.race_name.registered", a.user_id),
    ]
    rejected = h.store.dev_decide_application(app_b, approve=False, reason="full house")
    h.check_outbox(rejected)
    assert rejected.body["application"]["status"] == "Rejected"
    [note] = rejected.outbox.notifications
    assert (note.kind, note.user_id, note.fields["reason"]) == (
        "lobby.application.rejected",
        b.user_id,
        "full house",
    )
    with pytest.raises(BackendError) as info:
        h.store.dev_decide_application(app_b, approve=True)
    assert info.value.code == "invalid_state"
    with pytest.raises(BackendError) as info:
        h.store.dev_decide_application("app_missing", approve=True)
    assert info.value.code == "not_found"


def test_game_starts_when_full_and_rejects_pending_applications(h, clock):
    owner = h.login("owner@example.com")
    players = [h.login(f"p{i}@example.com") for i in range(3)]
    public = h.open_game(owner, max_players=2)
    h.apply(players[0], public["game_id"], "Alpha")
    last = h.apply(players[1], public["game_id"], "Beta")
    game = h.call(players[1], "lobby.my.games.list", {}).body["games"][0]
    assert (game["status"], game["current_turn"], game["player_count"]) == ("Running", 1, 2)
    assert game["started_at_ms"] == clock.now
    assert last.body["application"]["status"] == "Approved"
    err = h.fails(
        players[2], "lobby.application.submit", {"game_id": public["game_id"], "race_name": "Gamma"}
    )
    assert (err.status, err.code) == (409, "game_full")

    private = h.open_game(owner, visibility="Private", max_players=1)
    pending = h.apply(players[2], private["game_id"], "Gamma").body["application"]
    started = h.apply(owner, private["game_id"], "Founders")
    assert ("lobby.application.rejected", players[2].user_id) in kinds(started)
    apps = h.call(players[2], "lobby.my.applications.list", {}).body["applications"]
    assert [(a["application_id"], a["status"]) for a in apps] == [
        (pending["application_id"], "Rejected")
    ]


def test_application_errors(h):
    owner = h.login("owner@example.com")
    a = h.login("a@example.com")
    b = h.login("b@example.com")
    draft = h.game(owner)
    err = h.fails(
        a, "lobby.application.submit", {"game_id": draft["game_id"], "race_name": "Alpha"}
    )
    assert (err.status, err.code) == (409, "invalid_state")
    err = h.fails(a, "lobby.application.submit", {"game_id": "game_nope", "race_name": "Alpha"})
    assert (err.status, err.code) == (404, "not_found")

    game = h.open_game(owner)
    h.apply(a, game["game_id"], "Alpha")
    err = h.fails(a, "lobby.application.submit", {"game_id": game["game_id"], "race_name": "Other"})
    assert (err.status, err.code) == (409, "already_member")
    err = h.fails(b, "lobby.application.submit", {"game_id": game["game_id"], "race_name": "ALPHA"})
    assert (err.status, err.code) == (409, "race_name_taken")

    private = h.open_game(owner, visibility="Private")
    h.apply(a, private["game_id"], "Alpha")
    err = h.fails(
        a, "lobby.application.submit", {"game_id": private["game_id"], "race_name": "Beta"}
    )
    assert (err.status, err.code) == (409, "application_exists")
    # a pending application reserves its race name
    err = h.fails(
        b, "lobby.application.submit", {"game_id": private["game_id"], "race_name": "alpha"}
    )
    assert err.code == "race_name_taken"


@pytest.mark.parametrize(
    ("req", "field"),
    [
        ({"race_name": ""}, "race_name"),
        ({"race_name": "X"}, "race_name"),
        ({"race_name": "Bad!Name"}, "race_name"),
        ({"race_name": "x" * 33}, "race_name"),
        ({"race_name": "Ok", "message": "m" * 501}, "message"),
        ({"game_id": "", "race_name": "Ok"}, "game_id"),
    ],
)
def test_application_validation(h, req, field):
    owner = h.login("owner@example.com")
    player = h.login("player@example.com")
    game = h.open_game(owner)
    err = h.fails(player, "lobby.application.submit", {"game_id": game["game_id"], **req})
    assert err.code == "invalid_argument"
    assert err.message.startswith(f"{field}: ")


def test_muted_and_disabled_notifications_are_not_pushed(h):
    owner = h.login("owner@example.com")
    player = h.login("player@example.com")
    h.call(
        owner, "user.settings.update", {"muted_notification_kinds": ["lobby.application.submitted"]}
    )
    game = h.open_game(owner, visibility="Private")
    assert h.apply(player, game["game_id"], "Alpha").outbox.notifications == []
    h.call(player, "user.settings.update", {"push_notifications_enabled": False})
    other = h.open_game(owner)
    assert h.apply(player, other["game_id"], "Alpha").outbox.notifications == []


# --- invites -------------------------------------------------------------------------


def invite(h, game_id, inviter, email):
    result = h.store.dev_create_invite(
        {"game_id": game_id, "inviter_user_id": inviter.user_id, "invitee_email": email}
    )
    h.codec.encode("lobby.Invite", result.body["invite"])
    h.check_outbox(result)
    return result


def test_invite_received_redeem_by_code(h, clock):
    owner = h.login("owner@example.com")
    guest = h.login("guest@example.com")
    game = h.open_game(owner, visibility="Private")
    created = invite(h, game["game_id"], owner, "Guest@Example.com")
    inv = created.body["invite"]
    assert inv["status"] == "Pending"
    assert inv["invitee_user_id"] == guest.user_id
    assert inv["expires_at_ms"] == clock.now + INVITE_TTL_MS
    assert len(inv["code"]) == 8
    [note] = created.outbox.notifications
    assert (note.kind, note.user_id) == ("lobby.invite.received", guest.user_id)
    assert dict(note.fields) == {
        "invite_id": inv["invite_id"],
        "game_id": game["game_id"],
        "game_name": "Andromeda",
        "inviter_user_id": owner.user_id,
        "inviter_display_name": "owner",
        "created_at_ms": clock.now,
        "expires_at_ms": clock.now + INVITE_TTL_MS,
    }
    listed = h.call(guest, "lobby.my.invites.list", {}).body["invites"]
    assert [i["invite_id"] for i in listed] == [inv["invite_id"]]

    redeemed = h.call(
        guest, "lobby.invite.redeem", {"code": inv["code"].lower(), "race_name": "Guests"}
    )
    assert redeemed.body["invite"]["status"] == "Redeemed"
    assert redeemed.body["game"]["my_race_name"] == "Guests"
    assert redeemed.body["game"]["player_count"] == 1
    assert kinds(redeemed) == [("lobby.race_name.registered", guest.user_id)]
    err = h.fails(
        guest, "lobby.invite.redeem", {"invite_id": inv["invite_id"], "race_name": "Again"}
    )
    assert (err.status, err.code) == (409, "invalid_state")


def test_invite_decline_and_errors(h, clock):
    owner = h.login("owner@example.com")
    guest = h.login("guest@example.com")
    other = h.login("other@example.com")
    game = h.open_game(owner, visibility="Private")
    inv = invite(h, game["game_id"], owner, "guest@example.com").body["invite"]

    err = h.fails(other, "lobby.invite.decline", {"invite_id": inv["invite_id"]})
    assert (err.status, err.code) == (403, "forbidden")
    err = h.fails(guest, "lobby.invite.decline", {})
    assert err.message.startswith("invite_id: ")
    err = h.fails(guest, "lobby.invite.decline", {"invite_id": "inv_nope"})
    assert (err.status, err.code) == (404, "not_found")
    err = h.fails(
        guest, "lobby.invite.decline", {"invite_id": inv["invite_id"], "code": "ZZZZZZZZ"}
    )
    assert err.message.startswith("code: ")
    err = h.fails(guest, "lobby.invite.redeem", {"invite_id": inv["invite_id"]})
    assert err.message.startswith("race_name: ")

    declined = h.call(guest, "lobby.invite.decline", {"invite_id": inv["invite_id"]})
    assert declined.body["invite"]["status"] == "Declined"
    assert declined.outbox.empty

    second = invite(h, game["game_id"], owner, "guest@example.com").body["invite"]
    clock.advance(INVITE_TTL_MS)
    err = h.fails(
        guest, "lobby.invite.redeem", {"invite_id": second["invite_id"], "race_name": "Late"}
    )
    assert (err.code, err.message) == ("invalid_state", "the invite is Expired, not Pending")
    listed = h.call(guest, "lobby.my.invites.list", {}).body["invites"]
    assert [i["status"] for i in listed] == ["Expired", "Declined"]


def test_dev_invite_errors(h):
    owner = h.login("owner@example.com")
    guest = h.login("guest@example.com")
    stranger = h.login("stranger@example.com")
    game = h.open_game(owner, visibility="Private")

    def fails(**req):
        with pytest.raises(BackendError) as info:
            h.store.dev_create_invite(
                {
                    "game_id": game["game_id"],
                    "inviter_user_id": owner.user_id,
                    "invitee_email": "guest@example.com",
                    **req,
                }
            )
        return info.value

    assert fails(inviter_user_id=stranger.user_id).code == "forbidden"
    assert fails(invitee_email="nobody@example.com").code == "not_found"
    assert fails(game_id="game_nope").code == "not_found"
    invite(h, game["game_id"], owner, "guest@example.com")
    assert fails().code == "already_invited"
    h.apply(owner, game["game_id"], "Founders")
    assert fails(invitee_email="owner@example.com").code == "already_member"
    del guest


def test_redeem_into_a_full_game(h):
    owner = h.login("owner@example.com")
    h.login("guest@example.com")
    guest = h.login("guest@example.com")
    game = h.open_game(owner, visibility="Private", max_players=1)
    inv = invite(h, game["game_id"], owner, "guest@example.com").body["invite"]
    h.apply(owner, game["game_id"], "Founders")  # fills and starts the game
    err = h.fails(
        guest, "lobby.invite.redeem", {"invite_id": inv["invite_id"], "race_name": "Late"}
    )
    assert err.code == "game_full"


def test_caller_without_account(h):
    err = h.fails(Caller("usr_nobody"), "lobby.my.games.list", {})
    assert err.code == "not_found"
