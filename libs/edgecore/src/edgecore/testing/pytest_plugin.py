"""pytest plugin: a real Redis-compatible server for every test tree of the workspace.

Registered by the repository's root ``conftest.py``
(``pytest_plugins = ["edgecore.testing.pytest_plugin"]``).

Fixtures:

* ``redis_server`` (session): the :class:`~edgecore.testing.redis_server.RedisServer`
  chosen by :func:`~edgecore.testing.redis_server.provide_redis_server`, started on first
  use and closed at the end of the session. Tests may ``stop()`` and ``start()`` it.
* ``redis_url`` (function): the server's URL, after emptying it (FLUSHALL; FLUSHDB of the
  URL's database for an external ``EDGE_TEST_REDIS_URL`` server), and after starting it
  again if an earlier test left it stopped.

The header says which selection is configured (the server starts lazily, so it cannot
name the path yet); the terminal summary names the path actually taken.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from edgecore.testing.redis_server import (
    ENV_MODE,
    ENV_URL,
    RedisServer,
    docker_host,
    provide_redis_server,
)

__all__ = ["redis_server", "redis_url"]

_TAKEN: list[str] = []


def pytest_report_header(config: pytest.Config) -> list[str]:
    mode = os.environ.get(ENV_MODE, "").strip() or "auto"
    url = "set" if os.environ.get(ENV_URL, "").strip() else "unset"
    engine = docker_host() or "none"
    return [
        f"redis: not started yet (starts on first use of the redis_server fixture; "
        f"{ENV_MODE}={mode}, {ENV_URL} {url}, engine {engine})"
    ]


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter,
    exitstatus: int | pytest.ExitCode,
    config: pytest.Config,
) -> None:
    if _TAKEN:
        for line in _TAKEN:
            terminalreporter.write_line(f"redis: used {line}")
    else:
        terminalreporter.write_line("redis: not started (no test used the redis_server fixture)")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real Redis-compatible server for the whole session (see ``provide_redis_server``)."""
    server = provide_redis_server()
    _TAKEN.append(server.description)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """``redis://:PASSWORD@127.0.0.1:PORT/0`` of an empty, running server."""
    if not redis_server.running and redis_server.restartable:
        redis_server.start()
    redis_server.flush()
    return redis_server.url
