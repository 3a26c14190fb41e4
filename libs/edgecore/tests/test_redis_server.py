"""Integration tests: real valkey-server processes/containers, real sockets, redis-py async."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from edgecore.testing import redis_server as redis_server_module
from edgecore.testing.redis_server import (
    ENV_MODE,
    ENV_URL,
    EmbeddedRedisServer,
    RedisServer,
    RedisServerError,
    RedisServerUnavailable,
    container_engine_problem,
    provide_redis_server,
)

pytestmark = pytest.mark.integration

ENGINE_PROBLEM = container_engine_problem()
needs_engine = pytest.mark.skipif(
    ENGINE_PROBLEM is not None,
    reason=f"container path not testable here: {ENGINE_PROBLEM}",
)

MODES = [
    pytest.param("embedded", id="embedded"),
    pytest.param("container", id="container", marks=needs_engine),
]


def client(url: str) -> aioredis.Redis:
    """An async client that fails fast (no retries) so failures are observable."""
    return aioredis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )


@pytest.fixture(scope="module", params=MODES)
def managed(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """One managed server per mode for this module (forced mode: no silent fallback)."""
    server = provide_redis_server(request.param, announce=False)
    try:
        assert server.source == request.param
        yield server
    finally:
        server.close()


@pytest.fixture
def server(managed: RedisServer) -> RedisServer:
    if not managed.running:
        managed.start()
    managed.flush()
    return managed


@pytest.fixture
async def r(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    conn = client(server.url)
    try:
        yield conn
    finally:
        await conn.aclose()


async def test_ping_with_password(server: RedisServer, r: aioredis.Redis) -> None:
    assert server.url == f"redis://:{server.password}@127.0.0.1:{server.port}/0"
    assert server.host == "127.0.0.1"
    assert len(server.password) >= 32
    assert await r.ping() is True


async def test_without_password_or_with_a_wrong_one_is_rejected(server: RedisServer) -> None:
    anonymous = client(f"redis://127.0.0.1:{server.port}/0")
    try:
        # redis-py 8 opens with HELLO, which the server refuses before AUTH (older clients
        # get NOAUTH on the first command instead): an AuthenticationError either way.
        with pytest.raises(AuthenticationError, match=r"(?i)auth"):
            await anonymous.ping()
    finally:
        await anonymous.aclose()
    wrong = client(f"redis://:not-the-password@127.0.0.1:{server.port}/0")
    try:
        with pytest.raises(AuthenticationError, match=r"(?i)invalid username-password|WRONGPASS"):
            await wrong.ping()
    finally:
        await wrong.aclose()


async def test_set_get_round_trip(r: aioredis.Redis) -> None:
    assert await r.set("edge:k", "v1", ex=60) is True
    assert await r.get("edge:k") == b"v1"
    assert 0 < await r.ttl("edge:k") <= 60


async def test_xadd_xread_round_trip(r: aioredis.Redis, server: RedisServer) -> None:
    first = await r.xadd("edge:stream", {"type": "a", "n": "1"})
    second = await r.xadd("edge:stream", {"type": "b", "n": "2"})
    got = await r.xread({"edge:stream": "0-0"})
    assert got == [
        [
            b"edge:stream",
            [(first, {b"type": b"a", b"n": b"1"}), (second, {b"type": b"b", b"n": b"2"})],
        ]
    ]

    # A blocking XREAD on one connection sees an entry added on another one.
    reader = client(server.url)
    try:

        async def blocking_read() -> object:
            return await reader.xread({"edge:stream": second}, block=1500)

        waiting = asyncio.create_task(blocking_read())
        await asyncio.sleep(0.1)
        third = await r.xadd("edge:stream", {"type": "c"})
        assert await asyncio.wait_for(waiting, 5) == [[b"edge:stream", [(third, {b"type": b"c"})]]]
    finally:
        await reader.aclose()


async def test_stop_fails_connections_and_start_recovers(
    server: RedisServer, r: aioredis.Redis
) -> None:
    url, port, password = server.url, server.port, server.password
    await r.set("edge:before-restart", "1")

    server.stop()
    assert not server.running
    with pytest.raises(RedisConnectionError):
        await r.ping()  # the pooled connection is gone
    fresh = client(url)
    try:
        with pytest.raises(RedisConnectionError):
            await fresh.ping()  # and nobody listens on the port
    finally:
        await fresh.aclose()

    server.start()
    assert server.running
    assert (server.url, server.port, server.password) == (url, port, password)
    # The same client object recovers by reconnecting; nothing was persisted.
    assert await r.ping() is True
    assert await r.get("edge:before-restart") is None
    assert await r.set("edge:after-restart", "1") is True


def test_stop_and_start_are_idempotent(server: RedisServer) -> None:
    server.start()  # already running: no-op
    server.stop()
    server.stop()
    assert not server.ping(timeout=0.5)
    server.start()
    assert server.ping()


def test_embedded_is_used_when_forced_even_if_an_engine_exists(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_MODE, "embedded")
    monkeypatch.delenv(ENV_URL, raising=False)
    with provide_redis_server() as srv:
        assert srv.source == "embedded", f"engine problem: {ENGINE_PROBLEM}"
        assert srv.ping()
    assert not srv.running
    line = capsys.readouterr().err.strip()
    assert line.startswith("edgecore.testing: redis via embedded valkey-server 8.1."), line
    assert line.endswith(f"on 127.0.0.1:{srv.port}"), line


@needs_engine
def test_auto_mode_prefers_a_container_when_an_engine_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ENV_MODE, raising=False)
    monkeypatch.delenv(ENV_URL, raising=False)
    with provide_redis_server() as srv:
        assert srv.source == "container"
        assert srv.ping()
    assert "redis via container localhost/galaxy-valkey:8.1 (valkey-server 8.1." in (
        capsys.readouterr().err
    )


def test_auto_mode_falls_back_to_embedded_without_an_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ENV_MODE, raising=False)
    monkeypatch.delenv(ENV_URL, raising=False)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with provide_redis_server() as srv:
        assert srv.source == "embedded"
    assert "does not answer /_ping" in capsys.readouterr().err


def test_forced_container_fails_loudly_without_an_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv(ENV_MODE, "container")
    with pytest.raises(RedisServerUnavailable, match="EDGE_TEST_REDIS_MODE=container but"):
        provide_redis_server(announce=False)


def test_unknown_mode_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MODE, "docker")
    with pytest.raises(RedisServerError, match="not one of"):
        provide_redis_server(announce=False)


async def test_external_url_is_used_as_is_and_cannot_be_restarted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with EmbeddedRedisServer() as backing:
        url = backing.url.removesuffix("/0") + "/3"
        monkeypatch.delenv(ENV_MODE, raising=False)
        monkeypatch.setenv(ENV_URL, url)
        external = provide_redis_server(announce=False)
        assert external.source == "env"
        assert (external.url, external.port, external.password) == (
            url,
            backing.port,
            backing.password,
        )
        assert not external.restartable
        assert backing.password not in external.description
        with pytest.raises(RedisServerError, match="cannot stop the external Redis server"):
            external.stop()
        with pytest.raises(RedisServerError, match="cannot start the external Redis server"):
            external.start()

        # flush() empties the URL's database only.
        db0 = client(backing.url)
        db3 = client(url)
        try:
            await db0.set("keep", "1")
            await db3.set("drop", "1")
            external.flush()
            assert await db0.get("keep") == b"1"
            assert await db3.get("drop") is None
        finally:
            await db0.aclose()
            await db3.aclose()
        external.close()  # no-op: not ours
        assert backing.ping()

    monkeypatch.setenv(ENV_URL, url)  # the backing server is gone now
    monkeypatch.setattr(redis_server_module, "EXTERNAL_WAIT_SECONDS", 0.5)
    with pytest.raises(RedisServerUnavailable, match="EDGE_TEST_REDIS_URL is set but not usable"):
        provide_redis_server(announce=False)


def _gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (reaped, or a zombie nobody has reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_embedded_server_dies_with_its_parent_process(tmp_path: Path) -> None:
    """kill -9 of the Python process that started valkey-server leaves no orphan."""
    script = tmp_path / "owner.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from edgecore.testing.redis_server import EmbeddedRedisServer
            srv = EmbeddedRedisServer()
            srv.start()
            print(srv.pid, srv.port, flush=True)
            time.sleep(120)
            """
        )
    )
    owner = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert owner.stdout is not None
        pid_text, port_text = owner.stdout.readline().split()
        pid = int(pid_text)
        assert not _gone(pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid), f"valkey-server {pid} survived the death of its parent"
        probe = EmbeddedRedisServer(port=int(port_text))  # nobody must be listening there
        assert not probe.ping(timeout=0.5)
        probe.close()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_embedded_server_survives_the_thread_that_started_it() -> None:
    """PR_SET_PDEATHSIG follows the forking *thread*: starting from a short-lived thread
    (an executor worker, say) must not kill the server when that thread ends."""
    srv = EmbeddedRedisServer()
    try:
        worker = threading.Thread(target=srv.start)
        worker.start()
        worker.join(timeout=20)
        assert srv.running
        time.sleep(0.3)
        assert srv.running
        assert srv.ping()
    finally:
        srv.close()


def test_redis_url_fixture_gives_an_empty_running_server(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    """The shared fixtures: ``redis_url`` empties the session server before each test."""
    with redis_server.client() as conn:
        conn.set("edge:left-behind", "1")
    redis_url = request.getfixturevalue("redis_url")
    assert redis_url == redis_server.url
    with redis_server.client() as conn:
        assert conn.dbsize() == 0


def test_redis_url_fixture_restarts_a_server_left_stopped(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    if not redis_server.restartable:
        pytest.skip("external EDGE_TEST_REDIS_URL server: not restartable")
    port = redis_server.port
    redis_server.stop()  # as a fail-closed test might leave it
    redis_url = request.getfixturevalue("redis_url")
    assert redis_server.running
    assert redis_server.port == port
    assert redis_url == redis_server.url
    assert redis_server.ping()
