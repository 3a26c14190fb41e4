"""The real push-hub process: start-up refusals, Redis restarts, shutdown, log hygiene."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from edgecore.testing.redis_server import EmbeddedRedisServer

pytestmark = pytest.mark.integration

KEYS = Path(__file__).parents[3] / "libs" / "edgecore" / "tests" / "data" / "keys"
BIG = 48 * 1024


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_to_exit(hub_harness, **overrides: str) -> tuple[subprocess.CompletedProcess[str], float]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "push_hub"],
        env={**base, **hub_harness.env(**overrides)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, time.monotonic() - started


async def test_startup_is_refused_when_redis_or_the_signer_key_is_unusable(hub_harness):
    port = _unused_port()
    down, elapsed = _run_to_exit(
        hub_harness,
        GATEWAY_REDIS_MASTER_ADDR=f"127.0.0.1:{port}",
        GATEWAY_REDIS_OPERATION_TIMEOUT="500ms",
    )
    assert down.returncode == 1
    assert down.stderr.splitlines()[-1].startswith(
        f"push-hub: cannot start: Redis at 127.0.0.1:{port} (GATEWAY_REDIS_MASTER_ADDR) "
        "is not usable: "
    )
    assert elapsed < 15

    redis_addr = f"{hub_harness.redis_server.host}:{hub_harness.redis_server.port}"
    wrong_password, _ = _run_to_exit(hub_harness, GATEWAY_REDIS_PASSWORD="not-the-password")
    assert wrong_password.returncode == 1
    assert wrong_password.stderr.splitlines()[-1] == (
        f"push-hub: cannot start: Redis at {redis_addr} (GATEWAY_REDIS_MASTER_ADDR) "
        "is not usable: Redis PING failed: AuthenticationError"
    )
    assert "not-the-password" not in wrong_password.stderr

    key = KEYS / "rsa-pkcs8.pem"
    bad_key, _ = _run_to_exit(hub_harness, GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH=str(key))
    assert (bad_key.returncode, bad_key.stderr) == (
        2,
        f"push-hub: configuration error: response signer key file {key} is not Ed25519: "
        "its algorithm is RSA\n",
    )

    no_secret, _ = _run_to_exit(
        hub_harness,
        GATEWAY_BACKEND_HTTP_URL="http://127.0.0.1:9",
        GATEWAY_BACKEND_HMAC_SECRET_PATH=str(hub_harness.tmp_path / "missing-secret"),
    )
    assert no_secret.returncode == 2
    assert no_secret.stderr.startswith("push-hub: configuration error: ")
    assert len(no_secret.stderr.splitlines()) == 1

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        in_use, _ = _run_to_exit(hub_harness, GATEWAY_AUTHENTICATED_GRPC_ADDR=taken)
    finally:
        busy.close()
    assert in_use.returncode == 1
    assert (
        f"push-hub: cannot start: cannot listen on {taken} (GATEWAY_AUTHENTICATED_GRPC_ADDR): "
        "address in use or not available"
    ) in in_use.stderr.splitlines()


async def test_sigterm_ends_every_stream_with_unavailable_within_the_bound(hub_harness, unique):
    hub = hub_harness.start_hub(
        GATEWAY_SHUTDOWN_TIMEOUT="2s", GATEWAY_PUSH_STREAM_QUEUE_CAPACITY="2"
    )
    devices = [hub_harness.device(unique, f"d{i}", user=f"u{i % 2}") for i in range(3)]
    stalled_device = hub_harness.device(unique, "stalled", user="u0")
    await hub_harness.add_sessions(*devices, stalled_device)
    streams = [await hub_harness.open(hub, d) for d in devices]
    # One reader has stopped reading and its last write is stuck in flow control.
    stalled = await hub_harness.open(
        hub, stalled_device, stub=hub_harness.stub(hub, **{"grpc.http2.bdp_probe": 0})
    )
    for index in range(3):
        await hub_harness.publish(
            stalled_device.user_id,
            f"big-{index}",
            device_session_id=stalled_device.device_session_id,
            payload=b"x" * BIG,
        )
    await asyncio.sleep(0.3)
    assert hub.metric("gateway_push_active_streams") == 4

    started = time.monotonic()
    hub.signal(signal.SIGTERM)
    for stream in streams:
        assert await stream.status(timeout=5) == (
            grpc.StatusCode.UNAVAILABLE,
            "gateway is shutting down",
        )
    assert time.monotonic() - started < 4.0
    assert await asyncio.to_thread(hub.wait, 10) == 0
    # The server's grace (GATEWAY_SHUTDOWN_TIMEOUT) bounds the stalled stream too.
    assert time.monotonic() - started < 2 + 6
    assert '"open_streams":4' in hub.log()
    stalled.call.cancel()


async def test_a_redis_that_lost_its_data_ends_streams_with_the_history_gone_status(
    hub_harness, redis_server, unique
):
    """The shared test Redis keeps nothing on disk: what a stream was owed may be gone
    with it, so the stream is told so explicitly instead of silently skipping events."""
    if not redis_server.restartable:
        pytest.skip("EDGE_TEST_REDIS_URL server: cannot be stopped from the tests")
    hub = hub_harness.start_hub()
    device = hub_harness.device(unique)
    await hub_harness.add_sessions(device)
    stream = await hub_harness.open(hub, device)
    await hub_harness.publish(device.user_id, "before")
    before = await stream.read()
    assert before.event_id == "before"

    await hub_harness.drop_redis()  # our own client's connections die with the server
    redis_server.stop()
    try:
        await asyncio.to_thread(hub.wait_health, serving=False, timeout=10)
    finally:
        redis_server.start()
    await hub_harness.add_sessions(device)  # the session cache is in-process; Redis was empty
    status = await stream.status()
    assert status == (
        grpc.StatusCode.OUT_OF_RANGE,
        "resume position is older than the event history",
    )
    await asyncio.to_thread(hub.wait_health, serving=True, timeout=10)
    assert hub.metric("gateway_push_stream_reader_reconnects_total", stream="client_events") >= 1

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await hub_harness.open(hub, device, resume_position=before.position)
    assert refused.value.code() == grpc.StatusCode.OUT_OF_RANGE
    fresh = await hub_harness.open(hub, device)
    await hub_harness.publish(device.user_id, "after")
    assert (await fresh.read()).event_id == "after"
    assert hub.metric("gateway_push_active_streams") == 1


async def test_unread_entries_survive_a_persistent_redis_restart(harness_factory, unique):
    server = EmbeddedRedisServer()
    server.start()
    harness = harness_factory(server, "persistent")
    try:
        hub = harness.start_hub()
        device = harness.device(unique)
        await harness.add_sessions(device)
        stream = await harness.open(hub, device)
        await harness.publish(device.user_id, "before")
        assert (await stream.read()).event_id == "before"

        # Freeze the hub and cut its Redis connections, so that what follows is published
        # while it cannot read; then restart Redis with its data (RDB saved on SIGTERM).
        await harness.redis.config_set("save", "3600 1")
        hub.signal(signal.SIGSTOP)
        try:
            await harness.redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            await harness.publish(device.user_id, "unread-1")
            await harness.publish(device.user_id, "unread-2")
            await harness.drop_redis()
            server.stop()
            server.start()
            assert await harness.redis.xlen(f"gateway:events:user:{device.user_id}") == 3
        finally:
            hub.signal(signal.SIGCONT)
        await harness.publish(device.user_id, "after")
        assert [e.event_id for e in await stream.read_n(3)] == ["unread-1", "unread-2", "after"]
    finally:
        await harness.aclose()
        for hub in harness.hubs:
            hub.stop()
        server.close()


async def test_logs_hold_no_payloads_keys_signatures_or_secrets(hub_harness, unique):
    hub = hub_harness.start_hub(GATEWAY_LOG_LEVEL="debug")
    device = hub_harness.device(unique)
    await hub_harness.add_sessions(device)
    stream = await hub_harness.open(hub, device, trace_id="trace-" + unique)
    marker = b"PAYLOAD-MARKER-" + unique.encode()
    await hub_harness.publish(device.user_id, "ev-1", payload=marker, request_id="r-" + unique)
    event = await stream.read()
    bad = hub_harness.stub(hub).SubscribeEvents(
        hub_harness.subscribe_request(device, key=type(device.key).generate())
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await bad.read()
    await hub_harness.revoke(device)
    await stream.status()
    hub.stop()

    log = hub.log()
    assert "stream opened" in log
    assert "authenticated request rejected" in log
    assert "revoked session's streams closed" in log
    forbidden = {
        "payload": marker.decode(),
        "payload (base64)": base64.b64encode(marker).decode(),
        "client public key": device.key.public_key_b64,
        "event signature": base64.b64encode(event.signature).decode(),
        "event signature (hex)": event.signature.hex(),
        "request signature": base64.b64encode(stream.request.signature).decode(),
        "payload hash (hex)": event.payload_hash.hex(),
        "redis password": hub_harness.redis_server.password,
        "signer seed": base64.b64encode(hub_harness.server_signer.seed()).decode(),
        "signer PEM": hub_harness.key_path.read_text().splitlines()[1],
    }
    leaked = [name for name, value in forbidden.items() if value in log]
    assert leaked == []
