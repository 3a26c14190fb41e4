"""Benchmark of public-rest (not a test): throughput and latency against a bare baseline.

Starts, on loopback only:

* a Redis-compatible server (the test helper: container or the valkey wheel),
* the mock backend (``python -m mock_backend``),
* public-rest (``python -m public_rest``) wired to it, with every rate limit
  raised so the limiter never rejects,
* a bare Litestar "hello" app on Granian's embedded server with the same
  listener options (HTTP/1.1, one worker), as the baseline,

then drives each target with a fixed number of requests at a fixed concurrency
from a lean HTTP/1.1 keep-alive load generator in this process (raw asyncio
streams, tens of µs per request, so it never limits the server; in alternating
rounds),
and prints requests/s, p50 and p99 for ``GET /healthz``, ``POST send-email-code``
(through the mock backend) and the bare ``GET /hello``, the ratios to the
baseline, and the CPU time the server (and, for send-email-code, the mock
backend) spent per request, read from /proc. A second table calls the same
routes as ASGI apps in this process (no sockets, no client): the server-side
cost alone, far less sensitive to other load on the machine.

    uv run python bench/public_rest_bench.py [--requests 3000] [--concurrency 32] [--rounds 3]

With 2 or more CPUs (``--pin auto``), the server under test runs alone on CPU
0 and this process and the mock backend on CPU 1, so each server gets one core
and its CPU per request compares like with like.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from proctree import pin, tree_cpu_seconds

from public_rest.testing import (
    SECRET,
    SEND,
    Process,
    free_port,
    start_gateway,
    start_mock_backend,
)

P = "GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_"
RAISED = {
    P + f"{name}_RATE_LIMIT_{part}": "100000000"
    for name in (
        "PUBLIC_AUTH",
        "PUBLIC_MISC",
        "BROWSER_BOOTSTRAP",
        "BROWSER_ASSET",
        "SEND_EMAIL_CODE_IDENTITY",
        "CONFIRM_EMAIL_CODE_IDENTITY",
    )
    for part in ("REQUESTS", "BURST")
}


def serve_hello(port: int) -> None:
    """The baseline: one Litestar route on Granian's embedded server, nothing else."""
    import signal  # noqa: PLC0415

    from granian.constants import HTTPModes, Interfaces  # noqa: PLC0415
    from granian.http import HTTP1Settings  # noqa: PLC0415
    from granian.log import LogLevels  # noqa: PLC0415
    from granian.server.embed import Server  # noqa: PLC0415
    from litestar import Litestar, get  # noqa: PLC0415

    @get("/hello", sync_to_thread=False)
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    app = Litestar(route_handlers=[hello], openapi_config=None, logging_config=None)
    server = Server(
        app,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        websockets=False,
        backlog=1024,
        http1_settings=HTTP1Settings(header_read_timeout=2000, keep_alive=True),
        log_level=LogLevels.warning,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.stop)
        await server.serve()

    asyncio.run(main())


def start_hello(log_path: Path) -> Process:
    import subprocess  # noqa: PLC0415

    from public_rest.testing import _wait_port, clean_env  # noqa: PLC0415

    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "--serve-hello", str(port)],
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    _wait_port(port, process, log_path, 30)
    return Process("hello", process, log_path, port)


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]
    server_cpu: float = 0.0  # seconds, the server's process tree
    backend_cpu: float = 0.0  # seconds, the mock backend's

    def cpu_us(self, seconds: float) -> float:
        return seconds / self.requests * 1e6

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[index] * 1000


RequestFactory = Callable[[int], bytes]


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """One request on a keep-alive connection; the response's status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def drive(
    name: str,
    port: int,
    make: RequestFactory,
    *,
    total: int,
    concurrency: int,
    warmup: int,
    server_pid: int,
    backend_pid: int,
) -> Result:
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]
    numbers = count()
    try:
        for index in range(warmup):
            await _exchange(*connections[index % concurrency], make(next(numbers)))
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        errors = 0
        issued = 0

        async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal errors, issued
            while issued < total:
                issued += 1
                request = make(next(numbers))
                started = time.perf_counter()
                status = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200:
                    errors += 1

        server_before, backend_before = tree_cpu_seconds(server_pid), tree_cpu_seconds(backend_pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker(r, w) for r, w in connections))
        elapsed = time.perf_counter() - started
        server_cpu = tree_cpu_seconds(server_pid) - server_before
        backend_cpu = tree_cpu_seconds(backend_pid) - backend_before
    finally:
        for _, writer in connections:
            writer.close()
    return Result(
        name, len(latencies), errors, elapsed, latencies, statuses, server_cpu, backend_cpu
    )


def merge(name: str, rounds: list[Result]) -> Result:
    statuses: dict[int, int] = {}
    for r in rounds:
        for status, n in r.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    return Result(
        name,
        sum(r.requests for r in rounds),
        sum(r.errors for r in rounds),
        sum(r.seconds for r in rounds),
        [latency for r in rounds for latency in r.latencies],
        statuses,
        sum(r.server_cpu for r in rounds),
        sum(r.backend_cpu for r in rounds),
    )


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def healthz(_: int) -> bytes:
    return _get("/healthz")


def send_email_code(n: int) -> bytes:
    body = json.dumps({"email": f"bench{n}@example.org"}).encode()
    head = (
        f"POST {SEND} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def hello(_: int) -> bytes:
    return _get("/hello")


def report(
    results: list[Result], baseline: Result, concurrency: int, best: dict[str, float]
) -> None:
    print(
        f"\nconcurrency {concurrency}, HTTP/1.1 keep-alive, one connection per request in flight\n"
    )
    header = (
        f"{'target':<34} {'requests':>8} {'errors':>6} {'req/s':>7} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'vs hello':>9} {'best round':>11} {'vs hello':>9} "
        f"{'server CPU/req':>14} {'backend CPU/req':>15}"
    )
    print(header)
    print("-" * len(header))
    top = best[baseline.name]
    for r in results:
        print(
            f"{r.name:<34} {r.requests:>8} {r.errors:>6} {r.rps:>7.0f} "
            f"{r.percentile(0.50):>8.2f} {r.percentile(0.99):>8.2f} "
            f"{r.rps / baseline.rps:>8.2f}x {best[r.name]:>11.0f} {best[r.name] / top:>8.2f}x "
            f"{r.cpu_us(r.server_cpu):>12.0f}µs {r.cpu_us(r.backend_cpu):>13.0f}µs"
        )
    print("backend CPU/req: the mock backend's CPU while that target ran (idle for the others)")
    for r in results:
        if r.errors:  # e.g. 503 when an upstream call outlives the 3 s auth timeout
            print(f"  {r.name}: non-200 answers, statuses {dict(sorted(r.statuses.items()))}")


async def asgi_cost(app: Any, method: str, path: str, body: bytes, n: int) -> float:
    """Microseconds per request of an ASGI app called directly (no sockets, no client)."""
    headers = [(b"host", b"bench")]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80), "state": {},
    }  # fmt: skip
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    for _ in range(200):
        await app(dict(scope), receive, send)
    started = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - started
    if statuses != {200}:
        raise RuntimeError(f"{path}: unexpected statuses {statuses}")
    return elapsed / n * 1e6


async def in_process(n: int, repetitions: int = 5) -> None:
    """The same three routes called in this process: the server-side cost alone."""
    from datetime import timedelta  # noqa: PLC0415

    from litestar import Litestar, get  # noqa: PLC0415

    from edgecore.config.sections import TelemetrySettings  # noqa: PLC0415
    from edgecore.telemetry import configure_tracing  # noqa: PLC0415
    from public_rest.app import build_app  # noqa: PLC0415
    from public_rest.testing import FakeAuth, anti_abuse  # noqa: PLC0415

    @get("/hello", sync_to_thread=False)
    def hello_route() -> dict[str, str]:
        return {"hello": "world"}

    bare = Litestar(route_handlers=[hello_route], openapi_config=None, logging_config=None)
    configure_tracing(TelemetrySettings.model_validate({}), "bench")  # as in the service
    raised = {f"{c}_{p}": 10**9 for c in ("public_auth", "public_misc", "send_email_code_identity")
              for p in ("requests", "burst")}  # fmt: skip
    app = build_app(
        anti_abuse=anti_abuse(**raised),
        auth_upstream_timeout=timedelta(seconds=3),
        read_timeout=timedelta(seconds=10),
        auth_client=FakeAuth(),
        trace_requests=False,  # as the service runs with OTEL_TRACES_EXPORTER unset
    ).asgi
    targets = [
        ("public-rest GET /healthz", app, "GET", "/healthz", b""),
        ("public-rest POST send-email-code*", app, "POST", SEND, b'{"email":"b@example.org"}'),
        ("bare litestar GET /hello", bare, "GET", "/hello", b""),
    ]
    # The minimum over alternating repetitions: noise from elsewhere only adds time.
    best: dict[str, float] = {}
    for _ in range(repetitions):
        for name, target, method, path, body in targets:
            cost = await asgi_cost(target, method, path, body, n)
            best[name] = min(best.get(name, cost), cost)
    rows = list(best.items())
    baseline = rows[-1][1]
    print(
        f"\nin-process ASGI cost (best of {repetitions} x {n} calls each, no sockets, "
        "no load generator)\n"
    )
    print(f"{'target':<34} {'us/request':>10} {'vs hello':>9}")
    print("-" * 55)
    for name, cost in rows:
        print(f"{name:<34} {cost:>10.1f} {cost / baseline:>8.2f}x")
    print("* with an in-process fake upstream (validation, both buckets, language, JSON)")


async def run(args: argparse.Namespace) -> int:
    from edgecore.testing.redis_server import provide_redis_server  # noqa: PLC0415

    workdir = Path(tempfile.mkdtemp(prefix="public-rest-bench-"))
    secret = workdir / "hmac-secret"
    secret.write_bytes(SECRET + b"\n")
    redis = provide_redis_server()
    processes: list[Process] = []
    try:
        backend = start_mock_backend(
            redis_url=redis.url, secret_path=secret, log_path=workdir / "mock.log"
        )
        processes.append(backend)
        gateway = start_gateway(
            log_path=workdir / "public-rest.log",
            backend_url=backend.base_url,
            secret_path=secret,
            env=RAISED,
            admin=False,
            log_level="warn",
        )
        processes.append(gateway)
        baseline_process = start_hello(workdir / "hello.log")
        processes.append(baseline_process)
        if args.pin == "on" or (args.pin == "auto" and (os.cpu_count() or 1) >= 2):
            for server in (gateway, baseline_process):
                pin(server.process.pid, {0})
            pin(backend.process.pid, {1})
            pin(os.getpid(), {1})
            print("pinned: servers under test on CPU 0; load generator and mock backend on CPU 1")

        targets: list[tuple[str, Process, RequestFactory]] = [
            ("public-rest GET /healthz", gateway, healthz),
            ("public-rest POST send-email-code", gateway, send_email_code),
            ("bare litestar GET /hello", baseline_process, hello),
        ]
        # Rounds alternate between the targets so that a burst of noise from other
        # work on the machine does not land on one target only; figures pool all rounds.
        per_round = max(1, args.requests // args.rounds)
        pooled: dict[str, list[Result]] = {name: [] for name, _, _ in targets}
        for _ in range(args.rounds):
            for name, server, make in targets:
                pooled[name].append(
                    await drive(
                        name,
                        server.port,
                        make,
                        total=per_round,
                        concurrency=args.concurrency,
                        warmup=args.warmup,
                        server_pid=server.process.pid,
                        backend_pid=backend.process.pid,
                    )
                )
        results = [merge(name, rounds) for name, rounds in pooled.items()]
        best = {name: max(r.rps for r in rounds) for name, rounds in pooled.items()}
        report(results, results[-1], args.concurrency, best)
        await in_process(args.requests // 3)
        return 0
    finally:
        for process in reversed(processes):
            process.stop()
        redis.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per target")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per target")
    parser.add_argument(
        "--pin", choices=["auto", "on", "off"], default="auto", help="servers on CPU 0 (2+ CPUs)"
    )
    parser.add_argument("--serve-hello", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_hello:
        serve_hello(args.serve_hello)
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
