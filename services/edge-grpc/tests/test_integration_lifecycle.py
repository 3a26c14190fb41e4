"""The real process through failures and its lifecycle.

Redis stopped mid-run and started again, a backend slower than the
downstream timeout, a stopped backend, no backend URL, rate limits, start-up
refusals, SIGTERM/SIGINT graceful shutdown, and what the logs never contain.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import grpc.aio
import nacl.signing
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_grpc.testing import (
    DeviceSession,
    MockBackendProcess,
    encode_request,
    execute,
    execute_until,
    free_port,
    stream_session,
)
from edgecore.internal_auth import HmacSecretError, load_hmac_secret
from edgecore.keys import SignerKeyError, load_response_signer
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

OK = grpc.StatusCode.OK
UNAVAILABLE_DOWNSTREAM = (grpc.StatusCode.UNAVAILABLE, "downstream service is unavailable", None)
_A = "GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_"


def account_get(session: DeviceSession):
    return session.request("user.account.get", encode_request("user.account.get"))


# --- Redis -----------------------------------------------------------------------------------


async def test_redis_stopped_mid_run_fails_closed_then_recovers(stack, stub):
    if not stack.redis_server.restartable:
        pytest.skip("the Redis server in use cannot be stopped from here")
    session = stack.new_session()
    code, details, _ = await execute(stub, account_get(session))
    assert code == OK, details

    stack.redis_server.stop()
    try:
        started = time.monotonic()
        outcome = await execute(stub, account_get(session))
        assert outcome == (grpc.StatusCode.UNAVAILABLE, "replay store is unavailable", None)
        # Bounded by GATEWAY_REPLAY_REDIS_RESERVE_TIMEOUT (250ms), not by a socket timeout.
        assert time.monotonic() - started < 5.0
        deadline = time.monotonic() + 10
        while stack.gateway.health() != "NOT_SERVING":
            assert time.monotonic() < deadline, "health stayed SERVING with Redis down"
            await asyncio.sleep(0.1)
    finally:
        stack.redis_server.start()

    outcome = await execute_until(stub, lambda: account_get(session), OK, deadline=20)
    assert outcome[0] == OK, outcome
    deadline = time.monotonic() + 20
    while stack.gateway.health() != "SERVING":
        assert time.monotonic() < deadline, "health did not come back"
        await asyncio.sleep(0.1)
    # The stream reader reconnected too: a snapshot published now is applied.
    with stack.redis() as client:
        streamed = stream_session(client)
    outcome = await execute_until(
        stub, lambda: streamed.request("test.unrouted"), grpc.StatusCode.UNIMPLEMENTED, 20
    )
    assert outcome == (grpc.StatusCode.UNIMPLEMENTED, "message_type is not routed", None)


# --- downstream failures ---------------------------------------------------------------------


async def test_backend_slower_than_the_downstream_timeout(stack, gateway_factory):
    gateway = gateway_factory(GATEWAY_AUTHENTICATED_DOWNSTREAM_TIMEOUT="1s")
    session = stack.new_session()
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        code, details, _ = await execute(stub, account_get(session))  # caches the session
        assert code == OK, details
        stack.backend.set_latency(8000)
        try:
            started = time.monotonic()
            outcome = await execute(stub, account_get(session))
            elapsed = time.monotonic() - started
        finally:
            stack.backend.set_latency(0)
    assert outcome == UNAVAILABLE_DOWNSTREAM
    assert 0.9 <= elapsed < 6.0, elapsed  # the 1 s downstream timeout, not the 8 s latency


async def test_backend_stopped(stack, gateway_factory, tmp_path: Path):
    other = MockBackendProcess.start(
        redis_url=stack.redis_server.url,
        hmac_secret_path=stack.secret_path,
        log_path=tmp_path / "other-backend.log",
    )
    try:
        gateway = gateway_factory(GATEWAY_BACKEND_HTTP_URL=other.base_url)
        session = other.new_session(f"stopped-{uuid.uuid4().hex[:6]}@example.com")
        async with grpc.aio.insecure_channel(gateway.target) as channel:
            stub = pb_grpc.EdgeGatewayStub(channel)
            code, details, _ = await execute(stub, account_get(session))
            assert code == OK, details
            assert other.stop() == 0
            assert await execute(stub, account_get(session)) == UNAVAILABLE_DOWNSTREAM
            listing = session.request("lobby.my.games.list", encode_request("lobby.my.games.list"))
            assert await execute(stub, listing) == UNAVAILABLE_DOWNSTREAM
    finally:
        other.stop()


async def test_no_backend_url(stack, gateway_factory):
    gateway = gateway_factory(backend=False)
    assert "GATEWAY_BACKEND_HTTP_URL is unset" in gateway.log()
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        with stack.redis() as client:
            session = stream_session(client)
        outcome = await execute_until(
            stub, lambda: session.request("test.unrouted"), grpc.StatusCode.UNIMPLEMENTED
        )
        assert outcome == (grpc.StatusCode.UNIMPLEMENTED, "message_type is not routed", None)
        # The 18 routes stay mounted and fail closed; they are not "not routed".
        for message_type, body in (
            ("user.account.get", {}),
            ("lobby.my.games.list", {}),
            ("lobby.game.create", {"name": "Andromeda"}),
        ):
            request = session.request(message_type, encode_request(message_type, body))
            assert await execute(stub, request) == UNAVAILABLE_DOWNSTREAM, message_type
        # Without a backend a session the stream never announced cannot be resolved.
        stranger = DeviceSession("never-announced", nacl.signing.SigningKey.generate())
        assert await execute(stub, stranger.request("user.account.get", b"")) == (
            grpc.StatusCode.UNAVAILABLE,
            "session cache is unavailable",
            None,
        )


# --- rate limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("dimension", ["SESSION", "USER", "IP", "MESSAGE_CLASS"])
async def test_rate_limits(stack, gateway_factory, dimension):
    gateway = gateway_factory(
        **{f"{_A}{dimension}_RATE_LIMIT_BURST": "3", f"{_A}{dimension}_RATE_LIMIT_REQUESTS": "1"}
    )
    first, second = stack.new_session(), stack.new_session()
    limited = (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "authenticated request rate limit exceeded",
        None,
    )
    not_routed = (grpc.StatusCode.UNIMPLEMENTED, "message_type is not routed", None)
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        for _ in range(3):
            assert await execute(stub, first.request("test.unrouted")) == not_routed
        assert await execute(stub, first.request("test.unrouted")) == limited
        # Which other requests share the exhausted bucket depends on the dimension.
        other_session = await execute(stub, second.request("test.unrouted"))
        other_class = await execute(stub, first.request("test.other"))
    expected = {
        "SESSION": (not_routed, limited),
        "USER": (not_routed, limited),  # every test user is a different user
        "IP": (limited, limited),
        "MESSAGE_CLASS": (limited, not_routed),
    }[dimension]
    assert (other_session, other_class) == expected


# --- start-up refusals -----------------------------------------------------------------------


def run_refused(
    stack, expected_rc: int, *, core_lines: bool = False, **overrides: str
) -> list[str]:
    env = stack.env(**overrides)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "edge_grpc"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert time.monotonic() - started < 15
    assert done.returncode == expected_rc, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if core_lines:  # gRPC core logs its own bind failure (absl format) before ours
        assert all(re.match(r"[EW]\d{4} ", line) for line in lines[:-1]), done.stderr
        lines = lines[-1:]
    assert len(lines) == 1, done.stderr
    return lines


def test_refuses_to_start_when_redis_is_down(stack):
    port = free_port()
    (line,) = run_refused(stack, 1, GATEWAY_REDIS_MASTER_ADDR=f"127.0.0.1:{port}")
    prefix = (
        f"edge-grpc: cannot start: Redis at 127.0.0.1:{port} (GATEWAY_REDIS_MASTER_ADDR) "
        "is not usable: "
    )
    assert line.startswith(prefix), line
    # redis-py retries a refused connection until the PING bound runs out.
    assert line.removeprefix(prefix) in {
        "Redis unreachable: Connection refused",
        "Redis did not answer PING in time",
    } or line.removeprefix(prefix).startswith("Redis PING failed: ConnectionError"), line


def test_refuses_to_start_with_the_wrong_redis_password(stack):
    (line,) = run_refused(stack, 1, GATEWAY_REDIS_PASSWORD="not-the-password")
    assert line.startswith("edge-grpc: cannot start: Redis at "), line
    # redis-py retries AuthenticationError (a ConnectionError) until the PING bound runs out.
    assert "Redis PING failed: AuthenticationError" in line or "did not answer PING" in line
    assert "not-the-password" not in line


def test_refuses_to_start_with_a_malformed_redis_address(stack):
    (line,) = run_refused(stack, 2, GATEWAY_REDIS_MASTER_ADDR="redis-without-port")
    assert line.startswith("edge-grpc: configuration error: GATEWAY_REDIS_MASTER_ADDR: "), line


@pytest.mark.parametrize(
    "content",
    [
        None,
        b"not a pem file\n",
        b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
    ],
    ids=["missing", "not-pem", "not-pkcs8"],
)
def test_refuses_to_start_with_a_bad_signer_key(stack, tmp_path: Path, content: bytes | None):
    key = tmp_path / "bad-signer.pem"
    if content is not None:
        key.write_bytes(content)
    with pytest.raises(SignerKeyError) as loader:
        load_response_signer(key)
    (line,) = run_refused(stack, 2, GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH=str(key))
    assert line == f"edge-grpc: configuration error: {loader.value}"


def test_refuses_to_start_with_a_short_hmac_secret(stack, tmp_path: Path):
    secret = tmp_path / "short-secret"
    secret.write_bytes(b"too-short\n")
    with pytest.raises(HmacSecretError) as loader:
        load_hmac_secret(secret)
    (line,) = run_refused(stack, 2, GATEWAY_BACKEND_HMAC_SECRET_PATH=str(secret))
    assert line == f"edge-grpc: configuration error: {loader.value}"


def test_refuses_to_start_on_a_taken_port(stack):
    taken = stack.gateway.target
    (line,) = run_refused(stack, 1, core_lines=True, GATEWAY_AUTHENTICATED_GRPC_ADDR=taken)
    assert line.startswith(f"edge-grpc: cannot start: cannot listen on {taken}"), line


def test_check_config(stack):
    done = subprocess.run(
        [sys.executable, "-m", "edge_grpc", "--check-config"],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "edge-grpc: configuration OK"


# --- shutdown --------------------------------------------------------------------------------


async def test_sigterm_drains_in_flight_calls_and_reports_not_serving(stack, gateway_factory):
    gateway = gateway_factory(GATEWAY_SHUTDOWN_TIMEOUT="5s")
    session = stack.new_session()
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        code, details, _ = await execute(stub, account_get(session))
        assert code == OK, details
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stack.backend.set_latency(1500)
        try:
            in_flight = asyncio.create_task(execute(stub, account_get(session)))
            await asyncio.sleep(0.4)
            stopping_at = time.monotonic()
            gateway.signal(signal.SIGTERM)
            changed = await asyncio.wait_for(watch.read(), timeout=5)
            assert changed.status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
            code, details, response = await in_flight
        finally:
            stack.backend.set_latency(0)
        assert code == OK, details
        assert response.result_code == "ok"
    returncode = await asyncio.to_thread(gateway.process.wait, 15)
    assert returncode == 0, gateway.tail()
    assert time.monotonic() - stopping_at < 5.0
    log = gateway.log()
    assert "edge-grpc stopping" in log
    assert "edge-grpc stopped" in log
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        code, _, _ = await execute(pb_grpc.EdgeGatewayStub(channel), account_get(session), 2)
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_shutdown_budget_bounds_a_stuck_call(stack, gateway_factory):
    gateway = gateway_factory(
        GATEWAY_SHUTDOWN_TIMEOUT="1s", GATEWAY_AUTHENTICATED_DOWNSTREAM_TIMEOUT="30s"
    )
    session = stack.new_session()
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        code, details, _ = await execute(stub, account_get(session))
        assert code == OK, details
        stack.backend.set_latency(10_000)
        try:
            in_flight = asyncio.create_task(execute(stub, account_get(session), 20))
            await asyncio.sleep(0.4)
            stopping_at = time.monotonic()
            gateway.signal(signal.SIGTERM)
            returncode = await asyncio.to_thread(gateway.process.wait, 15)
            stopped_after = time.monotonic() - stopping_at
            code, _, _ = await in_flight
        finally:
            stack.backend.set_latency(0)
    assert returncode == 0, gateway.tail()
    assert stopped_after < 4.0, stopped_after
    assert code != OK


def test_sigint_stops_gracefully(gateway_factory):
    gateway = gateway_factory()
    gateway.signal(signal.SIGINT)
    assert gateway.process.wait(timeout=15) == 0
    assert "edge-grpc stopped" in gateway.log()


# --- logs ------------------------------------------------------------------------------------


async def test_logs_are_json_and_hold_no_secrets(stack, gateway_factory):
    """Drive success and reject paths at debug level, then grep everything the process wrote."""
    gateway = gateway_factory(GATEWAY_LOG_LEVEL="debug")
    email = f"hygiene-{uuid.uuid4().hex[:10]}@example.com"
    key = nacl.signing.SigningKey.generate()
    session = DeviceSession(stack.backend.login(email, key), key)
    other = stack.new_session()
    game_name = f"Nebula {uuid.uuid4().hex[:12]}"
    sent: list[object] = []
    received: list[object] = []
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        create = session.request(
            "lobby.game.create", encode_request("lobby.game.create", {"name": game_name})
        )
        requests = [
            create,
            create,  # replay
            account_get(session),  # its response payload carries the e-mail
            session.request("user.account.get", b"\x07" * 40),  # not a table
            session.request("user.account.get", b"x" * 64, claimed_hash=b"\x01" * 32),
            session.request("user.account.get", b"y" * 64, signing_key=other.key),
            session.request("user.account.get", b"z" * 64, timestamp_ms=1),
            session.request("test.unrouted", b"w" * 64),
        ]
        with stack.redis() as client:
            bad_key = base64.b64encode(b"\x05" * 31).decode()
            broken = stream_session(client, public_key=bad_key)
        outcome = await execute_until(
            stub, lambda: broken.request("test.unrouted", b"q" * 48), grpc.StatusCode.UNAVAILABLE
        )
        assert outcome[1] == "session cache is unavailable"
        for request in requests:
            _, _, response = await execute(stub, request)
            sent.append(request)
            if response is not None:
                received.append(response)
    assert len(received) == 2
    assert gateway.stop() == 0
    log = gateway.log()

    secrets = {
        "email": email,
        "game name (payload content)": game_name,
        "device public key": base64.b64encode(bytes(key.verify_key)).decode(),
        "device public key hex": bytes(key.verify_key).hex(),
        "malformed cached key": bad_key,
        "hmac secret": stack.backend.hmac_secret.decode(),
        "redis password": stack.redis_server.password,
        "signer seed": base64.b64encode(stack.signer.seed()).decode(),
        "signer seed hex": stack.signer.seed().hex(),
    }
    for index, message in enumerate(sent + received):
        for name in ("payload_bytes", "payload_hash", "signature"):
            value = getattr(message, name)
            if len(value) >= 16:
                secrets[f"{name} #{index}"] = base64.b64encode(value).decode()
                secrets[f"{name} hex #{index}"] = value.hex()
                secrets[f"{name} urlsafe #{index}"] = base64.urlsafe_b64encode(value).decode()
    leaked = [name for name, value in secrets.items() if value and value in log]
    assert not leaked, leaked
    assert not re.search(rf"(?<!\d){stack.backend.login_code}(?!\d)", log), "login code leaked"

    lines = [line for line in log.splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)  # structured: one JSON object per line
        assert record["service"] == "edge-grpc"
    rejects = [json.loads(line) for line in lines if '"security.reject"' in line]
    assert {r["reject_reason"] for r in rejects} >= {
        "replay_detected",
        "malformed_request",
        "payload_hash_mismatch",
        "invalid_signature",
        "stale_request",
        "route_not_found",
        "session_cache_unavailable",
    }
