"""Fixtures of the public-rest tests (helpers live in ``public_rest.testing``).

* in-process: ``make_app`` builds the app with a ``FakeAuth`` and test budgets;
* processes: ``mock_backend_factory`` starts ``python -m mock_backend`` (real Redis
  from the shared ``redis_server`` fixture), ``gateway_factory`` starts
  ``python -m public_rest`` (Granian) with its admin listener; both are stopped
  with SIGTERM afterwards and the gateway must exit 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from edgecore.config.sections import PublicAntiAbuseSettings
from public_rest.app import PublicRestApp, build_app
from public_rest.testing import (
    SECRET,
    FakeAuth,
    MockBackend,
    Process,
    anti_abuse,
    start_gateway,
    start_mock_backend,
)


@pytest.fixture
def fake_auth() -> FakeAuth:
    return FakeAuth()


@pytest.fixture
def make_app(fake_auth: FakeAuth) -> Callable[..., PublicRestApp]:
    def factory(
        *,
        settings: PublicAntiAbuseSettings | None = None,
        auth_timeout: float = 3.0,
        read_timeout: float = 10.0,
        **kwargs: Any,
    ) -> PublicRestApp:
        kwargs.setdefault("auth_client", fake_auth)
        return build_app(
            anti_abuse=settings or anti_abuse(),
            auth_upstream_timeout=timedelta(seconds=auth_timeout),
            read_timeout=timedelta(seconds=read_timeout),
            **kwargs,
        )

    return factory


@pytest.fixture(scope="session")
def hmac_secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "internal-hmac"
    path.write_bytes(SECRET + b"\n")
    return path


@pytest.fixture
def mock_backend_factory(
    redis_server: Any, hmac_secret_file: Path, tmp_path: Path
) -> Iterator[Callable[[], MockBackend]]:
    started: list[MockBackend] = []

    def start() -> MockBackend:
        if not redis_server.running and redis_server.restartable:
            redis_server.start()
        backend = start_mock_backend(
            redis_url=redis_server.url,
            secret_path=hmac_secret_file,
            log_path=tmp_path / f"mock-backend-{len(started)}.log",
        )
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()


@pytest.fixture
def mock_backend(mock_backend_factory: Callable[[], MockBackend]) -> MockBackend:
    return mock_backend_factory()


GatewayFactory = Callable[..., Process]


@pytest.fixture
def gateway_factory(hmac_secret_file: Path, tmp_path: Path) -> Iterator[GatewayFactory]:
    started: list[Process] = []

    def start(**kwargs: Any) -> Process:
        if kwargs.get("backend_url") is not None:
            kwargs.setdefault("secret_path", hmac_secret_file)
        gateway = start_gateway(log_path=tmp_path / f"public-rest-{len(started)}.log", **kwargs)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        if not gateway.stopped:
            code = gateway.stop()
            assert code == 0, gateway.log()
