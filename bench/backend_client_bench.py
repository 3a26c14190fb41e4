"""CPU the gateway spends in its backend adapter per command (figures, not a test).

Starts a real Redis and the mock backend (``python -m mock_backend``), logs one
user in, then sends ``user.account.get`` through ``edgecore.backend``'s
``BackendCommandClient`` (FlatBuffers -> JSON -> HMAC-signed HTTP POST ->
JSON -> FlatBuffers), ``--concurrency`` in flight, with each HTTP transport in
turn. It reports the CPU time of this (the gateway-side) process per command,
the mock backend's CPU per command separately, and the throughput. Rounds
alternate between transports so a busy machine affects both alike.

    uv run python bench/backend_client_bench.py
    uv run python bench/backend_client_bench.py --requests 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import nacl.signing
from httpx_aiohttp import AiohttpTransport
from proctree import process_tree

from edge_grpc.testing import MockBackendProcess
from edgecore.backend.client import BackendClient
from edgecore.backend.commands import BackendCommandClient
from edgecore.backend.routes import BACKEND_ROUTES
from edgecore.downstream import AuthenticatedCommand
from edgecore.fbjson import default_codec
from edgecore.internal_auth import HmacRequestSigner
from edgecore.testing.redis_server import EmbeddedRedisServer

TRANSPORTS: dict[str, Callable[[], httpx.AsyncBaseTransport]] = {
    "httpx (httpcore pool)": lambda: httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)
    ),
    "httpx + aiohttp transport": AiohttpTransport,
}


def cpu_seconds(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in process_tree(pid):
        fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def run(
    backend: MockBackendProcess,
    user_id: str,
    transport: httpx.AsyncBaseTransport,
    args: argparse.Namespace,
) -> tuple[float, float, float]:
    codec = default_codec()
    route = BACKEND_ROUTES["user.account.get"]
    client = BackendClient(
        base_url=backend.base_url,
        timeout=timedelta(seconds=5),
        auth=HmacRequestSigner(secret=backend.hmac_secret, key_id="bench"),
        client_id="bench",
        transport=transport,
    )
    command_client = BackendCommandClient(route, client, codec)
    payload = codec.encode(route.request_table, {})
    command = AuthenticatedCommand(
        user_id=user_id, device_session_id="ds", message_type="user.account.get",
        payload=payload, request_id="r", trace_id="",
    )  # fmt: skip
    for _ in range(200):  # warm the pool
        await command_client.execute(command)
    remaining = args.requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            result = await command_client.execute(command)
            assert result.result_code == "ok", result.result_code

    backend_before = cpu_seconds(backend.process.pid)
    before, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    cpu, wall = time.process_time() - before, time.perf_counter() - started
    backend_cpu = cpu_seconds(backend.process.pid) - backend_before
    await client.aclose()
    return cpu / args.requests * 1e6, backend_cpu / args.requests * 1e6, args.requests / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedisServer() as redis_server:
        secret = Path(tmp) / "hmac"
        secret.write_bytes(os.urandom(32).hex().encode())
        backend = MockBackendProcess.start(
            redis_url=redis_server.url, hmac_secret_path=secret, log_path=Path(tmp) / "backend.log"
        )
        try:
            session = backend.login("bench@example.com", nacl.signing.SigningKey.generate())
            user_id = backend.lookup_user_id(session)
            figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in TRANSPORTS}
            for _ in range(args.rounds):
                for name, make in TRANSPORTS.items():
                    figures[name].append(asyncio.run(run(backend, user_id, make(), args)))
        finally:
            backend.process.terminate()
            backend.process.wait(10)
    load = os.getloadavg()[0]
    print(
        f"user.account.get through BackendCommandClient, {args.concurrency} in flight, "
        f"{args.requests} per round, {args.rounds} rounds (median [min-max]); load {load:.2f}"
    )
    print(f"{'transport':28} {'gateway CPU/cmd':>22} {'backend CPU/cmd':>22} {'cmd/s':>18}")
    for name, rows in figures.items():
        cells = []
        for index, unit in ((0, "µs"), (1, "µs"), (2, "")):
            values = [row[index] for row in rows]
            cells.append(
                f"{statistics.median(values):6.0f}{unit} [{min(values):.0f}-{max(values):.0f}]"
            )
        print(f"{name:28} {cells[0]:>22} {cells[1]:>22} {cells[2]:>18}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
