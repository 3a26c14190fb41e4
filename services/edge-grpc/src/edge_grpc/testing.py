"""Running edge-grpc for real, for tests and the benchmark: processes, sessions, envelopes.

Nothing here fakes the gateway: ``GatewayProcess`` is ``python -m edge_grpc``
(or any entry point speaking the same environment), ``MockBackendProcess`` is
``python -m mock_backend``, and ``DeviceSession`` signs envelopes with a real
Ed25519 device key exactly as a client does (``edgecore.signing``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc
import grpc.aio
import nacl.signing
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from edgecore.backend.routes import BACKEND_ROUTES
from edgecore.catalog import PROTOCOL_VERSION
from edgecore.clock import wall_clock_ms
from edgecore.fbjson import default_codec
from edgecore.internal_auth import HmacRequestSigner
from edgecore.keys import encode_ed25519_pkcs8_pem
from edgecore.sessions import SessionRecord, SessionStatus
from edgecore.signing import Signer, payload_hash, request_signing_input
from edgecore.streams import encode_session_snapshot
from edgecore.testing.ports import free_port
from galaxy.gateway.v1 import edge_gateway_pb2 as pb

__all__ = [
    "DEFAULT_SESSION_STREAM",
    "DeviceSession",
    "GatewayProcess",
    "ManagedProcess",
    "MockBackendProcess",
    "ProcessFailedError",
    "RouteTargetProcess",
    "decode_response",
    "encode_request",
    "execute",
    "execute_until",
    "free_port",
    "gateway_env",
    "now_ms",
    "raised_rate_limits",
    "stream_session",
    "write_hmac_secret",
    "write_signer_key",
]

READY_TIMEOUT: Final = 30.0
DEFAULT_SESSION_STREAM: Final = "gateway:session_events"
# Variables a child must not inherit from the developer's shell.
_SCRUBBED_PREFIXES: Final = ("GATEWAY_", "OTEL_", "MOCK_BACKEND_")


class ProcessFailedError(RuntimeError):
    """A child process exited or did not become ready; the message carries its log tail."""


def now_ms() -> int:
    return wall_clock_ms()


def write_signer_key(path: Path, signer: Signer | None = None) -> Signer:
    """Write a PKCS#8 PEM response-signer key; returns the signer (its public key verifies)."""
    signer = signer or Signer.generate()
    path.write_bytes(encode_ed25519_pkcs8_pem(signer.seed()))
    return signer


def write_hmac_secret(path: Path, secret: bytes | None = None) -> bytes:
    secret = secret or base64.b64encode(os.urandom(36))
    path.write_bytes(secret + b"\n")
    return secret


def scrubbed_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}


def encode_request(message_type: str, body: Mapping[str, Any] | None = None) -> bytes:
    """The FlatBuffers request payload of a routed message type, from its JSON mapping."""
    return default_codec().encode(BACKEND_ROUTES[message_type].request_table, body or {})


def decode_response(message_type: str, payload: bytes) -> dict[str, Any]:
    return default_codec().decode(BACKEND_ROUTES[message_type].response_table, payload)


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.running:
            self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait; SIGKILL if it ignores it. Returns the exit code."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def fail(self, why: str) -> ProcessFailedError:
        return ProcessFailedError(f"{self.name} {why}:\n{self.tail()}")

    def wait_for_http(self, url: str, timeout: float = READY_TIMEOUT) -> None:
        """Until ``GET url`` answers 200; fail (killing it) if the process dies or stalls."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise self.fail(f"exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - loopback
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.process.kill()
                raise self.fail("did not come up")
            time.sleep(0.1)


def _spawn(
    name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path
) -> ManagedProcess:
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - argv is ours
            list(argv), env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )
    return ManagedProcess(name, process, log_path)


# --------------------------------------------------------------------------------------------
# The mock backend


@dataclass
class MockBackendProcess(ManagedProcess):
    base_url: str = ""
    hmac_secret: bytes = b""
    login_code: str = ""

    @classmethod
    def start(
        cls,
        *,
        redis_url: str,
        hmac_secret_path: Path,
        log_path: Path,
        login_code: str = "739164",
        port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> MockBackendProcess:
        port = port or free_port()
        env = scrubbed_environ()
        env.update(
            MOCK_BACKEND_ADDR=f"127.0.0.1:{port}",
            MOCK_BACKEND_REDIS_URL=redis_url,
            MOCK_BACKEND_HMAC_SECRET_PATH=str(hmac_secret_path),
            MOCK_BACKEND_FIXED_LOGIN_CODE=login_code,
            MOCK_BACKEND_DEV_ENDPOINTS="1",
        )
        env.update(extra_env or {})
        managed = _spawn("mock backend", [sys.executable, "-m", "mock_backend"], env, log_path)
        backend = cls(
            managed.name,
            managed.process,
            managed.log_path,
            base_url=f"http://127.0.0.1:{port}",
            hmac_secret=hmac_secret_path.read_bytes().rstrip(b"\n"),
            login_code=login_code,
        )
        backend.wait_ready()
        return backend

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        self.wait_for_http(f"{self.base_url}/healthz", timeout)

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - loopback URL built here
            self.base_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            data: dict[str, Any] = json.loads(answer.read())
        return data

    def login(self, email: str, device_key: nacl.signing.SigningKey) -> str:
        """Public auth (fixed code) for ``email`` with ``device_key``: the device_session_id."""
        sent = self._post(
            "/api/v1/public/auth/send-email-code", {"email": email, "preferred_language": "en"}
        )
        confirmed = self._post(
            "/api/v1/public/auth/confirm-email-code",
            {
                "challenge_id": sent["challenge_id"],
                "code": self.login_code,
                "client_public_key": base64.b64encode(bytes(device_key.verify_key)).decode(),
                "time_zone": "Europe/Berlin",
            },
        )
        session_id: str = confirmed["device_session_id"]
        return session_id

    def lookup_user_id(self, device_session_id: str) -> str:
        """The signed internal session lookup, as the gateway does it."""
        import httpx  # noqa: PLC0415 - only this helper needs it

        auth = HmacRequestSigner(secret=self.hmac_secret, key_id="edge-grpc-tests")
        with httpx.Client(base_url=self.base_url, auth=auth, timeout=10) as client:
            answer = client.get(f"/api/v1/internal/sessions/{device_session_id}")
        answer.raise_for_status()
        user_id: str = answer.json()["user_id"]
        return user_id

    def set_latency(self, ms: int) -> None:
        self._post("/api/v1/dev/latency", {"ms": ms})

    def new_session(self, email: str) -> DeviceSession:
        key = nacl.signing.SigningKey.generate()
        session_id = self.login(email, key)
        return DeviceSession(session_id, key, user_id=self.lookup_user_id(session_id))


# --------------------------------------------------------------------------------------------
# A passthrough route target (python -m mock_backend.route_target)


@dataclass
class RouteTargetProcess(ManagedProcess):
    port: int = 0
    hmac_secret: bytes = b""

    @classmethod
    def start(
        cls, *, hmac_secret_path: Path, log_path: Path, slow_ms: int = 3000
    ) -> RouteTargetProcess:
        port = free_port()
        env = scrubbed_environ()
        env.update(
            ROUTE_TARGET_ADDR=f"127.0.0.1:{port}",
            ROUTE_TARGET_HMAC_SECRET_PATH=str(hmac_secret_path),
            ROUTE_TARGET_SLOW_MS=str(slow_ms),
        )
        argv = [sys.executable, "-m", "mock_backend.route_target"]
        managed = _spawn("route target", argv, env, log_path)
        target = cls(
            managed.name,
            managed.process,
            managed.log_path,
            port=port,
            hmac_secret=hmac_secret_path.read_bytes().rstrip(b"\n"),
        )
        target.wait_for_http(f"http://127.0.0.1:{port}/_received")
        return target

    def received(self) -> list[dict[str, Any]]:
        """What the target accepted (only correctly signed calls get this far)."""
        url = f"http://127.0.0.1:{self.port}/_received"
        with urllib.request.urlopen(url, timeout=5) as answer:
            data: list[dict[str, Any]] = json.loads(answer.read())
        return data


# --------------------------------------------------------------------------------------------
# The gateway


def gateway_env(
    *,
    grpc_port: int,
    redis_host: str,
    redis_port: int,
    redis_password: str,
    signer_key_path: Path,
    backend_url: str | None = None,
    hmac_secret_path: Path | None = None,
    admin_port: int | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A complete environment for ``python -m edge_grpc`` on 127.0.0.1."""
    env = scrubbed_environ()
    env.update(
        GATEWAY_AUTHENTICATED_GRPC_ADDR=f"127.0.0.1:{grpc_port}",
        GATEWAY_REDIS_MASTER_ADDR=f"{redis_host}:{redis_port}",
        GATEWAY_REDIS_PASSWORD=redis_password,
        GATEWAY_BACKEND_GATEWAY_CLIENT_ID="edge-grpc-tests",
        GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH=str(signer_key_path),
        GATEWAY_SHUTDOWN_TIMEOUT="5s",
    )
    if backend_url is not None:
        env["GATEWAY_BACKEND_HTTP_URL"] = backend_url
    if hmac_secret_path is not None:
        env["GATEWAY_BACKEND_HMAC_SECRET_PATH"] = str(hmac_secret_path)
    if admin_port is not None:
        env["GATEWAY_ADMIN_HTTP_ADDR"] = f"127.0.0.1:{admin_port}"
    env.update(overrides or {})
    return env


@dataclass
class GatewayProcess(ManagedProcess):
    target: str = ""
    admin_url: str | None = None

    @classmethod
    def start(
        cls,
        env: Mapping[str, str],
        *,
        log_path: Path,
        argv: Sequence[str] | None = None,
        wait: bool = True,
    ) -> GatewayProcess:
        """Start it and (``wait``) block until the health service answers SERVING."""
        argv = list(argv) if argv is not None else [sys.executable, "-m", "edge_grpc"]
        managed = _spawn("edge-grpc", argv, env, log_path)
        admin = env.get("GATEWAY_ADMIN_HTTP_ADDR")
        gateway = cls(
            managed.name,
            managed.process,
            managed.log_path,
            target=env["GATEWAY_AUTHENTICATED_GRPC_ADDR"],
            admin_url=f"http://{admin}" if admin else None,
        )
        if wait:
            gateway.wait_serving()
        return gateway

    def health(self, service: str = "", timeout: float = 2.0) -> str:
        """The health status name (SERVING, NOT_SERVING, ...)."""
        with grpc.insecure_channel(self.target) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        return name

    def wait_serving(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise self.fail(f"exited with {self.process.returncode}")
            try:
                if self.health(timeout=1.0) == "SERVING":
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                self.process.kill()
                raise self.fail("did not become SERVING")
            time.sleep(0.1)

    def metrics(self) -> str:
        if self.admin_url is None:
            raise RuntimeError("GATEWAY_ADMIN_HTTP_ADDR is not set for this gateway")
        with urllib.request.urlopen(f"{self.admin_url}/metrics", timeout=5) as answer:  # noqa: S310
            text: str = answer.read().decode()
        return text


# --------------------------------------------------------------------------------------------
# A client device


@dataclass
class DeviceSession:
    """A device session and its key: builds signed ExecuteCommandRequests."""

    device_session_id: str
    key: nacl.signing.SigningKey
    user_id: str = ""

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(bytes(self.key.verify_key)).decode()

    def request(
        self,
        message_type: str,
        payload: bytes = b"",
        *,
        request_id: str | None = None,
        timestamp_ms: int | None = None,
        protocol_version: str = PROTOCOL_VERSION,
        trace_id: str = "",
        claimed_hash: bytes | None = None,
        signing_key: nacl.signing.SigningKey | None = None,
    ) -> Any:
        """A signed request; ``claimed_hash`` / ``signing_key`` tamper with it on purpose."""
        request_id = request_id if request_id is not None else str(uuid.uuid4())
        timestamp_ms = timestamp_ms if timestamp_ms is not None else now_ms()
        digest = payload_hash(payload) if claimed_hash is None else claimed_hash
        signing_input = request_signing_input(
            protocol_version=protocol_version,
            device_session_id=self.device_session_id,
            message_type=message_type,
            timestamp_ms=timestamp_ms,
            request_id=request_id,
            payload_hash=digest,
        )
        signature = (signing_key or self.key).sign(signing_input).signature
        return pb.ExecuteCommandRequest(
            protocol_version=protocol_version,
            device_session_id=self.device_session_id,
            message_type=message_type,
            timestamp_ms=timestamp_ms,
            request_id=request_id,
            payload_bytes=payload,
            payload_hash=digest,
            signature=bytes(signature),
            trace_id=trace_id,
        )


# --------------------------------------------------------------------------------------------
# Calling it


def raised_rate_limits(value: int = 1_000_000) -> dict[str, str]:
    """GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_* budgets high enough for tests and benchmarks."""
    return {
        f"GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_{dimension}_RATE_LIMIT_{knob}": str(value)
        for dimension in ("IP", "SESSION", "USER", "MESSAGE_CLASS", "SESSION_LOOKUP")
        for knob in ("REQUESTS", "BURST")
    }


async def execute(stub: Any, request: Any, rpc_timeout: float = 10.0) -> tuple[Any, str, Any]:
    """``(grpc.StatusCode, details, response-or-None)`` of one ExecuteCommand call."""
    try:
        response = await stub.ExecuteCommand(request, timeout=rpc_timeout)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), str(exc.details() or ""), None
    return grpc.StatusCode.OK, "", response


async def execute_until(
    stub: Any, make: Callable[[], Any], wanted: Any, deadline: float = 5.0
) -> tuple[Any, str, Any]:
    """Send fresh requests until the answer's code is ``wanted`` (stream entries are async)."""
    stop = time.monotonic() + deadline
    while True:
        outcome = await execute(stub, make())
        if outcome[0] == wanted or time.monotonic() > stop:
            return outcome
        await asyncio.sleep(0.05)


def stream_session(
    client: redis.Redis,
    *,
    stream: str = DEFAULT_SESSION_STREAM,
    status: SessionStatus = SessionStatus.ACTIVE,
    public_key: str | None = None,
) -> DeviceSession:
    """A session only the session-events stream knows (the backend never heard of it)."""
    session = DeviceSession(
        f"streamed-{uuid.uuid4()}",
        nacl.signing.SigningKey.generate(),
        user_id=f"user-{uuid.uuid4()}",
    )
    record = SessionRecord(
        device_session_id=session.device_session_id,
        user_id=session.user_id,
        client_public_key=session.public_key_b64 if public_key is None else public_key,
        status=status,
        created_at_ms=now_ms(),
    )
    client.xadd(stream, encode_session_snapshot(record))  # type: ignore[arg-type]
    return session
