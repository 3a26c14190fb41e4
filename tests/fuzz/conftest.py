"""Registers the fuzz profiles (tests/fuzz/profiles.py) and names the active one in the header."""

from __future__ import annotations

import pytest

from .profiles import ACTIVE_PROFILE, PROFILE_ENV, SCALE


def pytest_report_header(config: pytest.Config) -> str:
    seeds = "random seeds" if ACTIVE_PROFILE == "nightly" else "derandomized"
    return (
        f"fuzz: Hypothesis profile {ACTIVE_PROFILE!r} ({PROFILE_ENV}), {SCALE}x examples, {seeds}"
    )
