"""Business errors: the ``{"error": {"code", "message"}}`` answers of the backend contract.

Every error the mock returns is a ``BackendError`` with an HTTP status, a stable
snake_case code and a non-empty human-readable message. Messages never carry
e-mail addresses, login codes, challenge ids or public keys.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendError",
    "already_invited",
    "already_member",
    "application_exists",
    "forbidden",
    "game_full",
    "invalid_argument",
    "invalid_state",
    "not_found",
    "race_name_taken",
    "stale_turn",
    "turn_not_available",
]


class BackendError(Exception):
    """A 4xx/5xx answer with a stable code; ``str()`` is the message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        if not code or not message:
            raise ValueError("a backend error needs a code and a message")
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    def __repr__(self) -> str:
        return f"BackendError({self.status}, {self.code!r}, {self.message!r})"


def invalid_argument(field: str, problem: str) -> BackendError:
    """400 ``invalid_argument``; the message starts with the field path (``"<field>: ..."``)."""
    return BackendError(400, "invalid_argument", f"{field}: {problem}")


def not_found(what: str) -> BackendError:
    return BackendError(404, "not_found", f"{what} not found")


def forbidden(message: str) -> BackendError:
    return BackendError(403, "forbidden", message)


def invalid_state(message: str) -> BackendError:
    return BackendError(409, "invalid_state", message)


def race_name_taken(race_name: str) -> BackendError:
    return BackendError(
        409, "race_name_taken", f"race name {race_name!r} is already taken in this game"
    )


def game_full() -> BackendError:
    return BackendError(409, "game_full", "the game has no free seats")


def already_member() -> BackendError:
    return BackendError(409, "already_member", "you are already a member of this game")


def application_exists() -> BackendError:
    return BackendError(
        409, "application_exists", "you already have a pending application to this game"
    )


def already_invited() -> BackendError:
    return BackendError(
        409, "already_invited", "the user already holds a pending invite to this game"
    )


def stale_turn(requested: int, current: int) -> BackendError:
    return BackendError(
        409, "stale_turn", f"turn {requested} is not the current turn (current turn is {current})"
    )


def turn_not_available(requested: int, current: int) -> BackendError:
    return BackendError(
        404,
        "turn_not_available",
        f"turn {requested} has not been generated yet (current turn is {current})",
    )
