"""Exponential backoff with full jitter: the one retry policy of the Redis readers.

Full jitter (uniform in ``[0, min(cap, base * 2**(failures - 1))]``) spreads the
replicas that lost Redis together, so they do not come back in one wave.
"""

from __future__ import annotations

import random
from datetime import timedelta

__all__ = ["Backoff"]


class Backoff:
    __slots__ = ("_base", "_cap", "failures")

    def __init__(self, base: timedelta | float, cap: timedelta | float) -> None:
        self._base = base.total_seconds() if isinstance(base, timedelta) else base
        self._cap = cap.total_seconds() if isinstance(cap, timedelta) else cap
        self.failures = 0

    def next_delay(self) -> float:
        """Count one more failure; the seconds to wait before the next attempt."""
        self.failures += 1
        return random.uniform(0, min(self._cap, self._base * 2 ** (self.failures - 1)))  # noqa: S311

    def reset(self) -> bool:
        """An attempt succeeded; True when it ended a run of failures (a reconnect)."""
        recovered = self.failures > 0
        self.failures = 0
        return recovered
