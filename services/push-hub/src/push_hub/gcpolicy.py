"""Keeping CPython's cyclic GC from pausing the event loop for the size of the stream registry.

Every open stream owns a few dozen long-lived objects (the gRPC call state,
its coroutines, the tracing span, the PushStream). With 10 000 streams a full
(generation 2) collection walks about a million objects and stops the event
loop for roughly half a second, which would be the whole latency budget of
every event in flight. So:

* objects that survived until now are moved to the permanent generation
  (``gc.freeze()``) every ``freeze_interval``: automatic full collections then
  only walk what was allocated since, and stay short;
* a frozen stream that ends leaves its reference cycles (if any) unreachable
  but frozen, so every ``reclaim_interval`` everything is unfrozen, collected
  once, and frozen again. That one pause is proportional to the heap; it
  bounds how much memory can wait for reclamation.

Young generations keep CPython's default thresholds (short, frequent passes).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from datetime import timedelta
from typing import Final

__all__ = ["GcPolicy"]

_log = logging.getLogger("push_hub.gc")

FREEZE_INTERVAL: Final = timedelta(seconds=5)
RECLAIM_INTERVAL: Final = timedelta(minutes=10)


class GcPolicy:
    def __init__(
        self,
        *,
        freeze_interval: timedelta = FREEZE_INTERVAL,
        reclaim_interval: timedelta = RECLAIM_INTERVAL,
    ) -> None:
        self._freeze_every = freeze_interval.total_seconds()
        self._reclaim_every = reclaim_interval.total_seconds()

    @staticmethod
    def settle() -> None:
        """After start-up: collect once, then freeze what the process is made of."""
        gc.collect()
        gc.freeze()

    @staticmethod
    def reclaim() -> tuple[int, float]:
        """Unfreeze, collect everything, freeze again; returns (collected, seconds)."""
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        return collected, time.perf_counter() - started

    async def run(self) -> None:
        """Until cancelled: freeze survivors often, reclaim frozen garbage rarely."""
        last_reclaim = time.monotonic()
        while True:
            await asyncio.sleep(self._freeze_every)
            if time.monotonic() - last_reclaim >= self._reclaim_every:
                collected, seconds = self.reclaim()
                last_reclaim = time.monotonic()
                _log.info(
                    "full garbage collection",
                    extra={"collected": collected, "pause_ms": round(seconds * 1000, 1),
                           "frozen": gc.get_freeze_count()},
                )  # fmt: skip
            else:
                gc.freeze()
