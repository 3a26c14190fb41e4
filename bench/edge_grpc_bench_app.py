"""edge-grpc's ASGI app plus the benchmark-only route ``bench.echo``.

The app is ``edge_grpc_bench_app:bench_app``.

``bench/edge_grpc_bench.py`` launches it exactly as ``python -m edge_grpc``
launches ``edge_grpc.asgi:app`` (``edgecore.rpc.launcher`` with
``edge_grpc.__main__.launch_spec``): Envoy imports this module because the
launcher hands Envoy's embedded Python its own ``sys.path``, and ``bench/`` is
on it (the launcher runs ``bench/edge_grpc_bench.py``). The production entry
point has no such route and no switch for one.

``bench.echo`` answers the verified payload, so every call still goes through
the whole pipeline (envelope, session cache, hash, Ed25519, freshness, Redis
replay reservation, four rate limits, policy) and the signed response.

With ``EDGE_GRPC_BENCH_PROFILE=<file>`` in the environment, the event loop
thread of the app is profiled (cProfile) from ASGI lifespan start-up to
shutdown and the profile is written to that file.
"""

from __future__ import annotations

import cProfile
import os
from typing import Any

from edge_grpc.asgi import build_runtime
from edgecore.downstream import AuthenticatedCommand, DownstreamResult
from edgecore.rpc.runtime import LazyApp

__all__ = ["ECHO_TYPE", "PROFILE_ENV", "EchoClient", "bench_app"]

ECHO_TYPE = "bench.echo"
PROFILE_ENV = "EDGE_GRPC_BENCH_PROFILE"


class EchoClient:
    """A downstream that answers ``ok`` with the verified payload."""

    async def execute(self, command: AuthenticatedCommand) -> DownstreamResult:
        return DownstreamResult("ok", command.payload)


class _Profiled:
    """cProfile the thread that runs the app, from lifespan start-up to shutdown."""

    def __init__(self, app: Any, path: str) -> None:
        self._app = app
        self._path = path
        self._profiler = cProfile.Profile()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self._app(scope, receive, send)
            return
        self._profiler.enable()

        async def sending(message: Any) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                self._profiler.disable()
                self._profiler.dump_stats(self._path)
            await send(message)

        await self._app(scope, receive, sending)


def _build() -> Any:
    return build_runtime(extra_routes={ECHO_TYPE: EchoClient()})


_app = LazyApp(_build)
bench_app: Any = _Profiled(_app, os.environ[PROFILE_ENV]) if os.environ.get(PROFILE_ENV) else _app
