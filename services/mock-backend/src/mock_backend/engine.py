"""A toy game engine behind ``user.games.command`` and ``user.games.order``.

The real engine is out of scope; this one is just rich enough for clients to
see both an accepted and a rejected outcome. Engine-level rejections are
answers (``accepted: false`` plus a message), not business errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = ["COMMAND_NAMES", "ORDER_NAMES", "CommandOutcome", "check_order", "run_command"]

COMMAND_NAMES: Final = ("ping", "echo", "turn", "race", "planets", "orders")
"""Immediate commands: ping -> pong, echo -> the args, turn -> current turn,
race -> the caller's race name, planets -> the caller's planets this turn,
orders -> the caller's recorded orders for this turn."""

ORDER_NAMES: Final = (
    "produce", "route", "send", "load", "unload", "research", "design", "rename",
    "upgrade", "colonize",
)  # fmt: skip
"""Order names the toy engine accepts (arguments are not checked)."""


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    accepted: bool
    message: str
    output: list[str] = field(default_factory=list)


def run_command(
    name: str,
    args: Sequence[str],
    *,
    turn: int,
    race_name: str,
    planet_lines: Sequence[str],
    order_lines: Sequence[str],
) -> CommandOutcome:
    outputs = {
        "ping": ["pong"],
        "echo": list(args),
        "turn": [str(turn)],
        "race": [race_name],
        "planets": list(planet_lines),
        "orders": list(order_lines),
    }
    output = outputs.get(name)
    if output is not None:
        return CommandOutcome(True, "pong" if name == "ping" else "ok", output)
    if not name:
        return CommandOutcome(False, "command name is empty")
    return CommandOutcome(False, f"unknown command {name[:64]!r}")


def check_order(name: str) -> tuple[bool, str]:
    if not name:
        return False, "order name is empty"
    if name not in ORDER_NAMES:
        return False, f"unknown order {name[:64]!r}"
    return True, "ok"
