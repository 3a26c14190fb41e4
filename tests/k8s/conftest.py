"""Fixtures of the Kubernetes tests: the pinned helm, and a renderer of the chart."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from .chart import helm_env, render


@pytest.fixture(scope="session")
def helm() -> dict[str, str]:
    """Environment with the pinned helm and helm-unittest (scripts/k8s-tools.sh, cached)."""
    return helm_env()


Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def render_chart(helm: dict[str, str]) -> Render:
    def _render(
        values_files: Iterable[Path] = (),
        set_values: Mapping[str, str] | None = None,
        set_json: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        return render(helm, values_files, set_values, set_json=set_json)

    return _render
