"""Resume positions: where an event sits in its user's history (pure; docs/event-streams.md).

A position is ``<epoch>:<ms>-<seq>``: the Redis Stream entry id of the event in
the user's history stream, qualified by the history's epoch (a random token
kept in Redis that changes when Redis loses its data, so a position from a lost
dataset can never be mistaken for one of the new). Clients treat it as opaque
text and hand back the last one they received.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_POSITION_BYTES",
    "EntryId",
    "Position",
    "PositionError",
    "format_entry_id",
    "parse_entry_id",
    "predecessor",
]

MAX_POSITION_BYTES: Final = 64
_MAX_SEQ: Final = (1 << 64) - 1
_ENTRY_ID: Final = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_EPOCH: Final = re.compile(r"[0-9a-f]{8,32}")

EntryId = tuple[int, int]
"""A Redis Stream entry id as (milliseconds, sequence): compares in stream order."""


class PositionError(ValueError):
    """Text that is not a position this gateway issues."""


def parse_entry_id(text: str | bytes) -> EntryId:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    match = _ENTRY_ID.fullmatch(text)
    if match is None:
        raise PositionError("not a stream entry id")
    ms, seq = int(match[1]), int(match[2])
    if ms > _MAX_SEQ or seq > _MAX_SEQ:
        raise PositionError("stream entry id out of range")
    return ms, seq


def format_entry_id(entry_id: EntryId) -> str:
    return f"{entry_id[0]}-{entry_id[1]}"


def predecessor(entry_id: EntryId) -> EntryId:
    """The largest id below ``entry_id`` (a position just before it)."""
    ms, seq = entry_id
    if seq:
        return ms, seq - 1
    if ms:
        return ms - 1, _MAX_SEQ
    return 0, 0


@dataclass(frozen=True, slots=True)
class Position:
    epoch: str
    entry_id: EntryId

    def __str__(self) -> str:
        return f"{self.epoch}:{format_entry_id(self.entry_id)}"

    @classmethod
    def parse(cls, text: str) -> Position:
        # surrogatepass: a lone surrogate is rejected below (PositionError), not here.
        if len(text.encode("utf-8", "surrogatepass")) > MAX_POSITION_BYTES:
            raise PositionError("position is too long")
        epoch, sep, entry = text.partition(":")
        if not sep or _EPOCH.fullmatch(epoch) is None:
            raise PositionError("position has no valid epoch")
        return cls(epoch, parse_entry_id(entry))
