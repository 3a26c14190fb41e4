"""Listening ports for test servers that nothing else on the machine will take.

Asking the kernel for port 0 and handing the number to a child process is
racy in a way that bit CI: such a port lies in the ephemeral range, and
between our probe and the child's ``bind`` any outgoing connection on the
machine (another xdist worker's Redis client, say) may be given it as its
source port. ``free_port`` therefore picks from *below* the ephemeral range,
where the kernel never assigns ports on its own, and gives each xdist worker
(or each non-xdist process) its own block so parallel workers cannot pick the
same number either. Each pick is still probed with a real ``bind``.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = ["free_port"]

_RANGE_FLOOR: Final = 10_000
# Linux's default low end of net.ipv4.ip_local_port_range.
_DEFAULT_EPHEMERAL_FLOOR: Final = 32_768
# Each process hashes its pid into one of these blocks, so parallel test processes
# (the pytest run, vitest's system, a bench) rarely pick from the same numbers.
_BLOCKS: Final = 32


def _ephemeral_floor() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_FLOOR
    return low if low > _RANGE_FLOOR + _BLOCKS else _DEFAULT_EPHEMERAL_FLOOR


def _candidates() -> Iterator[int]:
    size = (_ephemeral_floor() - _RANGE_FLOOR) // _BLOCKS
    start = _RANGE_FLOOR + os.getpid() % _BLOCKS * size
    # A random starting point, so a re-run right after a crash does not meet its own TIME_WAITs.
    offset = secrets.randbelow(size)
    return (start + (offset + step) % size for step in itertools.count())


_picks: Iterator[int] | None = None
_pid = 0


def _bindable(port: int) -> bool:
    # No SO_REUSEADDR, and the wildcard address: refused if anything at all holds the port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - a probe, closed at once
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port free on every local address now and outside the kernel's ephemeral range."""
    global _picks, _pid
    if _picks is None or _pid != os.getpid():  # a forked child gets a block of its own
        _picks, _pid = _candidates(), os.getpid()
    for port in itertools.islice(_picks, 1_000):
        if _bindable(port):
            return port
    raise RuntimeError("no free port below the ephemeral range after 1,000 tries")
