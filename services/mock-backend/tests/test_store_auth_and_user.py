"""Store unit tests: public auth, session records, and the user.* account/session types."""

from __future__ import annotations

import base64

import pytest

from edgecore.sessions import SessionStatus
from mock_backend.errors import BackendError
from mock_backend.store import (
    CHALLENGE_TTL_MS,
    MAX_CODE_ATTEMPTS,
    REVOKE_REASON_ALL,
    REVOKE_REASON_ONE,
    Caller,
    Store,
)


def _confirm(store: Store, challenge: str, login_code: str, **extra: str) -> dict[str, str]:
    return {
        "challenge_id": challenge,
        "code": login_code,
        "client_public_key": base64.b64encode(b"k" * 32).decode(),
        "time_zone": "Europe/Berlin",
        **extra,
    }


# --- public auth ----------------------------------------------------------------


def test_login_creates_account_and_active_session_snapshot(h, store, clock):
    sent = store.send_email_code(
        {"email": " Alice.Smith+x@Example.COM ", "preferred_language": "de"}
    )
    assert sent.outbox.empty
    code = store.dev_login_code("alice.smith+x@example.com")
    assert code["challenge_id"] == sent.body["challenge_id"]
    assert len(code["code"]) == 6 and code["code"].isdigit()
    done = store.confirm_email_code(
        _confirm(store, sent.body["challenge_id"], code["code"]),
        client_metadata={"user_agent": "galaxy-test/1", "bogus": "dropped"},
    )
    session_id = done.body["device_session_id"]
    [snapshot] = done.outbox.sessions
    assert snapshot.device_session_id == session_id
    assert snapshot.status is SessionStatus.ACTIVE
    assert snapshot.created_at_ms == clock.now
    assert snapshot.client_public_key == base64.b64encode(b"k" * 32).decode()
    assert dict(snapshot.client_metadata) == {"user_agent": "galaxy-test/1"}
    assert done.outbox.notifications == []
    assert store.session_record(session_id) == snapshot

    account = h.call(Caller(snapshot.user_id), "user.account.get", {}).body
    assert account["account"]["email"] == "alice.smith+x@example.com"
    assert account["account"]["display_name"] == "alice.smith"
    assert account["account"]["preferred_language"] == "de"
    assert account["account"]["time_zone"] == "Europe/Berlin"
    assert account["settings"] == {
        "preferred_language": "de",
        "time_zone": "Europe/Berlin",
        "email_notifications_enabled": True,
        "push_notifications_enabled": True,
        "muted_notification_kinds": [],
    }


def test_second_login_reuses_the_account_with_a_new_session(h):
    first = h.login("bob@example.com")
    second = h.login("BOB@example.com")
    assert first.user_id == second.user_id
    assert first.device_session_id != second.device_session_id


def test_preferred_language_defaults_to_en(store):
    store.send_email_code({"email": "c@example.com"})
    code = store.dev_login_code("c@example.com")
    done = store.confirm_email_code(_confirm(store, code["challenge_id"], code["code"]))
    user_id = store.session_record(done.body["device_session_id"]).user_id
    body = store.execute("user.account.get", Caller(user_id), {}).body
    assert body["settings"]["preferred_language"] == "en"


@pytest.mark.parametrize(
    "email", ["", "   ", "no-at-sign", "a@b", "a b@example.com", "x" * 250 + "@e.com"]
)
def test_send_rejects_bad_email(store, email):
    with pytest.raises(BackendError) as info:
        store.send_email_code({"email": email})
    assert info.value.status == 400
    assert info.value.code in {"invalid_email", "invalid_argument"}


def test_send_rejects_bad_language(store):
    with pytest.raises(BackendError) as info:
        store.send_email_code({"email": "a@example.com", "preferred_language": "english!"})
    assert (info.value.code, info.value.message.split(":")[0]) == (
        "invalid_argument",
        "preferred_language",
    )


def test_fixed_login_code(clock):
    store = Store(clock_ms=clock, fixed_login_code="123456")
    store.send_email_code({"email": "a@example.com"})
    assert store.dev_login_code("a@example.com")["code"] == "123456"


def test_wrong_codes_then_lockout(store):
    challenge = store.send_email_code({"email": "a@example.com"}).body["challenge_id"]
    right = store.dev_login_code("a@example.com")["code"]
    wrong = "000000" if right != "000000" else "111111"
    for attempt in range(1, MAX_CODE_ATTEMPTS):
        with pytest.raises(BackendError) as info:
            store.confirm_email_code(_confirm(store, challenge, wrong))
        assert (info.value.status, info.value.code) == (400, "invalid_code")
        assert f"{MAX_CODE_ATTEMPTS - attempt} attempts left" in info.value.message
    with pytest.raises(BackendError) as info:
        store.confirm_email_code(_confirm(store, challenge, wrong))
    assert (info.value.status, info.value.code) == (429, "too_many_attempts")
    with pytest.raises(BackendError) as info:  # even the right code is refused now
        store.confirm_email_code(_confirm(store, challenge, right))
    assert info.value.code == "too_many_attempts"


def test_expired_challenge(store, clock):
    challenge = store.send_email_code({"email": "a@example.com"}).body["challenge_id"]
    code = store.dev_login_code("a@example.com")["code"]
    clock.advance(CHALLENGE_TTL_MS)
    with pytest.raises(BackendError) as info:
        store.confirm_email_code(_confirm(store, challenge, code))
    assert (info.value.status, info.value.code) == (410, "challenge_expired")


def test_unknown_and_used_challenges(store):
    with pytest.raises(BackendError) as info:
        store.confirm_email_code(_confirm(store, "ch_nope", "123456"))
    assert (info.value.status, info.value.code) == (404, "challenge_not_found")
    challenge = store.send_email_code({"email": "a@example.com"}).body["challenge_id"]
    code = store.dev_login_code("a@example.com")["code"]
    store.confirm_email_code(_confirm(store, challenge, code))
    with pytest.raises(BackendError) as info:
        store.confirm_email_code(_confirm(store, challenge, code))
    assert info.value.code == "challenge_not_found"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_public_key", "not base64!"),
        ("client_public_key", base64.b64encode(b"short").decode()),
        ("client_public_key", base64.urlsafe_b64encode(b"\xff" * 32).decode()),
        ("time_zone", "Not a zone!"),
        ("time_zone", ""),
        ("code", ""),
        ("challenge_id", ""),
    ],
)
def test_confirm_validates_fields(store, field, value):
    challenge = store.send_email_code({"email": "a@example.com"}).body["challenge_id"]
    code = store.dev_login_code("a@example.com")["code"]
    with pytest.raises(BackendError) as info:
        store.confirm_email_code(_confirm(store, challenge, code, **{field: value}))
    assert info.value.code == "invalid_argument"
    assert info.value.message.startswith(f"{field}: ")


def test_session_lookup_not_found(store):
    with pytest.raises(BackendError) as info:
        store.session_record("ds_missing")
    assert (info.value.status, info.value.code) == (404, "session_not_found")


def test_dev_login_code_unknown_email(store):
    with pytest.raises(BackendError) as info:
        store.dev_login_code("nobody@example.com")
    assert info.value.code == "not_found"


# --- user.account / profile / settings ---------------------------------------------


def test_unknown_user_is_not_found(h):
    err = h.fails(Caller("usr_ghost"), "user.account.get", {})
    assert (err.status, err.code) == (404, "not_found")


def test_profile_update(h, clock):
    user = h.login("alice@example.com")
    clock.advance(5)
    body = h.call(
        user,
        "user.profile.update",
        {"display_name": "  Alice  ", "avatar_url": "https://example.com/a.png"},
    ).body["account"]
    assert body["display_name"] == "Alice"
    assert body["avatar_url"] == "https://example.com/a.png"
    assert body["updated_at_ms"] == clock.now
    # absent = unchanged; "" clears the avatar
    body = h.call(user, "user.profile.update", {"avatar_url": ""}).body["account"]
    assert body["display_name"] == "Alice"
    assert "avatar_url" not in body


@pytest.mark.parametrize(
    ("req", "field"),
    [
        ({"display_name": "   "}, "display_name"),
        ({"display_name": "x" * 65}, "display_name"),
        ({"display_name": "tab\there"}, "display_name"),
        ({"avatar_url": "ftp://example.com/a.png"}, "avatar_url"),
    ],
)
def test_profile_update_validation(h, req, field):
    user = h.login("alice@example.com")
    err = h.fails(user, "user.profile.update", req)
    assert err.code == "invalid_argument"
    assert err.message.startswith(f"{field}: ")


def test_settings_update(h):
    user = h.login("alice@example.com")
    settings = h.call(
        user,
        "user.settings.update",
        {
            "preferred_language": "pt-BR",
            "time_zone": "America/Argentina/Buenos_Aires",
            "email_notifications_enabled": False,
            "muted_notification_kinds": ["lobby.invite.received", "lobby.invite.received"],
        },
    ).body["settings"]
    assert settings == {
        "preferred_language": "pt-BR",
        "time_zone": "America/Argentina/Buenos_Aires",
        "email_notifications_enabled": False,
        "push_notifications_enabled": True,
        "muted_notification_kinds": ["lobby.invite.received"],
    }
    # absent fields stay; an empty list unmutes everything
    settings = h.call(user, "user.settings.update", {"muted_notification_kinds": []}).body[
        "settings"
    ]
    assert settings["email_notifications_enabled"] is False
    assert settings["muted_notification_kinds"] == []
    account = h.call(user, "user.account.get", {}).body["account"]
    assert account["preferred_language"] == "pt-BR"


@pytest.mark.parametrize(
    ("req", "field"),
    [
        ({"preferred_language": "12"}, "preferred_language"),
        ({"time_zone": "Europe/Berlin/Mitte/Deep"}, "time_zone"),
        (
            {"muted_notification_kinds": ["lobby.invite.received", "nope"]},
            "muted_notification_kinds[1]",
        ),
    ],
)
def test_settings_update_validation(h, req, field):
    user = h.login("alice@example.com")
    err = h.fails(user, "user.settings.update", req)
    assert err.code == "invalid_argument"
    assert err.message.startswith(f"{field}: ")


# --- user.sessions ---------------------------------------------------------------------


def test_sessions_list_pages_and_marks_current(h, clock):
    sessions = []
    for _ in range(3):
        clock.advance(1000)
        sessions.append(h.login("alice@example.com"))
    current = sessions[1]
    first = h.call(current, "user.sessions.list", {"page_size": 2}).body
    assert [s["device_session_id"] for s in first["sessions"]] == [
        sessions[2].device_session_id,
        sessions[1].device_session_id,
    ]
    assert [s["is_current"] for s in first["sessions"]] == [False, True]
    assert first["sessions"][0]["status"] == "Active"
    assert first["sessions"][0]["revoked_at_ms"] == 0
    second = h.call(
        current, "user.sessions.list", {"page_size": 2, "page_token": first["next_page_token"]}
    ).body
    assert [s["device_session_id"] for s in second["sessions"]] == [sessions[0].device_session_id]
    assert "next_page_token" not in second
    everything = h.call(current, "user.sessions.list", {}).body
    assert len(everything["sessions"]) == 3
    assert "next_page_token" not in everything


def test_sessions_list_last_seen_moves(h, clock):
    user = h.login("alice@example.com")
    clock.advance(60_000)
    [session] = h.call(user, "user.sessions.list", {}).body["sessions"]
    assert session["last_seen_at_ms"] == clock.now
    assert session["created_at_ms"] == clock.now - 60_000


@pytest.mark.parametrize(
    ("req", "field"),
    [({"page_size": -1}, "page_size"), ({"page_token": "garbage"}, "page_token")],
)
def test_pagination_validation(h, req, field):
    user = h.login("alice@example.com")
    err = h.fails(user, "user.sessions.list", req)
    assert err.code == "invalid_argument"
    assert err.message.startswith(f"{field}: ")


def test_sessions_revoke_publishes_a_revoked_snapshot(h, store, clock):
    phone = h.login("alice@example.com")
    laptop = h.login("alice@example.com")
    clock.advance(10)
    result = h.call(phone, "user.sessions.revoke", {"device_session_id": laptop.device_session_id})
    session = result.body["session"]
    assert session["status"] == "Revoked"
    assert session["revoked_at_ms"] == clock.now
    [snapshot] = result.outbox.sessions
    assert snapshot.device_session_id == laptop.device_session_id
    assert snapshot.status is SessionStatus.REVOKED
    assert snapshot.revoked_at_ms == clock.now
    assert snapshot.revoke_reason == REVOKE_REASON_ONE
    assert store.session_record(laptop.device_session_id) == snapshot
    # revoking again changes nothing and publishes nothing
    again = h.call(phone, "user.sessions.revoke", {"device_session_id": laptop.device_session_id})
    assert again.outbox.empty


def test_sessions_revoke_other_users_session_is_not_found(h):
    alice = h.login("alice@example.com")
    bob = h.login("bob@example.com")
    err = h.fails(alice, "user.sessions.revoke", {"device_session_id": bob.device_session_id})
    assert (err.status, err.code) == (404, "not_found")
    err = h.fails(alice, "user.sessions.revoke", {})
    assert err.code == "invalid_argument"
    assert err.message.startswith("device_session_id: ")


def test_sessions_revoke_all_keep_current(h, store):
    sessions = [h.login("alice@example.com") for _ in range(3)]
    bob = h.login("bob@example.com")
    current = sessions[0]
    result = h.call(current, "user.sessions.revoke_all", {"keep_current": True})
    others = [s.device_session_id for s in sessions[1:]]
    assert result.body == {"revoked_count": 2, "revoked_device_session_ids": others}
    assert [r.device_session_id for r in result.outbox.sessions] == others
    assert all(r.status is SessionStatus.REVOKED for r in result.outbox.sessions)
    assert all(r.revoke_reason == REVOKE_REASON_ALL for r in result.outbox.sessions)
    assert not store.session_record(current.device_session_id).revoked
    assert not store.session_record(bob.device_session_id).revoked
    # then everything, the current session included
    result = h.call(current, "user.sessions.revoke_all", {"keep_current": False})
    assert result.body["revoked_device_session_ids"] == [current.device_session_id]
    assert store.session_record(current.device_session_id).revoked


def test_sessions_revoke_all_keep_current_needs_the_session_header(h):
    user = h.login("alice@example.com")
    err = h.fails(Caller(user.user_id), "user.sessions.revoke_all", {"keep_current": True})
    assert err.code == "invalid_argument"
    assert err.message.startswith("keep_current: ")
