"""Running real service processes in tests and the dev runner.

A ``ManagedProcess`` starts ``python -m <module>`` with an explicit
environment, sends its output to a log file (which tests read and grep for
secrets), waits until it answers on its port, and stops it with SIGTERM
(then SIGKILL after a bound). It dies with its parent, so a killed test run
leaves no orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["ManagedProcess", "wait_for_port"]

_PR_SET_PDEATHSIG = 1


def wait_for_port(port: int, *, timeout: float, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.05)
    return False


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ManagedProcess:
    def __init__(
        self,
        module: str,
        env: Mapping[str, str],
        *,
        log_path: Path,
        port: int | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.module = module
        self.env = dict(env)
        self.log_path = log_path
        self.port = port
        self.args = args
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process else None

    def start(self, *, ready_timeout: float = 30.0) -> Self:
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "MOCK_BACKEND_"))
        }
        self._log = self.log_path.open("ab")
        argv = [sys.executable, "-m", self.module, *self.args]
        setpriv = shutil.which("setpriv")
        # setpriv sets the parent-death signal without a Python preexec_fn, so Popen can
        # vfork+exec: a fork() while gRPC threads are busy in the parent can crash the child.
        self._process = subprocess.Popen(  # noqa: S603
            [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv,
            env={**base, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=None if setpriv else _die_with_parent,  # noqa: PLW1509
        )
        if self.port is not None and not self._wait_ready(ready_timeout):
            self.stop()
            raise RuntimeError(
                f"{self.module} did not listen on {self.port}:\n{self.log()[-4000:]}"
            )
        return self

    def _wait_ready(self, timeout: float) -> bool:
        assert self.port is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if wait_for_port(self.port, timeout=0.2):
                return True
        return False

    def signal(self, signum: int) -> None:
        if self._process is not None and self.running:
            self._process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self._process is not None
        return self._process.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return process.returncode

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
