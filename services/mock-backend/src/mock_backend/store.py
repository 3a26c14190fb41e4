"""The mock backend's domain: accounts, login challenges, sessions, games, lobby.

Pure and in-memory: no I/O, no clock or randomness it was not given. Every
operation either raises a ``BackendError`` (and leaves nothing to publish) or
returns a ``Result``: the JSON answer (the response table in the FlatBuffers
JSON mapping) plus an ``Outbox`` of session snapshots and notifications that
the HTTP layer publishes to the gateway's Redis streams.

Requests are JSON-mapping dicts (the HTTP layer has already checked their
shape against the schema); a missing key means "absent". The store checks
meaning: lengths, ranges, permissions, states.

Notification rules (the ``notification.*Event`` fields are in ``fields``):

* public-game application -> auto-approved; the applicant gets
  ``lobby.application.approved`` and ``lobby.race_name.registered``;
* private-game application -> ``Pending``; the game owner gets
  ``lobby.application.submitted`` (an owner applying to their own game is
  approved at once, as for a public game);
* invite redeemed -> the redeemer gets ``lobby.race_name.registered``;
* a game that starts rejects its still-pending applications; each applicant
  gets ``lobby.application.rejected``;
* dev: invite created -> the invitee gets ``lobby.invite.received``; an
  application approved/rejected by hand -> approved + race_name.registered /
  rejected.

Notifications are user-targeted (no device_session_id) and skipped when the
recipient turned push notifications off or muted that kind.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeVar

from edgecore.catalog import MESSAGE_TYPES, NOTIFICATION_KINDS, notification_table_name
from edgecore.sessions import SessionRecord, SessionStatus
from mock_backend import engine
from mock_backend.errors import (
    BackendError,
    already_invited,
    already_member,
    application_exists,
    forbidden,
    game_full,
    invalid_argument,
    invalid_state,
    not_found,
    race_name_taken,
    stale_turn,
    turn_not_available,
)
from mock_backend.report import build_report

__all__ = [
    "CHALLENGE_TTL_MS",
    "DEFAULT_MAX_PLAYERS",
    "DEFAULT_MIN_PLAYERS",
    "DEFAULT_PAGE_SIZE",
    "INVITE_TTL_MS",
    "MAX_CODE_ATTEMPTS",
    "MAX_PAGE_SIZE",
    "MAX_PLAYERS_LIMIT",
    "Caller",
    "Notification",
    "Outbox",
    "Result",
    "Store",
    "normalise_email",
]

CHALLENGE_TTL_MS: Final = 10 * 60 * 1000
MAX_CODE_ATTEMPTS: Final = 5
INVITE_TTL_MS: Final = 7 * 24 * 3600 * 1000
DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100
DEFAULT_MIN_PLAYERS: Final = 2
DEFAULT_MAX_PLAYERS: Final = 8
MAX_PLAYERS_LIMIT: Final = 64
DEFAULT_TURN_INTERVAL_SECONDS: Final = 24 * 3600
MAX_TURN_INTERVAL_SECONDS: Final = 30 * 24 * 3600
DEFAULT_ENGINE_VERSION: Final = "mock-1"
MAX_ORDERS: Final = 100
MAX_COMMAND_ARGS: Final = 32
REVOKE_REASON_ONE: Final = "revoked_by_user"
REVOKE_REASON_ALL: Final = "revoked_all_by_user"

_EMAIL: Final = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_LANGUAGE: Final = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_TIME_ZONE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}")
_RACE_NAME: Final = re.compile(r"[^\W_](?:[\w' -]{0,30}[^\W_])?")
_INVITE_CODE_ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CLIENT_METADATA_KEYS: Final = (
    "app_name", "app_version", "platform", "device_name", "user_agent", "last_ip",
)  # fmt: skip
_PAGE_TOKEN_PREFIX: Final = "offset:"  # noqa: S105 - not a secret

_T = TypeVar("_T")


# --- results ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller of a user route (X-User-Id, X-Device-Session-Id)."""

    user_id: str
    device_session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A client event to publish: ``kind`` is the event_type, ``fields`` the event table."""

    user_id: str
    kind: str
    event_id: str
    fields: Mapping[str, Any]
    device_session_id: str | None = None

    @property
    def table(self) -> str:
        return "notification." + notification_table_name(self.kind)

    def __repr__(self) -> str:
        return f"Notification(kind={self.kind!r}, user_id={self.user_id!r})"


@dataclass(slots=True)
class Outbox:
    sessions: list[SessionRecord] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.sessions and not self.notifications


@dataclass(frozen=True, slots=True)
class Result:
    body: dict[str, Any]
    outbox: Outbox = field(default_factory=Outbox)


# --- entities -----------------------------------------------------------------


@dataclass(slots=True)
class _Settings:
    preferred_language: str
    time_zone: str
    email_notifications_enabled: bool = True
    push_notifications_enabled: bool = True
    muted_notification_kinds: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Account:
    user_id: str
    email: str
    display_name: str
    settings: _Settings
    created_at_ms: int
    updated_at_ms: int
    avatar_url: str | None = None


@dataclass(slots=True, repr=False)
class _Challenge:
    challenge_id: str
    email: str
    code: str
    preferred_language: str
    expires_at_ms: int
    attempts: int = 0


@dataclass(slots=True, repr=False)
class _Session:
    seq: int
    device_session_id: str
    user_id: str
    client_public_key: str
    created_at_ms: int
    last_seen_at_ms: int
    client_metadata: dict[str, str]
    revoked_at_ms: int | None = None
    revoke_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at_ms is None


@dataclass(slots=True)
class _Member:
    user_id: str
    race_name: str
    joined_at_ms: int


@dataclass(slots=True)
class _Game:
    seq: int
    game_id: str
    name: str
    owner_user_id: str
    visibility: str
    min_players: int
    max_players: int
    settings: dict[str, Any]
    created_at_ms: int
    status: str = "Draft"
    current_turn: int = 0
    started_at_ms: int = 0
    members: list[_Member] = field(default_factory=list)
    turn_generated_at_ms: dict[int, int] = field(default_factory=dict)
    orders: dict[tuple[str, int], list[str]] = field(default_factory=dict)

    def member(self, user_id: str) -> _Member | None:
        return next((m for m in self.members if m.user_id == user_id), None)

    @property
    def full(self) -> bool:
        return len(self.members) >= self.max_players


@dataclass(slots=True)
class _Application:
    seq: int
    application_id: str
    game_id: str
    applicant_user_id: str
    race_name: str
    message: str | None
    created_at_ms: int
    status: str = "Pending"
    decided_at_ms: int = 0


@dataclass(slots=True)
class _Invite:
    seq: int
    invite_id: str
    game_id: str
    inviter_user_id: str
    invitee_user_id: str
    code: str
    created_at_ms: int
    expires_at_ms: int
    status: str = "Pending"


# --- helpers ------------------------------------------------------------------


def normalise_email(value: str) -> str:
    return value.strip().lower()


def _system_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _new_uuid() -> str:
    return uuid.uuid4().hex


def _opt_str(req: Mapping[str, Any], name: str) -> str | None:
    value = req.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_argument(name, "must be a string")
    return value


def _req_str(req: Mapping[str, Any], name: str) -> str:
    value = _opt_str(req, name)
    if value is None or not value.strip():
        raise invalid_argument(name, "is required")
    return value.strip()


def _int(req: Mapping[str, Any], name: str) -> int:
    value = req.get(name, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_argument(name, "must be an integer")
    return value


def _opt_bool(req: Mapping[str, Any], name: str) -> bool | None:
    value = req.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid_argument(name, "must be a boolean")
    return value


def _str_list(req: Mapping[str, Any], name: str) -> list[str] | None:
    value = req.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid_argument(name, "must be a list of strings")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise invalid_argument(f"{name}[{index}]", "must be a string")
    return list(value)


def _text(field_name: str, value: str, *, max_len: int, min_len: int = 1) -> str:
    value = value.strip()
    if len(value) < min_len:
        raise invalid_argument(field_name, "must not be empty")
    if len(value) > max_len:
        raise invalid_argument(field_name, f"must be at most {max_len} characters")
    if not value.isprintable():
        raise invalid_argument(field_name, "must not contain control characters")
    return value


def _check_language(field_name: str, value: str) -> str:
    if len(value) > 35 or not _LANGUAGE.fullmatch(value):
        raise invalid_argument(field_name, "must be a BCP 47 language tag such as 'en' or 'pt-BR'")
    return value


def _check_time_zone(field_name: str, value: str) -> str:
    if len(value) > 64 or not _TIME_ZONE.fullmatch(value):
        raise invalid_argument(field_name, "must be an IANA time zone name such as 'Europe/Berlin'")
    return value


def _check_race_name(field_name: str, value: str | None) -> str:
    if value is None or not value.strip():
        raise invalid_argument(field_name, "is required")
    value = value.strip()
    if "  " in value or not _RACE_NAME.fullmatch(value) or len(value) < 2:
        raise invalid_argument(
            field_name,
            "must be 2 to 32 letters, digits, spaces, apostrophes, '-' or '_', "
            "starting and ending with a letter or digit",
        )
    return value


def _check_public_key(value: str) -> str:
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 32:
        raise invalid_argument(
            "client_public_key", "must be the standard base64 of a raw 32-byte Ed25519 public key"
        )
    return value


def _page_size(req: Mapping[str, Any]) -> int:
    size = _int(req, "page_size")
    if size < 0:
        raise invalid_argument("page_size", "must not be negative")
    if size == 0:
        return DEFAULT_PAGE_SIZE
    return min(size, MAX_PAGE_SIZE)


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_PAGE_TOKEN_PREFIX}{offset}".encode()).decode().rstrip("=")


def _decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    problem = invalid_argument("page_token", "is not a next_page_token of this list")
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise problem from None
    number = text.removeprefix(_PAGE_TOKEN_PREFIX)
    if not text.startswith(_PAGE_TOKEN_PREFIX) or not number.isdigit() or len(number) > 9:
        raise problem
    return int(number)


def _paginate(items: Sequence[_T], req: Mapping[str, Any]) -> tuple[list[_T], str | None]:
    size = _page_size(req)
    offset = _decode_page_token(_opt_str(req, "page_token"))
    page = list(items[offset : offset + size])
    more = offset + size < len(items)
    return page, (_encode_page_token(offset + size) if more else None)


def _with_token(body: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token:
        body["next_page_token"] = token
    return body


def _enum_name(field_name: str, value: Any, names: Sequence[str]) -> str:
    if isinstance(value, str) and value in names:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    raise invalid_argument(field_name, f"must be one of {', '.join(names)}")


_GAME_STATUSES: Final = (
    "Unspecified", "Draft", "EnrollmentOpen", "Starting", "Running", "Paused", "Finished",
    "Cancelled",
)  # fmt: skip
_VISIBILITIES: Final = ("Public", "Private")


# --- the store ----------------------------------------------------------------


class Store:
    """All mock backend state. Not thread-safe: callers serialise access."""

    def __init__(
        self,
        *,
        clock_ms: Callable[[], int] = _system_clock_ms,
        new_id: Callable[[], str] = _new_uuid,
        rng: random.Random | None = None,
        fixed_login_code: str | None = None,
    ) -> None:
        self._now = clock_ms
        self._new_id = new_id
        self._rng = rng if rng is not None else random.SystemRandom()
        self._fixed_code = fixed_login_code
        self._seq = 0
        self._accounts: dict[str, _Account] = {}
        self._accounts_by_email: dict[str, str] = {}
        self._challenges: dict[str, _Challenge] = {}
        self._last_code: dict[str, tuple[str, str]] = {}
        self._sessions: dict[str, _Session] = {}
        self._games: dict[str, _Game] = {}
        self._applications: dict[str, _Application] = {}
        self._invites: dict[str, _Invite] = {}
        self._invites_by_code: dict[str, str] = {}
        self._handlers: dict[str, Callable[[_Account, Caller, Mapping[str, Any]], Result]] = {
            "user.account.get": self._account_get,
            "user.profile.update": self._profile_update,
            "user.settings.update": self._settings_update,
            "user.sessions.list": self._sessions_list,
            "user.sessions.revoke": self._sessions_revoke,
            "user.sessions.revoke_all": self._sessions_revoke_all,
            "user.games.command": self._games_command,
            "user.games.order": self._games_order,
            "user.games.report": self._games_report,
            "lobby.my.games.list": self._my_games_list,
            "lobby.my.applications.list": self._my_applications_list,
            "lobby.my.invites.list": self._my_invites_list,
            "lobby.public.games.list": self._public_games_list,
            "lobby.game.create": self._game_create,
            "lobby.game.open-enrollment": self._game_open_enrollment,
            "lobby.application.submit": self._application_submit,
            "lobby.invite.redeem": self._invite_redeem,
            "lobby.invite.decline": self._invite_decline,
        }
        assert set(self._handlers) == set(MESSAGE_TYPES)

    # --- plumbing -------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{self._new_id()}"

    def _notify(self, out: Outbox, user_id: str, kind: str, fields: dict[str, Any]) -> None:
        assert kind in NOTIFICATION_KINDS
        account = self._accounts.get(user_id)
        if account is not None:
            settings = account.settings
            if not settings.push_notifications_enabled:
                return
            if kind in settings.muted_notification_kinds:
                return
        out.notifications.append(
            Notification(user_id=user_id, kind=kind, event_id=str(uuid.uuid4()), fields=fields)
        )

    def _account(self, user_id: str) -> _Account:
        account = self._accounts.get(user_id)
        if account is None:
            raise not_found("account")
        return account

    def _game(self, game_id: str) -> _Game:
        game = self._games.get(game_id)
        if game is None:
            raise not_found("game")
        return game

    def _display_name(self, user_id: str) -> str:
        account = self._accounts.get(user_id)
        return account.display_name if account else ""

    # --- public auth ----------------------------------------------------------

    def _expire_challenges(self, now: int) -> None:
        # Every challenge lives CHALLENGE_TTL_MS, so insertion order is expiry order:
        # drop from the front. Rebuilding the dict per call made each call O(challenges).
        challenges = self._challenges
        while challenges:
            oldest = next(iter(challenges.values()))
            if oldest.expires_at_ms > now:
                break
            del challenges[oldest.challenge_id]

    def send_email_code(self, req: Mapping[str, Any]) -> Result:
        """``{"email", "preferred_language"}`` -> ``{"challenge_id"}``."""
        raw_email = _opt_str(req, "email")
        if raw_email is None or not raw_email.strip():
            raise invalid_argument("email", "is required")
        email = normalise_email(raw_email)
        if len(email) > 254 or not _EMAIL.fullmatch(email):
            raise BackendError(400, "invalid_email", "email is not a valid e-mail address")
        language = (_opt_str(req, "preferred_language") or "").strip() or "en"
        _check_language("preferred_language", language)
        now = self._now()
        self._expire_challenges(now)
        code = self._fixed_code or f"{self._rng.randrange(1_000_000):06d}"
        challenge = _Challenge(
            challenge_id=self._id("ch"),
            email=email,
            code=code,
            preferred_language=language,
            expires_at_ms=now + CHALLENGE_TTL_MS,
        )
        self._challenges[challenge.challenge_id] = challenge
        self._last_code[email] = (code, challenge.challenge_id)
        return Result({"challenge_id": challenge.challenge_id})

    def confirm_email_code(
        self, req: Mapping[str, Any], *, client_metadata: Mapping[str, str] | None = None
    ) -> Result:
        """``{challenge_id, code, client_public_key, time_zone}`` -> ``{device_session_id}``.

        Creates the account on first login and always a new device session,
        whose snapshot goes to the outbox.
        """
        challenge_id = _req_str(req, "challenge_id")
        code = _req_str(req, "code")
        if len(code) > 32:
            raise invalid_argument("code", "must be at most 32 characters")
        public_key = _check_public_key(_req_str(req, "client_public_key"))
        time_zone = _check_time_zone("time_zone", _req_str(req, "time_zone"))
        now = self._now()
        challenge = self._challenges.get(challenge_id)
        if challenge is None:
            raise BackendError(404, "challenge_not_found", "login challenge not found")
        if challenge.expires_at_ms <= now:
            del self._challenges[challenge_id]
            raise BackendError(
                410, "challenge_expired", "login challenge has expired; request a new code"
            )
        if challenge.attempts >= MAX_CODE_ATTEMPTS:
            raise _too_many_attempts()
        if not hmac.compare_digest(code.encode(), challenge.code.encode()):
            challenge.attempts += 1
            if challenge.attempts >= MAX_CODE_ATTEMPTS:
                raise _too_many_attempts()
            left = MAX_CODE_ATTEMPTS - challenge.attempts
            raise BackendError(
                400, "invalid_code", f"the code is not correct ({left} attempts left)"
            )
        del self._challenges[challenge_id]
        account = self._account_for_login(challenge, time_zone, now)
        metadata = {
            k: v[:256]
            for k, v in (client_metadata or {}).items()
            if k in _CLIENT_METADATA_KEYS and v
        }
        session = _Session(
            seq=self._next_seq(),
            device_session_id=self._id("ds"),
            user_id=account.user_id,
            client_public_key=public_key,
            created_at_ms=now,
            last_seen_at_ms=now,
            client_metadata=metadata,
        )
        self._sessions[session.device_session_id] = session
        return Result(
            {"device_session_id": session.device_session_id},
            Outbox(sessions=[self._record(session)]),
        )

    def _account_for_login(self, challenge: _Challenge, time_zone: str, now: int) -> _Account:
        user_id = self._accounts_by_email.get(challenge.email)
        if user_id is not None:
            return self._accounts[user_id]
        local = challenge.email.split("@", 1)[0].split("+", 1)[0]
        account = _Account(
            user_id=self._id("usr"),
            email=challenge.email,
            display_name=local[:64] or "player",
            settings=_Settings(
                preferred_language=challenge.preferred_language, time_zone=time_zone
            ),
            created_at_ms=now,
            updated_at_ms=now,
        )
        self._accounts[account.user_id] = account
        self._accounts_by_email[account.email] = account.user_id
        return account

    # --- sessions (internal) --------------------------------------------------

    def session_record(self, device_session_id: str) -> SessionRecord:
        session = self._sessions.get(device_session_id)
        if session is None:
            raise BackendError(404, "session_not_found", "device session not found")
        return self._record(session)

    @staticmethod
    def _record(session: _Session) -> SessionRecord:
        return SessionRecord(
            device_session_id=session.device_session_id,
            user_id=session.user_id,
            client_public_key=session.client_public_key,
            status=SessionStatus.ACTIVE if session.active else SessionStatus.REVOKED,
            created_at_ms=session.created_at_ms,
            revoked_at_ms=session.revoked_at_ms,
            revoke_reason=session.revoke_reason,
            client_metadata=MappingProxyType(dict(session.client_metadata)),
        )

    # --- user routes ----------------------------------------------------------

    def execute(self, message_type: str, caller: Caller, req: Mapping[str, Any]) -> Result:
        """Run one of the 18 message types for ``caller``."""
        handler = self._handlers.get(message_type)
        if handler is None:
            raise BackendError(404, "not_found", "route not found")
        account = self._account(caller.user_id)
        session = self._sessions.get(caller.device_session_id or "")
        if session is not None and session.user_id == caller.user_id and session.active:
            session.last_seen_at_ms = self._now()
        return handler(account, caller, req)

    @staticmethod
    def _account_json(a: _Account) -> dict[str, Any]:
        out: dict[str, Any] = {
            "user_id": a.user_id,
            "email": a.email,
            "display_name": a.display_name,
            "preferred_language": a.settings.preferred_language,
            "time_zone": a.settings.time_zone,
            "created_at_ms": a.created_at_ms,
        }
        if a.avatar_url:
            out["avatar_url"] = a.avatar_url
        out["updated_at_ms"] = a.updated_at_ms
        return out

    @staticmethod
    def _settings_json(s: _Settings) -> dict[str, Any]:
        return {
            "preferred_language": s.preferred_language,
            "time_zone": s.time_zone,
            "email_notifications_enabled": s.email_notifications_enabled,
            "push_notifications_enabled": s.push_notifications_enabled,
            "muted_notification_kinds": list(s.muted_notification_kinds),
        }

    def _account_get(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        return Result(
            {
                "account": self._account_json(account),
                "settings": self._settings_json(account.settings),
            }
        )

    def _profile_update(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        display_name = _opt_str(req, "display_name")
        avatar_url = _opt_str(req, "avatar_url")
        if display_name is not None:
            display_name = _text("display_name", display_name, max_len=64)
        if avatar_url:
            avatar_url = avatar_url.strip()
            if len(avatar_url) > 2048 or not avatar_url.startswith(("https://", "http://")):
                raise invalid_argument(
                    "avatar_url", "must be an http(s) URL of at most 2048 characters"
                )
        if display_name is not None:
            account.display_name = display_name
        if avatar_url is not None:
            account.avatar_url = avatar_url or None
        account.updated_at_ms = self._now()
        return Result({"account": self._account_json(account)})

    def _settings_update(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        language = _opt_str(req, "preferred_language")
        time_zone = _opt_str(req, "time_zone")
        email_on = _opt_bool(req, "email_notifications_enabled")
        push_on = _opt_bool(req, "push_notifications_enabled")
        muted = _str_list(req, "muted_notification_kinds")
        if language is not None:
            language = _check_language("preferred_language", language.strip())
        if time_zone is not None:
            time_zone = _check_time_zone("time_zone", time_zone.strip())
        if muted is not None:
            for index, kind in enumerate(muted):
                if kind not in NOTIFICATION_KINDS:
                    raise invalid_argument(
                        f"muted_notification_kinds[{index}]", "is not a notification kind"
                    )
            muted = list(dict.fromkeys(muted))
        s = account.settings
        if language is not None:
            s.preferred_language = language
        if time_zone is not None:
            s.time_zone = time_zone
        if email_on is not None:
            s.email_notifications_enabled = email_on
        if push_on is not None:
            s.push_notifications_enabled = push_on
        if muted is not None:
            s.muted_notification_kinds = muted
        account.updated_at_ms = self._now()
        return Result({"settings": self._settings_json(s)})

    def _session_json(self, s: _Session, caller: Caller) -> dict[str, Any]:
        return {
            "device_session_id": s.device_session_id,
            "status": "Active" if s.active else "Revoked",
            "created_at_ms": s.created_at_ms,
            "last_seen_at_ms": s.last_seen_at_ms,
            "revoked_at_ms": s.revoked_at_ms or 0,
            "client": {
                k: s.client_metadata[k] for k in _CLIENT_METADATA_KEYS if k in s.client_metadata
            },
            "is_current": s.device_session_id == caller.device_session_id,
        }

    def _user_sessions(self, user_id: str) -> list[_Session]:
        mine = [s for s in self._sessions.values() if s.user_id == user_id]
        return sorted(mine, key=lambda s: s.seq, reverse=True)

    def _sessions_list(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        page, token = _paginate(self._user_sessions(account.user_id), req)
        body = {"sessions": [self._session_json(s, caller) for s in page]}
        return Result(_with_token(body, token))

    def _revoke(self, session: _Session, reason: str, out: Outbox) -> None:
        session.revoked_at_ms = self._now()
        session.revoke_reason = reason
        out.sessions.append(self._record(session))

    def _sessions_revoke(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        session_id = _req_str(req, "device_session_id")
        session = self._sessions.get(session_id)
        if session is None or session.user_id != account.user_id:
            raise not_found("device session")
        out = Outbox()
        if session.active:  # revoking a revoked session is a no-op
            self._revoke(session, REVOKE_REASON_ONE, out)
        return Result({"session": self._session_json(session, caller)}, out)

    def _sessions_revoke_all(
        self, account: _Account, caller: Caller, req: Mapping[str, Any]
    ) -> Result:
        keep_current = bool(_opt_bool(req, "keep_current"))
        keep = caller.device_session_id if keep_current else None
        if keep_current and not keep:
            raise invalid_argument(
                "keep_current", "needs the X-Device-Session-Id of the calling session"
            )
        out = Outbox()
        revoked: list[str] = []
        for session in sorted(self._user_sessions(account.user_id), key=lambda s: s.seq):
            if session.active and session.device_session_id != keep:
                self._revoke(session, REVOKE_REASON_ALL, out)
                revoked.append(session.device_session_id)
        return Result({"revoked_count": len(revoked), "revoked_device_session_ids": revoked}, out)

    # --- games ----------------------------------------------------------------

    def _member_game(self, caller: Caller, game_id: str) -> tuple[_Game, _Member]:
        game = self._game(game_id)
        member = game.member(caller.user_id)
        if member is None:
            raise forbidden("you are not a member of this game")
        return game, member

    def _running_game(self, caller: Caller, req: Mapping[str, Any]) -> tuple[_Game, _Member]:
        game, member = self._member_game(caller, _req_str(req, "game_id"))
        if game.status != "Running":
            raise invalid_state(f"the game is {game.status}, not Running")
        return game, member

    def _report(self, game: _Game, viewer: str, turn: int) -> dict[str, Any]:
        return build_report(
            game_id=game.game_id,
            turn=turn,
            members=[(m.user_id, m.race_name) for m in game.members],
            viewer_user_id=viewer,
            generated_at_ms=game.turn_generated_at_ms.get(turn, game.created_at_ms),
        )

    def _games_command(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        game, member = self._running_game(caller, req)
        turn = _int(req, "turn")
        if turn not in (0, game.current_turn):
            raise stale_turn(turn, game.current_turn)
        command = req.get("command")
        if not isinstance(command, Mapping):
            raise invalid_argument("command", "is required")
        name = (_opt_str(command, "name") or "").strip()
        args = _str_list(command, "args") or []
        if len(args) > MAX_COMMAND_ARGS:
            raise invalid_argument("command.args", f"at most {MAX_COMMAND_ARGS} arguments")
        report = self._report(game, caller.user_id, game.current_turn)
        planets = [
            f"#{p['number']} {p['name']} ({p['x']}, {p['y']})"
            for p in report["planets"]
            if p["kind"] == "Local"
        ]
        orders = game.orders.get((caller.user_id, game.current_turn), [])
        outcome = engine.run_command(
            name,
            args,
            turn=game.current_turn,
            race_name=member.race_name,
            planet_lines=planets,
            order_lines=orders,
        )
        return Result(
            {
                "game_id": game.game_id,
                "turn": game.current_turn,
                "accepted": outcome.accepted,
                "message": outcome.message,
                "output": outcome.output,
            }
        )

    def _games_order(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        game, _ = self._running_game(caller, req)
        turn = _int(req, "turn")
        if turn != game.current_turn:
            raise stale_turn(turn, game.current_turn)
        orders = req.get("orders") or []
        if not isinstance(orders, list):
            raise invalid_argument("orders", "must be a list")
        if len(orders) > MAX_ORDERS:
            raise invalid_argument("orders", f"at most {MAX_ORDERS} orders per turn")
        results: list[dict[str, Any]] = []
        recorded: list[str] = []
        for index, order in enumerate(orders):
            if not isinstance(order, Mapping):
                raise invalid_argument(f"orders[{index}]", "must be an object")
            name = (_opt_str(order, "name") or "").strip()
            args = _str_list(order, "args") or []
            accepted, message = engine.check_order(name)
            results.append({"index": index, "accepted": accepted, "message": message})
            if accepted:
                recorded.append(" ".join([name, *args]))
        game.orders[(caller.user_id, turn)] = recorded
        return Result(
            {
                "game_id": game.game_id,
                "turn": turn,
                "accepted_count": len(recorded),
                "results": results,
            }
        )

    def _games_report(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        game, _ = self._member_game(caller, _req_str(req, "game_id"))
        turn = _int(req, "turn")
        if turn < 0:
            raise invalid_argument("turn", "must not be negative")
        if turn > game.current_turn:
            raise turn_not_available(turn, game.current_turn)
        return Result(self._report(game, caller.user_id, turn))

    # --- lobby views ----------------------------------------------------------

    def _game_json(self, g: _Game, viewer: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "game_id": g.game_id,
            "name": g.name,
            "owner_user_id": g.owner_user_id,
            "status": g.status,
            "visibility": g.visibility,
            "min_players": g.min_players,
            "max_players": g.max_players,
            "player_count": len(g.members),
            "current_turn": g.current_turn,
            "created_at_ms": g.created_at_ms,
            "owner_display_name": self._display_name(g.owner_user_id),
        }
        if g.settings.get("description"):
            out["description"] = g.settings["description"]
        member = g.member(viewer) if viewer else None
        if member is not None:
            out["my_race_name"] = member.race_name
        out["started_at_ms"] = g.started_at_ms
        out["next_turn_at_ms"] = 0  # turns advance only through the dev endpoint
        return out

    def _application_json(self, a: _Application) -> dict[str, Any]:
        game = self._games[a.game_id]
        out: dict[str, Any] = {
            "application_id": a.application_id,
            "game_id": a.game_id,
            "game_name": game.name,
            "applicant_user_id": a.applicant_user_id,
            "applicant_display_name": self._display_name(a.applicant_user_id),
            "race_name": a.race_name,
            "status": a.status,
        }
        if a.message:
            out["message"] = a.message
        out["created_at_ms"] = a.created_at_ms
        out["decided_at_ms"] = a.decided_at_ms
        return out

    def _invite_json(self, i: _Invite) -> dict[str, Any]:
        self._expire_invite(i)
        game = self._games[i.game_id]
        return {
            "invite_id": i.invite_id,
            "game_id": i.game_id,
            "game_name": game.name,
            "inviter_user_id": i.inviter_user_id,
            "inviter_display_name": self._display_name(i.inviter_user_id),
            "invitee_user_id": i.invitee_user_id,
            "status": i.status,
            "code": i.code,
            "created_at_ms": i.created_at_ms,
            "expires_at_ms": i.expires_at_ms,
        }

    def _expire_invite(self, i: _Invite) -> None:
        if i.status == "Pending" and 0 < i.expires_at_ms <= self._now():
            i.status = "Expired"

    def _my_games_list(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        uid = account.user_id
        games = [g for g in self._games.values() if g.owner_user_id == uid or g.member(uid)]
        games.sort(key=lambda g: g.seq, reverse=True)
        page, token = _paginate(games, req)
        return Result(_with_token({"games": [self._game_json(g, uid) for g in page]}, token))

    def _my_applications_list(
        self, account: _Account, caller: Caller, req: Mapping[str, Any]
    ) -> Result:
        apps = [a for a in self._applications.values() if a.applicant_user_id == account.user_id]
        apps.sort(key=lambda a: a.seq, reverse=True)
        page, token = _paginate(apps, req)
        body = {"applications": [self._application_json(a) for a in page]}
        return Result(_with_token(body, token))

    def _my_invites_list(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        invites = [i for i in self._invites.values() if i.invitee_user_id == account.user_id]
        invites.sort(key=lambda i: i.seq, reverse=True)
        page, token = _paginate(invites, req)
        return Result(_with_token({"invites": [self._invite_json(i) for i in page]}, token))

    def _public_games_list(
        self, account: _Account, caller: Caller, req: Mapping[str, Any]
    ) -> Result:
        wanted = _enum_name("status", req.get("status") or "Unspecified", _GAME_STATUSES)
        games = [
            g
            for g in self._games.values()
            if g.visibility == "Public"
            and g.status != "Draft"
            and wanted in ("Unspecified", g.status)
        ]
        games.sort(key=lambda g: g.seq, reverse=True)
        page, token = _paginate(games, req)
        body = {"games": [self._game_json(g, account.user_id) for g in page]}
        return Result(_with_token(body, token))

    # --- lobby changes --------------------------------------------------------

    def _game_create(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        name = _text("name", _req_str(req, "name"), max_len=80)
        visibility = _enum_name("visibility", req.get("visibility") or "Public", _VISIBILITIES)
        min_players = _int(req, "min_players")
        max_players = _int(req, "max_players")
        if min_players < 0:
            raise invalid_argument("min_players", "must not be negative")
        if max_players < 0:
            raise invalid_argument("max_players", "must not be negative")
        if max_players > MAX_PLAYERS_LIMIT:
            raise invalid_argument("max_players", f"must be at most {MAX_PLAYERS_LIMIT}")
        if min_players > MAX_PLAYERS_LIMIT:
            raise invalid_argument("min_players", f"must be at most {MAX_PLAYERS_LIMIT}")
        max_players = max_players or max(DEFAULT_MAX_PLAYERS, min_players)
        min_players = min_players or min(DEFAULT_MIN_PLAYERS, max_players)
        if min_players > max_players:
            raise invalid_argument("min_players", "must not exceed max_players")
        settings = self._game_settings(req.get("settings"))
        now = self._now()
        game = _Game(
            seq=self._next_seq(),
            game_id=self._id("game"),
            name=name,
            owner_user_id=account.user_id,
            visibility=visibility,
            min_players=min_players,
            max_players=max_players,
            settings=settings,
            created_at_ms=now,
        )
        game.turn_generated_at_ms[0] = now
        self._games[game.game_id] = game
        return Result({"game": self._game_json(game, account.user_id)})

    @staticmethod
    def _game_settings(raw: Any) -> dict[str, Any]:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise invalid_argument("settings", "must be an object")
        description = _opt_str(raw, "description")
        if description is not None:
            description = description.strip()
            if len(description) > 2000:
                raise invalid_argument("settings.description", "must be at most 2000 characters")
        interval = _int(raw, "turn_interval_seconds")
        if not 0 <= interval <= MAX_TURN_INTERVAL_SECONDS:
            raise invalid_argument(
                "settings.turn_interval_seconds",
                f"must be between 0 and {MAX_TURN_INTERVAL_SECONDS}",
            )
        deadline = _int(raw, "enrollment_deadline_ms")
        if deadline < 0:
            raise invalid_argument("settings.enrollment_deadline_ms", "must not be negative")
        engine_version = _opt_str(raw, "engine_version")
        if engine_version is not None:
            engine_version = _text("settings.engine_version", engine_version, max_len=32)
        options_raw = raw.get("options") or []
        if not isinstance(options_raw, list) or len(options_raw) > 64:
            raise invalid_argument("settings.options", "must be a list of at most 64 options")
        options: list[dict[str, str]] = []
        seen: set[str] = set()
        for index, option in enumerate(options_raw):
            where = f"settings.options[{index}]"
            if not isinstance(option, Mapping):
                raise invalid_argument(where, "must be an object")
            opt_name = _text(f"{where}.name", _opt_str(option, "name") or "", max_len=64)
            if opt_name in seen:
                raise invalid_argument(f"{where}.name", "duplicates an earlier option")
            seen.add(opt_name)
            value = _opt_str(option, "value") or ""
            if len(value) > 1024:
                raise invalid_argument(f"{where}.value", "must be at most 1024 characters")
            options.append({"name": opt_name, "value": value})
        return {
            "description": description or "",
            "turn_interval_seconds": interval or DEFAULT_TURN_INTERVAL_SECONDS,
            "enrollment_deadline_ms": deadline,
            "engine_version": engine_version or DEFAULT_ENGINE_VERSION,
            "options": options,
        }

    def _game_open_enrollment(
        self, account: _Account, caller: Caller, req: Mapping[str, Any]
    ) -> Result:
        game = self._game(_req_str(req, "game_id"))
        if game.owner_user_id != account.user_id:
            raise forbidden("only the game owner can open enrollment")
        if game.status != "Draft":
            raise invalid_state(f"the game is {game.status}, not Draft")
        game.status = "EnrollmentOpen"
        return Result({"game": self._game_json(game, account.user_id)})

    def _check_can_join(self, game: _Game, user_id: str, race_name: str, *, skip: str = "") -> None:
        """Raise the first reason ``user_id`` cannot join ``game`` as ``race_name``."""
        if game.member(user_id) is not None:
            raise already_member()
        if game.full:
            raise game_full()
        if game.status != "EnrollmentOpen":
            raise invalid_state(f"the game is {game.status}, not EnrollmentOpen")
        wanted = race_name.casefold()
        taken = {m.race_name.casefold() for m in game.members}
        taken |= {
            a.race_name.casefold()
            for a in self._applications.values()
            if a.game_id == game.game_id and a.status == "Pending" and a.application_id != skip
        }
        if wanted in taken:
            raise race_name_taken(race_name)

    def _join(self, game: _Game, user_id: str, race_name: str, out: Outbox) -> None:
        """Add a member, tell them their race name is registered, start a full game."""
        now = self._now()
        game.members.append(_Member(user_id, race_name, now))
        self._notify(
            out,
            user_id,
            "lobby.race_name.registered",
            {
                "race_name": race_name,
                "game_id": game.game_id,
                "game_name": game.name,
                "registered_at_ms": now,
            },
        )
        if game.full and game.status == "EnrollmentOpen":
            self._start(game, out)

    def _start(self, game: _Game, out: Outbox) -> None:
        now = self._now()
        game.status = "Running"
        game.current_turn = 1
        game.started_at_ms = now
        game.turn_generated_at_ms[1] = now
        for app in self._applications.values():
            if app.game_id == game.game_id and app.status == "Pending":
                self._reject(app, "the game is full and has started", out)

    def _approve(self, app: _Application, game: _Game, out: Outbox) -> None:
        now = self._now()
        app.status = "Approved"
        app.decided_at_ms = now
        self._notify(
            out,
            app.applicant_user_id,
            "lobby.application.approved",
            {
                "application_id": app.application_id,
                "game_id": game.game_id,
                "game_name": game.name,
                "race_name": app.race_name,
                "approved_at_ms": now,
            },
        )
        self._join(game, app.applicant_user_id, app.race_name, out)

    def _reject(self, app: _Application, reason: str | None, out: Outbox) -> None:
        now = self._now()
        app.status = "Rejected"
        app.decided_at_ms = now
        fields: dict[str, Any] = {
            "application_id": app.application_id,
            "game_id": app.game_id,
            "game_name": self._games[app.game_id].name,
            "rejected_at_ms": now,
        }
        if reason:
            fields["reason"] = reason
        self._notify(out, app.applicant_user_id, "lobby.application.rejected", fields)

    def _application_submit(
        self, account: _Account, caller: Caller, req: Mapping[str, Any]
    ) -> Result:
        game = self._game(_req_str(req, "game_id"))
        race_name = _check_race_name("race_name", _opt_str(req, "race_name"))
        message = _opt_str(req, "message")
        if message is not None:
            message = message.strip()
            if len(message) > 500:
                raise invalid_argument("message", "must be at most 500 characters")
        uid = account.user_id
        if any(
            a.game_id == game.game_id and a.applicant_user_id == uid and a.status == "Pending"
            for a in self._applications.values()
        ):
            raise application_exists()
        self._check_can_join(game, uid, race_name)
        now = self._now()
        app = _Application(
            seq=self._next_seq(),
            application_id=self._id("app"),
            game_id=game.game_id,
            applicant_user_id=uid,
            race_name=race_name,
            message=message or None,
            created_at_ms=now,
        )
        self._applications[app.application_id] = app
        out = Outbox()
        if game.visibility == "Public" or game.owner_user_id == uid:
            self._approve(app, game, out)
        else:
            fields: dict[str, Any] = {
                "application_id": app.application_id,
                "game_id": game.game_id,
                "game_name": game.name,
                "applicant_user_id": uid,
                "applicant_display_name": account.display_name,
                "race_name": race_name,
                "submitted_at_ms": now,
            }
            if app.message:
                fields["message"] = app.message
            self._notify(out, game.owner_user_id, "lobby.application.submitted", fields)
        return Result({"application": self._application_json(app)}, out)

    def _find_invite(self, account: _Account, req: Mapping[str, Any]) -> _Invite:
        invite_id = (_opt_str(req, "invite_id") or "").strip()
        code = (_opt_str(req, "code") or "").strip().upper()
        if not invite_id and not code:
            raise invalid_argument("invite_id", "one of invite_id or code is required")
        invite = self._invites.get(invite_id) if invite_id else None
        if code:
            by_code = self._invites.get(self._invites_by_code.get(code, ""))
            if invite_id and invite is not None and by_code is not invite:
                raise invalid_argument("code", "does not belong to invite_id")
            invite = by_code
        if invite is None:
            raise not_found("invite")
        if invite.invitee_user_id != account.user_id:
            raise forbidden("this invite is addressed to another user")
        self._expire_invite(invite)
        if invite.status != "Pending":
            raise invalid_state(f"the invite is {invite.status}, not Pending")
        return invite

    def _invite_redeem(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        invite = self._find_invite(account, req)
        race_name = _check_race_name("race_name", _opt_str(req, "race_name"))
        game = self._games[invite.game_id]
        self._check_can_join(game, account.user_id, race_name)
        out = Outbox()
        invite.status = "Redeemed"
        self._join(game, account.user_id, race_name, out)
        return Result(
            {"invite": self._invite_json(invite), "game": self._game_json(game, account.user_id)},
            out,
        )

    def _invite_decline(self, account: _Account, caller: Caller, req: Mapping[str, Any]) -> Result:
        invite = self._find_invite(account, req)
        invite.status = "Declined"
        return Result({"invite": self._invite_json(invite)})

    # --- dev helpers ----------------------------------------------------------

    def dev_login_code(self, email: str) -> dict[str, str]:
        """The last code sent to ``email`` (and its challenge)."""
        found = self._last_code.get(normalise_email(email))
        if found is None:
            raise not_found("login code for that address")
        return {"code": found[0], "challenge_id": found[1]}

    def dev_create_invite(self, req: Mapping[str, Any]) -> Result:
        """``{"game_id", "inviter_user_id", "invitee_email"}`` -> the ``lobby.Invite``."""
        game = self._game(_req_str(req, "game_id"))
        inviter = self._account(_req_str(req, "inviter_user_id"))
        invitee_id = self._accounts_by_email.get(normalise_email(_req_str(req, "invitee_email")))
        if invitee_id is None:
            raise not_found("account for invitee_email")
        if game.owner_user_id != inviter.user_id:
            raise forbidden("only the game owner can invite")
        if game.status not in ("Draft", "EnrollmentOpen"):
            raise invalid_state(f"the game is {game.status}, not Draft or EnrollmentOpen")
        if game.member(invitee_id) is not None:
            raise already_member()
        for other in self._invites.values():
            self._expire_invite(other)
            if (
                other.game_id == game.game_id
                and other.invitee_user_id == invitee_id
                and other.status == "Pending"
            ):
                raise already_invited()
        now = self._now()
        code = self._new_invite_code()
        invite = _Invite(
            seq=self._next_seq(),
            invite_id=self._id("inv"),
            game_id=game.game_id,
            inviter_user_id=inviter.user_id,
            invitee_user_id=invitee_id,
            code=code,
            created_at_ms=now,
            expires_at_ms=now + INVITE_TTL_MS,
        )
        self._invites[invite.invite_id] = invite
        self._invites_by_code[code] = invite.invite_id
        out = Outbox()
        self._notify(
            out,
            invitee_id,
            "lobby.invite.received",
            {
                "invite_id": invite.invite_id,
                "game_id": game.game_id,
                "game_name": game.name,
                "inviter_user_id": inviter.user_id,
                "inviter_display_name": inviter.display_name,
                "created_at_ms": now,
                "expires_at_ms": invite.expires_at_ms,
            },
        )
        return Result({"invite": self._invite_json(invite)}, out)

    def _new_invite_code(self) -> str:
        while True:
            code = "".join(self._rng.choice(_INVITE_CODE_ALPHABET) for _ in range(8))
            if code not in self._invites_by_code:
                return code

    def dev_advance_turn(self, game_id: str) -> Result:
        game = self._game(game_id)
        if game.status != "Running":
            raise invalid_state(f"the game is {game.status}, not Running")
        game.current_turn += 1
        game.turn_generated_at_ms[game.current_turn] = self._now()
        return Result({"game": self._game_json(game, None)})

    def dev_decide_application(
        self, application_id: str, *, approve: bool, reason: str | None = None
    ) -> Result:
        app = self._applications.get(application_id)
        if app is None:
            raise not_found("application")
        if app.status != "Pending":
            raise invalid_state(f"the application is {app.status}, not Pending")
        game = self._games[app.game_id]
        out = Outbox()
        if approve:
            self._check_can_join(
                game, app.applicant_user_id, app.race_name, skip=app.application_id
            )
            self._approve(app, game, out)
        else:
            self._reject(app, reason, out)
        return Result({"application": self._application_json(app)}, out)

    def dev_user_id(self, email: str) -> str | None:
        return self._accounts_by_email.get(normalise_email(email))


def _too_many_attempts() -> BackendError:
    return BackendError(
        429, "too_many_attempts", "too many wrong codes for this challenge; request a new code"
    )
