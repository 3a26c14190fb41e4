"""Fixtures of the edge-grpc tests: a real Redis, the real mock backend, the real gateway.

``stack`` (module scope) is one mock backend and one gateway (admin listener
on, rate limits raised so the many tests from 127.0.0.1 do not trip them)
sharing the session's Redis. ``gateway_factory`` starts further gateways with
their own settings (low rate limits, short downstream timeout, no backend);
each is stopped at the end of its test. Every process logs to a file so a
failing test shows the log tail and the log-hygiene test can grep it.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
import redis

from edge_grpc.testing import (
    DeviceSession,
    GatewayProcess,
    MockBackendProcess,
    free_port,
    gateway_env,
    raised_rate_limits,
    write_hmac_secret,
    write_signer_key,
)
from edgecore.signing import Signer
from edgecore.testing.redis_server import RedisServer
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

RAISED_LIMITS = raised_rate_limits()


@dataclass
class Stack:
    redis_server: RedisServer
    directory: Path
    key_path: Path
    secret_path: Path
    signer: Signer
    backend: MockBackendProcess
    gateway: GatewayProcess = None  # type: ignore[assignment]  # set right after the env exists
    _emails: int = 0
    extra: list[GatewayProcess] = field(default_factory=list)

    @property
    def server_public_key(self) -> bytes:
        return self.signer.public_key

    def redis(self) -> redis.Redis:
        return redis.Redis(
            host=self.redis_server.host,
            port=self.redis_server.port,
            password=self.redis_server.password,
            socket_timeout=5,
        )

    def new_session(self, prefix: str = "player") -> DeviceSession:
        self._emails += 1
        return self.backend.new_session(f"{prefix}{self._emails}@example.com")

    def env(self, *, backend: bool = True, admin: bool = False, **overrides: str) -> dict[str, str]:
        return gateway_env(
            grpc_port=free_port(),
            redis_host=self.redis_server.host,
            redis_port=self.redis_server.port,
            redis_password=self.redis_server.password,
            signer_key_path=self.key_path,
            backend_url=self.backend.base_url if backend else None,
            hmac_secret_path=self.secret_path if backend else None,
            admin_port=free_port() if admin else None,
            overrides=overrides,
        )


def _ensure_running(server: RedisServer) -> None:
    if not server.running and server.restartable:
        server.start()


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _ensure_running(redis_server)
    directory = tmp_path_factory.mktemp("edge-grpc")
    key_path, secret_path = directory / "signer.pem", directory / "hmac-secret"
    signer = write_signer_key(key_path)
    write_hmac_secret(secret_path)
    backend = MockBackendProcess.start(
        redis_url=redis_server.url,
        hmac_secret_path=secret_path,
        log_path=directory / "mock-backend.log",
    )
    gateway: GatewayProcess | None = None
    try:
        stack = Stack(redis_server, directory, key_path, secret_path, signer, backend)
        gateway = GatewayProcess.start(
            stack.env(admin=True, GATEWAY_LOG_LEVEL="debug", **RAISED_LIMITS),
            log_path=directory / "edge-grpc.log",
        )
        stack.gateway = gateway
        yield stack
    finally:
        if gateway is not None:
            gateway.stop()
        backend.stop()


@pytest.fixture
def gateway_factory(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(
        *, backend: bool = True, admin: bool = False, wait: bool = True, **overrides: str
    ) -> GatewayProcess:
        """A further gateway; rate limits are raised unless ``overrides`` lower them."""
        _ensure_running(stack.redis_server)
        env = stack.env(backend=backend, admin=admin, **{**RAISED_LIMITS, **overrides})
        gateway = GatewayProcess.start(
            env, log_path=tmp_path / f"edge-grpc-{len(started)}.log", wait=wait
        )
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        if gateway.running:
            gateway.process.send_signal(signal.SIGKILL)
            gateway.process.wait()


@pytest.fixture
async def stub(stack: Stack) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(stack.gateway.target) as channel:
        yield pb_grpc.EdgeGatewayStub(channel)


@pytest.fixture(autouse=True)
def _redis_back_up(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that stopped Redis must not leave it stopped for the next one."""
    yield
    if "redis_server" in request.fixturenames:
        _ensure_running(request.getfixturevalue("redis_server"))
