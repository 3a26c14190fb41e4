"""Fixtures of the push-hub tests: the real service process, a real Redis, real gRPC clients.

``hub_harness`` hands out a :class:`Harness` that starts ``python -m push_hub``
processes against the session's Redis (``redis_server``), seeds sessions
through session snapshots on the session-events stream, publishes client
events, and opens signed SubscribeEvents streams with grpc.aio.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgeclient.envelope import sign_request
from edgeclient.keys import DeviceKey
from edgecore.catalog import SUBSCRIBE_EVENTS_MESSAGE_TYPE
from edgecore.keys import encode_ed25519_pkcs8_pem
from edgecore.payloads import encode_subscribe_options
from edgecore.sessions import SessionRecord, SessionStatus
from edgecore.signing import Signer
from edgecore.streams import ClientEvent, StreamPublisher
from edgecore.testing.ports import free_port
from edgecore.testing.redis_server import RedisServer
from galaxy.gateway.v1 import edge_gateway_pb2 as pb
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

SESSION_STREAM = "gateway:session_events"
RAISED_LIMITS = {
    f"GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_{dim}_RATE_LIMIT_{what}": value
    for dim in ("IP", "SESSION", "USER", "MESSAGE_CLASS", "SESSION_LOOKUP")
    for what, value in (("REQUESTS", "100000"), ("BURST", "10000"))
}


def _dies_with_parent(argv: list[str]) -> list[str]:
    """SIGKILL the child when the test runner dies, without a preexec_fn.

    A Python preexec_fn forces fork(); a child forked while gRPC threads are busy
    (open streams in this process) sometimes crashes before exec. ``setpriv`` lets
    Popen vfork+exec instead.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


class HubProcess:
    """``python -m push_hub`` with its log in a file; stopped with SIGTERM."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.port = int(self.env["GATEWAY_AUTHENTICATED_GRPC_ADDR"].rsplit(":", 1)[1])
        admin = self.env.get("GATEWAY_ADMIN_HTTP_ADDR")
        self.admin_port = int(admin.rsplit(":", 1)[1]) if admin else None
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_serving: bool = True, timeout: float = 30.0) -> HubProcess:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                _dies_with_parent([sys.executable, "-m", "push_hub"]),
                env={**base, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait_serving:
            self.wait_health(serving=True, timeout=timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def health(self) -> int | None:
        """The overall health status, None when it does not answer."""
        with grpc.insecure_channel(self.address) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1.0
                )
            except grpc.RpcError:
                return None
        return int(answer.status)

    def wait_health(self, *, serving: bool, timeout: float = 30.0) -> None:
        want = health_pb2.HealthCheckResponse.SERVING
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"push-hub exited early:\n{self.log()[-4000:]}")
            if (self.health() == want) == serving:
                return
            time.sleep(0.05)
        raise TimeoutError(f"push-hub health never became serving={serving}:\n{self.log()[-4000:]}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def metrics(self) -> str:
        assert self.admin_port is not None
        url = f"http://127.0.0.1:{self.admin_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text: str = answer.read().decode()
            return text

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` that carry ``labels`` (0.0 when none)."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name):
                continue
            sample, _, value = line.rpartition(" ")
            metric, _, label_text = sample.partition("{")
            if metric != name:
                continue
            found = dict(
                part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part
            )
            if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
                total += float(value)
        return total


@dataclass
class Device:
    user_id: str
    device_session_id: str
    key: DeviceKey = field(default_factory=DeviceKey.generate)

    def record(self, status: SessionStatus = SessionStatus.ACTIVE) -> SessionRecord:
        return SessionRecord(
            device_session_id=self.device_session_id,
            user_id=self.user_id,
            client_public_key=self.key.public_key_b64,
            status=status,
            created_at_ms=1,
            revoked_at_ms=2 if status is SessionStatus.REVOKED else None,
            revoke_reason="revoked_by_user" if status is SessionStatus.REVOKED else None,
        )


def subscribe_request(
    device: Device,
    *,
    request_id: str | None = None,
    trace_id: str = "",
    message_type: str = SUBSCRIBE_EVENTS_MESSAGE_TYPE,
    timestamp_ms: int | None = None,
    payload: bytes = b"",
    key: DeviceKey | None = None,
) -> pb.SubscribeEventsRequest:
    signed = sign_request(
        key or device.key,
        device_session_id=device.device_session_id,
        message_type=message_type,
        timestamp_ms=timestamp_ms if timestamp_ms is not None else time.time_ns() // 1_000_000,
        request_id=request_id or f"req-{uuid.uuid4()}",
        payload=payload,
    )
    return pb.SubscribeEventsRequest(**signed.envelope_fields(), trace_id=trace_id)


class OpenStream:
    """A SubscribeEvents call whose bootstrap event has been read."""

    def __init__(self, call: Any, bootstrap: pb.GatewayEvent, request: pb.SubscribeEventsRequest):
        self.call = call
        self.bootstrap = bootstrap
        self.request = request

    async def read(self, timeout: float = 10.0) -> pb.GatewayEvent:
        async with asyncio.timeout(timeout):
            message = await self.call.read()
        assert message is not grpc.aio.EOF, "stream ended without a status"
        return message  # type: ignore[no-any-return]

    async def read_n(self, count: int, timeout: float = 10.0) -> list[pb.GatewayEvent]:
        return [await self.read(timeout) for _ in range(count)]

    async def status(self, timeout: float = 10.0) -> tuple[grpc.StatusCode, str]:
        """Read until the stream ends; return its status (events read meanwhile are dropped)."""
        async with asyncio.timeout(timeout):
            try:
                while True:
                    message = await self.call.read()
                    if message is grpc.aio.EOF:
                        break
            except grpc.aio.AioRpcError as exc:
                return exc.code(), exc.details() or ""
            return await self.call.code(), await self.call.details()


class Harness:
    def __init__(self, redis_server: RedisServer, tmp_path: Path) -> None:
        self.redis_server = redis_server
        self.tmp_path = tmp_path
        self.server_signer = Signer.generate()
        self.key_path = tmp_path / "signer.pem"
        self.key_path.write_bytes(encode_ed25519_pkcs8_pem(self.server_signer.seed()))
        self.hubs: list[HubProcess] = []
        self._channels: list[grpc.aio.Channel] = []
        self._redis: aioredis.Redis | None = None

    @property
    def server_public_key(self) -> bytes:
        return self.server_signer.public_key

    subscribe_request = staticmethod(subscribe_request)

    @staticmethod
    def device(unique: str, name: str = "dev", *, user: str = "user") -> Device:
        return Device(user_id=f"{user}-{unique}", device_session_id=f"{name}-{unique}")

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            "GATEWAY_AUTHENTICATED_GRPC_ADDR": f"127.0.0.1:{free_port()}",
            "GATEWAY_ADMIN_HTTP_ADDR": f"127.0.0.1:{free_port()}",
            "GATEWAY_REDIS_MASTER_ADDR": f"{self.redis_server.host}:{self.redis_server.port}",
            "GATEWAY_REDIS_PASSWORD": self.redis_server.password,
            "GATEWAY_BACKEND_GATEWAY_CLIENT_ID": "push-hub-test",
            "GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH": str(self.key_path),
            "GATEWAY_BACKEND_PUSH_RECONNECT_BASE_BACKOFF": "50ms",
            "GATEWAY_BACKEND_PUSH_RECONNECT_MAX_BACKOFF": "500ms",
            "GATEWAY_SHUTDOWN_TIMEOUT": "3s",
            "GATEWAY_LOG_LEVEL": "debug",
            **RAISED_LIMITS,
            **overrides,
        }

    def start_hub(self, *, name: str = "hub", **overrides: str) -> HubProcess:
        hub = HubProcess(self.env(**overrides), self.tmp_path / f"{name}.log")
        self.hubs.append(hub)
        return hub.start()

    # -- Redis side ----------------------------------------------------------------------------
    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = aioredis.Redis(
                host=self.redis_server.host,
                port=self.redis_server.port,
                password=self.redis_server.password,
            )
        return self._redis

    def publisher(self) -> StreamPublisher:
        return StreamPublisher(self.redis, session_stream=SESSION_STREAM)

    async def add_sessions(self, *devices: Device) -> None:
        for device in devices:
            await self.publisher().publish_session(device.record())

    async def revoke(self, device: Device) -> None:
        await self.publisher().publish_session(device.record(SessionStatus.REVOKED))

    async def publish(
        self,
        user_id: str,
        event_id: str,
        *,
        device_session_id: str | None = None,
        event_type: str = "lobby.invite.received",
        payload: bytes = b"payload",
        request_id: str | None = None,
        trace_id: str | None = None,
    ) -> str:
        return await self.publisher().publish_client_event(
            ClientEvent(
                user_id=user_id,
                event_type=event_type,
                event_id=event_id,
                payload=payload,
                device_session_id=device_session_id,
                request_id=request_id,
                trace_id=trace_id,
            )
        )

    # -- gRPC side -----------------------------------------------------------------------------
    def channel(self, hub: HubProcess, **options: Any) -> grpc.aio.Channel:
        """A channel on its own connection (no subchannel sharing between channels)."""
        opts = {"grpc.use_local_subchannel_pool": 1, **options}
        channel = grpc.aio.insecure_channel(hub.address, options=list(opts.items()))
        self._channels.append(channel)
        return channel

    def stub(self, hub: HubProcess, **options: Any) -> Any:
        return pb_grpc.EdgeGatewayStub(self.channel(hub, **options))

    async def open(
        self,
        hub: HubProcess,
        device: Device,
        *,
        stub: Any = None,
        trace_id: str = "",
        wait_for_session: float = 10.0,
        resume_position: str | None = None,
    ) -> OpenStream:
        """Open a stream and read its bootstrap event.

        Retries while the session snapshot has not reached the hub yet
        (UNAVAILABLE: no backend is configured, so a cache miss fails closed).
        """
        stub = stub or self.stub(hub)
        deadline = time.monotonic() + wait_for_session
        while True:
            payload = b"" if resume_position is None else encode_subscribe_options(resume_position)
            request = subscribe_request(device, trace_id=trace_id, payload=payload)
            call = stub.SubscribeEvents(request)
            try:
                async with asyncio.timeout(10):
                    first = await call.read()
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    continue
                raise
            assert first is not grpc.aio.EOF
            return OpenStream(call, first, request)

    async def drop_redis(self) -> None:
        """Close our Redis client (its connections do not survive a server restart)."""
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def aclose(self) -> None:
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


@pytest.fixture
async def hub_harness(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> AsyncIterator[Harness]:
    harness = Harness(redis_server, tmp_path)
    try:
        yield harness
    finally:
        await harness.aclose()
        for hub in harness.hubs:
            hub.stop()


@pytest.fixture
async def harness_factory(tmp_path: Path) -> AsyncIterator[Callable[[RedisServer, str], Harness]]:
    """Harnesses on servers a test runs itself (for example a persistent Redis)."""
    made: list[Harness] = []

    def make(server: RedisServer, name: str) -> Harness:
        directory = tmp_path / name
        directory.mkdir()
        harness = Harness(server, directory)
        made.append(harness)
        return harness

    try:
        yield make
    finally:
        for harness in made:
            await harness.aclose()
            for hub in harness.hubs:
                hub.stop()


@pytest.fixture
def unique() -> Iterator[str]:
    yield uuid.uuid4().hex[:8]
