"""The fuzz targets' Hypothesis profiles (docs/fuzzing.md).

``HYPOTHESIS_PROFILE`` picks one; unset, it is ``fuzz``:

* ``fuzz``: what ``make test`` runs. Deterministic (``derandomize=True``: the
  inputs derive from each test, so the same command on the same tree tries the
  same inputs on every run and machine), no example database (nothing saved
  between runs), no deadline (a slow CI machine does not fail a test), each
  target's own ``max_examples``. A failure prints its ``@reproduce_failure`` blob.
* ``nightly``: the long run. Random seeds (pin one with ``--hypothesis-seed``),
  ``NIGHTLY_SCALE`` times each target's ``max_examples``, examples that failed saved
  in ``.pytest_cache/hypothesis-fuzz`` so the next run on that checkout tries them first.

``FUZZ_SCALE`` (a positive integer) overrides the multiplier of either profile.
The profiles are applied per test (``@fuzz_settings(n)``), never loaded as the
global default, so nothing else that uses Hypothesis changes behaviour.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

__all__ = ["ACTIVE_PROFILE", "PROFILE_ENV", "SCALE", "SCALE_ENV", "fuzz_settings"]

PROFILE_ENV: Final = "HYPOTHESIS_PROFILE"
SCALE_ENV: Final = "FUZZ_SCALE"
NIGHTLY_SCALE: Final = 50
_REPO: Final = Path(__file__).resolve().parents[2]

_COMMON: Final[dict[str, Any]] = {
    "deadline": None,
    "print_blob": True,
    # Whole FlatBuffers documents and signed requests are legitimately slow-ish to draw.
    "suppress_health_check": (HealthCheck.too_slow, HealthCheck.data_too_large),
}

settings.register_profile("fuzz", derandomize=True, database=None, **_COMMON)
settings.register_profile(
    "nightly",
    derandomize=False,
    database=DirectoryBasedExampleDatabase(_REPO / ".pytest_cache" / "hypothesis-fuzz"),
    **_COMMON,
)

ACTIVE_PROFILE: Final = os.environ.get(PROFILE_ENV, "").strip() or "fuzz"
if ACTIVE_PROFILE not in ("fuzz", "nightly"):
    raise RuntimeError(
        f"{PROFILE_ENV}={ACTIVE_PROFILE!r}: the fuzz targets know 'fuzz' and 'nightly'"
    )
_scale_text = os.environ.get(SCALE_ENV, "").strip()
if _scale_text and not (_scale_text.isdigit() and int(_scale_text) > 0):
    raise RuntimeError(f"{SCALE_ENV}={_scale_text!r}: expected a positive integer")
SCALE: Final = (
    int(_scale_text) if _scale_text else (NIGHTLY_SCALE if ACTIVE_PROFILE == "nightly" else 1)
)


def fuzz_settings(max_examples: int, **overrides: Any) -> settings:
    """The active profile with this target's example budget (times ``SCALE``)."""
    return settings(
        settings.get_profile(ACTIVE_PROFILE), max_examples=max_examples * SCALE, **overrides
    )
