"""A server under test is a process tree (the launcher and the Envoy it starts)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["pin", "process_tree", "tree_cpu_seconds"]


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


def pin(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of ``pid`` and of its descendants (as ``taskset -a -p``)."""
    if cpus is None or not pid or not hasattr(os, "sched_setaffinity"):
        return
    for process in process_tree(pid):
        tasks = Path(f"/proc/{process}/task")
        tids = [int(t.name) for t in tasks.iterdir()] if tasks.exists() else [process]
        for tid in tids:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, cpus)
