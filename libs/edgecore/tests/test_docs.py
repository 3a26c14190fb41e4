"""Reference docs stay in step with the code they describe."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecore.config import known_variables
from edgecore.errors import CATALOG, ErrorSpec

DOCS = Path(__file__).parents[3] / "docs"


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.reason)
def test_error_catalog_row_is_documented(spec: ErrorSpec) -> None:
    row = (
        f"| `{spec.reason}` | {spec.grpc_code.name} | {spec.message} | {spec.http_status} "
        f"| `{spec.rest_code}` | {spec.public_message} |"
    )
    assert row in (DOCS / "errors.md").read_text("utf-8").splitlines()


@pytest.mark.parametrize("variable", sorted(known_variables()))
def test_every_variable_is_documented(variable: str) -> None:
    assert f"`{variable}`" in (DOCS / "configuration.md").read_text("utf-8")
