"""CPU the gateway spends in its backend adapter per command (figures, not a test).

Starts a real Redis and the mock backend (``python -m mock_backend``), logs one
user in, then sends ``user.account.get`` through ``edgecore.backend``'s
``BackendCommandClient`` (FlatBuffers -> JSON -> HMAC-signed HTTP POST ->
JSON -> FlatBuffers), ``--concurrency`` in flight. It reports the CPU time of
this (the gateway-side) process per command, the mock backend's CPU per command
separately, and the throughput. ``--profile`` adds one more round under
cProfile and prints its top entries.

    uv run python bench/backend_client_bench.py
    uv run python bench/backend_client_bench.py --requests 20000 --rounds 5 --profile

To compare with another revision, run its copy of this script with that
checkout's sources first on the path (``PYTHONPATH=<tree>/libs/edgecore/src:...``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import nacl.signing
from proctree import tree_cpu_seconds

from edge_grpc.testing import MockBackendProcess
from edgecore.backend.client import BackendClient
from edgecore.backend.commands import BackendCommandClient
from edgecore.backend.routes import BACKEND_ROUTES
from edgecore.downstream import AuthenticatedCommand
from edgecore.fbjson import default_codec
from edgecore.internal_auth import HmacRequestSigner
from edgecore.testing.redis_server import EmbeddedRedisServer


async def run(
    backend: MockBackendProcess,
    user_id: str,
    args: argparse.Namespace,
) -> tuple[float, float, float]:
    codec = default_codec()
    route = BACKEND_ROUTES["user.account.get"]
    client = BackendClient(
        base_url=backend.base_url,
        timeout=timedelta(seconds=5),
        signer=HmacRequestSigner(secret=backend.hmac_secret, key_id="bench"),
        client_id="bench",
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

    backend_before = tree_cpu_seconds(backend.process.pid)
    before, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    cpu, wall = time.process_time() - before, time.perf_counter() - started
    backend_cpu = tree_cpu_seconds(backend.process.pid) - backend_before
    await client.aclose()
    return cpu / args.requests * 1e6, backend_cpu / args.requests * 1e6, args.requests / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="one more round under cProfile")
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
            rows = [asyncio.run(run(backend, user_id, args)) for _ in range(args.rounds)]
            profile = None
            if args.profile:
                profile = cProfile.Profile()
                profile.runcall(asyncio.run, run(backend, user_id, args))
        finally:
            backend.process.terminate()
            backend.process.wait(10)
    load = os.getloadavg()[0]
    print(
        f"user.account.get through BackendCommandClient, {args.concurrency} in flight, "
        f"{args.requests} per round, {args.rounds} rounds (median [min-max]); load {load:.2f}"
    )
    print(f"{'gateway CPU/cmd':>22} {'backend CPU/cmd':>22} {'cmd/s':>18}")
    cells = []
    for index, unit in ((0, "µs"), (1, "µs"), (2, "")):
        values = [row[index] for row in rows]
        cells.append(
            f"{statistics.median(values):6.0f}{unit} [{min(values):.0f}-{max(values):.0f}]"
        )
    print(f"{cells[0]:>22} {cells[1]:>22} {cells[2]:>18}")
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
