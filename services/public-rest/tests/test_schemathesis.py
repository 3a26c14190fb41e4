"""Schemathesis against the live process: no 5xx, nothing outside openapi.yaml.

The gateway runs with the real mock backend (so valid requests reach an upstream
and its errors are projected) and with budgets raised so that generated requests
exercise validation rather than the rate limiter. The number of examples is
bounded (``-n``) and seeded, so the run is deterministic and takes seconds.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from public_rest.testing import MockBackend, Process

pytestmark = pytest.mark.integration

SPEC = Path(__file__).resolve().parents[1] / "openapi.yaml"
P = "GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_"
RAISED = {
    P + f"{name}_RATE_LIMIT_{part}": "1000000"
    for name in (
        "PUBLIC_AUTH",
        "PUBLIC_MISC",
        "SEND_EMAIL_CODE_IDENTITY",
        "CONFIRM_EMAIL_CODE_IDENTITY",
    )
    for part in ("REQUESTS", "BURST")
}
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
    )
)


def test_schemathesis_finds_no_5xx_and_no_undocumented_response(
    gateway_factory: Callable[..., Process], mock_backend: MockBackend, tmp_path: Path
) -> None:
    gateway = gateway_factory(backend_url=mock_backend.base_url, env=RAISED, log_level="info")
    result = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", str(SPEC),
            "--url", gateway.base_url,
            "--checks", CHECKS,
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", "30",
            "--seed", "20240601",
            "--workers", "1",
            "--no-shrink",
            "--request-timeout", "10",
            "--report", "junit",
            "--report-dir", str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
    assert " 0 passed" not in result.stdout
