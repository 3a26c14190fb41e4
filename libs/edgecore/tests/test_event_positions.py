"""Resume positions: parsing is strict, order is stream order."""

from __future__ import annotations

import pytest

from edgecore.event_positions import (
    Position,
    PositionError,
    format_entry_id,
    parse_entry_id,
    predecessor,
)


def test_a_position_round_trips() -> None:
    position = Position("0123456789abcdef", (1_700_000_000_123, 7))
    assert str(position) == "0123456789abcdef:1700000000123-7"
    assert Position.parse(str(position)) == position


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1-0",  # no epoch
        ":1-0",
        "0123456789ABCDEF:1-0",  # epochs are lower-case hex
        "0123456789abcdef:1",
        "0123456789abcdef:1-0-0",
        "0123456789abcdef:-1-0",
        "0123456789abcdef:18446744073709551616-0",  # beyond 64 bits
        "0123456789abcdef:" + "1" * 50 + "-0",  # too long
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(PositionError):
        Position.parse(text)


def test_entry_ids_order_like_the_stream_and_predecessors_sit_just_below() -> None:
    assert parse_entry_id(b"5-10") > parse_entry_id("5-9") > parse_entry_id("4-99")
    assert predecessor((5, 10)) == (5, 9)
    assert predecessor((5, 0)) == (4, (1 << 64) - 1)
    assert predecessor((0, 0)) == (0, 0)
    assert format_entry_id(predecessor((5, 0))) == "4-18446744073709551615"
