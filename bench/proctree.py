"""A server under test is a process tree (the launcher and the Envoy it starts)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["process_tree", "tree_cpu_seconds"]


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


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants, every thread, from /proc."""
    total = 0.0
    for process in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
