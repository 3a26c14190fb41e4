"""Deterministic turn reports (``user.GamesReportResponse`` in the JSON mapping).

A report is a pure function of the game id, the turn, the member list (in join
order) and the viewer: the same inputs always give the same map, the same
planets and the same numbers, so repeated ``user.games.report`` calls agree.

The map: ``4 * members + 12`` planets at positions seeded by the game id
(stable across turns; the engine number is the planet's identity). Member
``k`` (join order, 0-based) owns planet ``k + 1`` as its home world and gains
one colony every second turn (up to three), always the free planet nearest to
its home. From the viewer's side a planet is ``Local`` (own), ``Other``
(another member's), ``Uninhabited`` (free and within sight of an own planet)
or ``Unidentified`` (free and out of sight; only its position is known).
Whenever there are at least two free planets, at least one of each of the
last two kinds is present. Population, industry and stockpiles are seeded
from game id + turn + planet number.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import Any, Final

__all__ = ["MAX_COLONIES", "build_report", "planet_count"]

MAX_COLONIES: Final = 3
_SIGHT_FRACTION: Final = 0.3
_PRODUCTIONS: Final = ("Capital", "Materials", "Drive", "Weapons", "Shields", "Cargo", "Scout")
_SYLLABLES: Final = (
    "ka", "ve", "lo", "ra", "ti", "mon", "zar", "el", "dra", "qu", "is", "or",
    "tel", "ny", "ba", "sol", "xe", "ar", "gen", "ul", "pha", "ro", "cy", "den",
)  # fmt: skip


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - not for security


def _down2(value: float) -> float:
    """Round down to two decimals (keeps a coordinate strictly below its bound)."""
    return math.floor(value * 100) / 100


def _r2(value: float) -> float:
    return float(round(value, 2))


def _name(rng: random.Random) -> str:
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
    return word[0].upper() + word[1:]


def planet_count(member_count: int) -> int:
    return 4 * member_count + 12


class _Planet:
    __slots__ = ("acquired_turn", "name", "number", "owner", "resources", "size", "x", "y")

    def __init__(
        self, *, number: int, x: float, y: float, name: str, size: float, res: float
    ) -> None:
        self.number = number
        self.x = x
        self.y = y
        self.name = name
        self.size = size
        self.resources = res
        self.owner: int | None = None
        self.acquired_turn = 0

    def distance(self, other: _Planet) -> float:
        return math.hypot(self.x - other.x, self.y - other.y)


def _layout(game_id: str, members: int) -> tuple[float, float, list[_Planet]]:
    rng = _rng(game_id, "map")
    width = float(rng.randrange(100, 201, 10))
    height = float(rng.randrange(100, 201, 10))
    planets: list[_Planet] = []
    for number in range(1, planet_count(members) + 1):
        x = _down2(rng.random() * width)
        y = _down2(rng.random() * height)
        name = _name(rng)
        home = number <= members
        size = 1000.0 if home else _r2(rng.uniform(50.0, 1500.0))
        res = 10.0 if home else _r2(rng.uniform(0.5, 15.0))
        planets.append(_Planet(number=number, x=x, y=y, name=name, size=size, res=res))
    return width, height, planets


def _assign_owners(planets: list[_Planet], members: int, turn: int) -> None:
    for k in range(members):
        planets[k].owner = k
    colonies = min(max(turn, 0) // 2, MAX_COLONIES)
    for round_ in range(colonies):
        for k in range(members):
            home = planets[k]
            free = [p for p in planets if p.owner is None]
            if not free:
                return
            pick = min(free, key=lambda p: (p.distance(home), p.number))
            pick.owner = k
            pick.acquired_turn = 2 * (round_ + 1)


def _owned_stats(
    game_id: str, turn: int, planet: _Planet, home: bool, local: bool
) -> dict[str, Any]:
    rng = _rng(game_id, turn, planet.number)
    age = max(turn - planet.acquired_turn, 0)
    base = 0.5 if home else 0.1
    population = _r2(planet.size * min(1.0, base + 0.1 * age) * rng.uniform(0.9, 1.0))
    industry = _r2(population * rng.uniform(0.3, 0.9))
    out: dict[str, Any] = {"population": population, "industry": industry}
    if local:
        out["production"] = rng.choice(_PRODUCTIONS)
        out["capital"] = _r2(rng.uniform(0.0, industry * 0.2))
        out["materials"] = _r2(rng.uniform(0.0, industry * 0.3))
        out["colonists"] = _r2(rng.uniform(0.0, population * 0.05))
        out["free_industry"] = _r2(industry * rng.uniform(0.5, 1.0))
    return out


def build_report(
    *,
    game_id: str,
    turn: int,
    members: Sequence[tuple[str, str]],
    viewer_user_id: str,
    generated_at_ms: int,
) -> dict[str, Any]:
    """The viewer's report for ``turn``; ``members`` are ``(user_id, race_name)`` in join order."""
    viewer = next(i for i, (user_id, _) in enumerate(members) if user_id == viewer_user_id)
    width, height, planets = _layout(game_id, len(members))
    _assign_owners(planets, len(members), turn)
    own = [p for p in planets if p.owner == viewer]
    free = [p for p in planets if p.owner is None]
    sight = _SIGHT_FRACTION * min(width, height)

    def nearest_own(p: _Planet) -> float:
        return min(p.distance(o) for o in own)

    visible = {p.number for p in free if nearest_own(p) <= sight}
    if len(free) >= 2:
        by_distance = sorted(free, key=lambda p: (nearest_own(p), p.number))
        if not visible:
            visible.add(by_distance[0].number)
        if len(visible) == len(free):
            visible.discard(by_distance[-1].number)

    out_planets: list[dict[str, Any]] = []
    for p in planets:
        entry: dict[str, Any] = {"number": p.number}
        if p.owner is not None:
            local = p.owner == viewer
            entry.update(
                name=p.name,
                kind="Local" if local else "Other",
                x=p.x,
                y=p.y,
                owner=members[p.owner][1],
                size=p.size,
                resources=p.resources,
            )
            entry.update(_owned_stats(game_id, turn, p, p.number <= len(members), local))
        elif p.number in visible:
            entry.update(
                name=p.name, kind="Uninhabited", x=p.x, y=p.y, size=p.size, resources=p.resources
            )
        else:
            entry.update(kind="Unidentified", x=p.x, y=p.y)
        out_planets.append(entry)
    return {
        "game_id": game_id,
        "turn": turn,
        "map_width": width,
        "map_height": height,
        "race_name": members[viewer][1],
        "planets": out_planets,
        "generated_at_ms": generated_at_ms,
    }
