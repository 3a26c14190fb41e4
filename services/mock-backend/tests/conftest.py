"""Fixtures of the mock backend tests: a store on a fake clock, and a harness that
checks every answer and notification against its FlatBuffers table."""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from edgecore.backend.routes import BACKEND_ROUTES
from edgecore.fbjson import FlatBuffersJsonCodec, default_codec
from mock_backend.errors import BackendError
from mock_backend.store import Caller, Result, Store

START_MS = 1_700_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@dataclass
class User:
    user_id: str
    device_session_id: str
    email: str

    @property
    def caller(self) -> Caller:
        return Caller(self.user_id, self.device_session_id)


def public_key(seed: int = 1) -> str:
    return base64.b64encode(bytes([seed % 256]) * 32).decode()


class Harness:
    """Drives a Store like the HTTP layer does and checks every JSON shape with the codec."""

    def __init__(self, store: Store, clock: FakeClock, codec: FlatBuffersJsonCodec) -> None:
        self.store = store
        self.clock = clock
        self.codec = codec
        self._keys = 0

    def check_outbox(self, result: Result) -> None:
        for note in result.outbox.notifications:
            self.codec.encode(note.table, note.fields)
            assert note.device_session_id is None

    @staticmethod
    def public_key(seed: int = 1) -> str:
        return public_key(seed)

    def login(self, email: str) -> User:
        sent = self.store.send_email_code({"email": email, "preferred_language": "en"})
        code = self.store.dev_login_code(email)["code"]
        self._keys += 1
        confirmed = self.store.confirm_email_code(
            {
                "challenge_id": sent.body["challenge_id"],
                "code": code,
                "client_public_key": public_key(self._keys),
                "time_zone": "Europe/Berlin",
            }
        )
        session_id = confirmed.body["device_session_id"]
        record = self.store.session_record(session_id)
        return User(record.user_id, session_id, email)

    def call(self, user: User | Caller, message_type: str, req: Mapping[str, Any]) -> Result:
        caller = user.caller if isinstance(user, User) else user
        result = self.store.execute(message_type, caller, req)
        self.codec.encode(BACKEND_ROUTES[message_type].response_table, result.body)
        self.check_outbox(result)
        return result

    def fails(self, user: User | Caller, message_type: str, req: Mapping[str, Any]) -> BackendError:
        with pytest.raises(BackendError) as info:
            self.call(user, message_type, req)
        assert info.value.message
        return info.value

    def game(self, owner: User, **fields: Any) -> dict[str, Any]:
        req = {"name": "Andromeda", **fields}
        game: dict[str, Any] = self.call(owner, "lobby.game.create", req).body["game"]
        return game

    def open_game(self, owner: User, **fields: Any) -> dict[str, Any]:
        game = self.game(owner, **fields)
        opened = self.call(owner, "lobby.game.open-enrollment", {"game_id": game["game_id"]})
        result: dict[str, Any] = opened.body["game"]
        return result

    def apply(self, user: User, game_id: str, race_name: str, **extra: Any) -> Result:
        req = {"game_id": game_id, "race_name": race_name, **extra}
        return self.call(user, "lobby.application.submit", req)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> Store:
    return Store(clock_ms=clock, rng=random.Random(7))


@pytest.fixture
def h(store: Store, clock: FakeClock) -> Harness:
    return Harness(store, clock, default_codec())
