"""Each service process refuses to start on bad configuration, naming the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

KEYS = Path(__file__).parents[2] / "libs" / "edgecore" / "tests" / "data" / "keys"
BASE_ENV = {
    "GATEWAY_REDIS_MASTER_ADDR": "127.0.0.1:6379",
    "GATEWAY_REDIS_PASSWORD": "pw",
    "GATEWAY_BACKEND_GATEWAY_CLIENT_ID": "gateway-test",
    "GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH": str(KEYS / "ed25519.pem"),
}


def _run(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-m", module, "--check-config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "service", "env"),
    [
        ("public_rest", "public-rest", {"GATEWAY_BACKEND_GATEWAY_CLIENT_ID": "g"}),
        ("edge_grpc", "edge-grpc", BASE_ENV),
        ("push_hub", "push-hub", BASE_ENV),
    ],
)
def test_valid_configuration_passes(module: str, service: str, env: dict[str, str]) -> None:
    result = _run(module, env)
    assert (result.returncode, result.stderr) == (0, f"{service}: configuration OK\n")


@pytest.mark.parametrize(
    ("module", "service"), [("edge_grpc", "edge-grpc"), ("push_hub", "push-hub")]
)
def test_missing_and_malformed_variables_stop_startup(module: str, service: str) -> None:
    env = {**BASE_ENV, "GATEWAY_SESSION_CACHE_TTL": "ten minutes"}
    del env["GATEWAY_REDIS_PASSWORD"]
    result = _run(module, env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{service}: configuration error: GATEWAY_SESSION_CACHE_TTL: invalid duration "
        "'ten minutes'; use Go syntax such as 250ms, 5s, 1m, 1h30m",
        f"{service}: configuration error: GATEWAY_REDIS_PASSWORD: is required but not set",
    ]


@pytest.mark.parametrize(
    ("module", "service"), [("edge_grpc", "edge-grpc"), ("push_hub", "push-hub")]
)
def test_bad_signer_key_stops_startup(module: str, service: str) -> None:
    key = KEYS / "rsa-pkcs8.pem"
    result = _run(module, {**BASE_ENV, "GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH": str(key)})
    assert result.returncode == 2
    assert result.stderr == (
        f"{service}: configuration error: response signer key file {key} is not Ed25519: "
        "its algorithm is RSA\n"
    )


def test_deprecated_variable_stops_startup() -> None:
    result = _run("edge_grpc", {**BASE_ENV, "GATEWAY_REDIS_USERNAME": "default"})
    assert result.returncode == 2
    assert "GATEWAY_REDIS_USERNAME: no longer supported" in result.stderr
