"""A server under test is a process tree (the launcher and the Envoy it starts)."""

from __future__ import annotations

import contextlib
from pathlib import Path

__all__ = ["process_tree"]


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the launcher and its Envoy), from /proc."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return found
