"""Test helpers of public-rest (used by its tests and the benchmark; no pytest here).

* in-process: ``FakeAuth`` (a scripted ``AuthServiceClient``), ``anti_abuse``
  (settings from short names), ``asgi_client`` (httpx over ASGI with a chosen
  TCP peer);
* processes: ``start_mock_backend`` (``python -m mock_backend``) and
  ``start_gateway`` (``python -m public_rest``, Granian) on free ports, each a
  ``Process`` that stops with SIGTERM.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from edgecore.config.sections import PublicAntiAbuseSettings
from edgecore.internal_auth import HmacRequestSigner
from edgecore.testing.ports import free_port

__all__ = [
    "ANTI_ABUSE_PREFIX",
    "CLIENT_ID",
    "CONFIRM",
    "LOGIN_CODE",
    "SECRET",
    "SEND",
    "FakeAuth",
    "MockBackend",
    "Process",
    "ProcessError",
    "anti_abuse",
    "asgi_client",
    "free_port",
    "public_key",
    "start_gateway",
    "start_mock_backend",
]

SECRET: Final = b"public-rest-test-hmac-secret-0123456789abcdef"
LOGIN_CODE: Final = "424242"
CLIENT_ID: Final = "public-rest-tests"
SEND: Final = "/api/v1/public/auth/send-email-code"
CONFIRM: Final = "/api/v1/public/auth/confirm-email-code"
ANTI_ABUSE_PREFIX: Final = "GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_"


def public_key(seed: int = 1) -> str:
    return base64.b64encode(bytes([seed % 256]) * 32).decode()


def anti_abuse(**values: Any) -> PublicAntiAbuseSettings:
    """Settings from ``public_auth_burst=3``-style names: the variable's suffix, lower case.

    ``public_auth_burst`` and ``public_auth_requests`` are short for
    ``..._RATE_LIMIT_BURST`` / ``..._RATE_LIMIT_REQUESTS`` (and ``_window``).
    """
    env = {}
    for name, value in values.items():
        key = name.upper()
        for short in ("BURST", "REQUESTS", "WINDOW"):
            if key.endswith("_" + short) and "RATE_LIMIT" not in key:
                key = key[: -len(short)] + "RATE_LIMIT_" + short
        env[ANTI_ABUSE_PREFIX + key] = str(value)
    return PublicAntiAbuseSettings.model_validate(env)


class FakeAuth:
    """An AuthServiceClient that records calls and answers from a script."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.send_result: Any = "ch_test"
        self.confirm_result: Any = "ds_test"
        self.delay = 0.0

    async def _answer(self, result: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(result, BaseException):
            raise result
        return str(result)

    async def send_email_code(self, email: str, preferred_language: str) -> str:
        self.calls.append(("send", (email, preferred_language)))
        return await self._answer(self.send_result)

    async def confirm_email_code(
        self, challenge_id: str, code: str, client_public_key: str, time_zone: str
    ) -> str:
        self.calls.append(("confirm", (challenge_id, code, client_public_key, time_zone)))
        return await self._answer(self.confirm_result)


def asgi_client(app: Any, peer: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")


class ProcessError(RuntimeError):
    """A process did not start or stop as expected (the message carries its log)."""


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ProcessError(f"process exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise ProcessError(f"process did not listen on {port}:\n{log.read_text()}")
        time.sleep(0.05)


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int
    admin_port: int | None = None
    stopped: bool = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 10)
        return httpx.Client(base_url=self.base_url, **kwargs)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then wait; returns the exit code (kills and raises past ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise ProcessError(f"{self.name} ignored SIGTERM:\n{self.log()}") from None
        self.stopped = True
        return self.process.returncode


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "MOCK_BACKEND_", "OTEL_"))
    }


@dataclass
class MockBackend(Process):
    secret: bytes = SECRET

    def signed(self) -> httpx.Client:
        signer = HmacRequestSigner(secret=self.secret, key_id=CLIENT_ID)
        return httpx.Client(base_url=self.base_url, auth=signer, timeout=10)

    def set_latency(self, ms: int) -> None:
        with self.client() as client:
            response = client.post("/api/v1/dev/latency", json={"ms": ms})
        if response.status_code != 200:
            raise ProcessError(f"latency: {response.status_code} {response.text}")

    def login_code(self, email: str) -> str:
        with self.client() as client:
            response = client.get("/api/v1/dev/login-code", params={"email": email})
        if response.status_code != 200:
            raise ProcessError(f"login-code: {response.status_code}")
        return str(response.json()["code"])


def start_mock_backend(
    *, redis_url: str, secret_path: Path, log_path: Path, secret: bytes = SECRET
) -> MockBackend:
    port = free_port()
    env = clean_env()
    env.update(
        MOCK_BACKEND_ADDR=f"127.0.0.1:{port}",
        MOCK_BACKEND_REDIS_URL=redis_url,
        MOCK_BACKEND_HMAC_SECRET_PATH=str(secret_path),
        MOCK_BACKEND_FIXED_LOGIN_CODE=LOGIN_CODE,
        MOCK_BACKEND_DEV_ENDPOINTS="1",
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mock_backend"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    backend = MockBackend("mock-backend", process, log_path, port, secret=secret)
    try:
        _wait_port(port, process, log_path, 30)
    except ProcessError:
        backend.stopped = True
        raise
    return backend


def start_gateway(
    *,
    log_path: Path,
    backend_url: str | None = None,
    secret_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    admin: bool = True,
    log_level: str = "debug",
) -> Process:
    """``python -m public_rest`` on a free port (and a free admin port), ready to serve."""
    port = free_port()
    admin_port = free_port() if admin else None
    full_env = clean_env()
    full_env.update(
        GATEWAY_PUBLIC_HTTP_ADDR=f"127.0.0.1:{port}",
        GATEWAY_BACKEND_GATEWAY_CLIENT_ID=CLIENT_ID,
        GATEWAY_LOG_LEVEL=log_level,
        GATEWAY_SHUTDOWN_TIMEOUT="5s",
    )
    if admin_port is not None:
        full_env["GATEWAY_ADMIN_HTTP_ADDR"] = f"127.0.0.1:{admin_port}"
    if backend_url is not None:
        full_env["GATEWAY_BACKEND_HTTP_URL"] = backend_url
        if secret_path is not None:
            full_env["GATEWAY_BACKEND_HMAC_SECRET_PATH"] = str(secret_path)
    full_env.update(env or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "public_rest", *args],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    gateway = Process("public-rest", process, log_path, port, admin_port)
    try:
        _wait_port(port, process, log_path, 30)
        if admin_port is not None:
            _wait_port(admin_port, process, log_path, 10)
    except ProcessError:
        gateway.stopped = True
        raise
    return gateway
