"""The e2e system: started exactly as `make run` starts it, on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecore.testing.redis_server import RedisServer
from edgecore.testing.system import System, SystemPorts

from .harness import Gateway, Secrets

# Generous shared budgets so independent tests do not starve each other from
# 127.0.0.1; the per-session and identity limits keep their defaults and are
# what the rate-limit tests exhaust.
_GRPC_LIMITS = {
    f"GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_{dim}_RATE_LIMIT_{part}": value
    for dim in ("IP", "USER", "MESSAGE_CLASS", "SESSION_LOOKUP")
    for part, value in (("REQUESTS", "100000"), ("BURST", "10000"))
}
_PUBLIC_LIMITS = {
    "GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_PUBLIC_AUTH_RATE_LIMIT_REQUESTS": "100000",
    "GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_PUBLIC_AUTH_RATE_LIMIT_BURST": "10000",
    # Two logins per address (a second device); the third send is the one limited.
    "GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_SEND_EMAIL_CODE_IDENTITY_RATE_LIMIT_BURST": "2",
}
_TIMEOUTS = {
    "GATEWAY_AUTHENTICATED_DOWNSTREAM_TIMEOUT": "1s",
    "GATEWAY_BACKEND_HTTP_TIMEOUT": "1s",
    "GATEWAY_SHUTDOWN_TIMEOUT": "3s",
}
E2E_ENV = {
    "public-rest": {**_PUBLIC_LIMITS, "GATEWAY_PUBLIC_AUTH_UPSTREAM_TIMEOUT": "1s",
                    "GATEWAY_BACKEND_HTTP_TIMEOUT": "1s", "GATEWAY_SHUTDOWN_TIMEOUT": "3s"},
    "edge-grpc": {**_GRPC_LIMITS, **_TIMEOUTS},
    "push-hub": {**_GRPC_LIMITS, **_TIMEOUTS},
}  # fmt: skip


def start_system(run_dir: Path, redis: RedisServer) -> System:
    system = System(
        run_dir=run_dir,
        redis_host=redis.host,
        redis_port=redis.port,
        redis_password=redis.password,
        ports=SystemPorts.free(),
        extra_env=E2E_ENV,
    )
    system.start()
    return system


@pytest.fixture(scope="session")
def secrets_registry() -> Secrets:
    return Secrets()


@pytest.fixture(scope="session")
def system(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    if not redis_server.running:
        redis_server.start()
    system = start_system(tmp_path_factory.mktemp("system"), redis_server)
    yield system
    system.stop()


@pytest.fixture(scope="session")
def gateway(system: System, secrets_registry: Secrets) -> Gateway:
    return Gateway(system, secrets_registry)
