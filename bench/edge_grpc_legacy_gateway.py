"""The previous grpc.aio edge-grpc with ``bench.echo``, for side-by-side figures.

Run by ``bench/edge_grpc_bench.py --old-tree DIR`` with ``PYTHONPATH`` pointing
at that checkout's sources (for example a ``git worktree`` of the last commit
that still had the grpc.aio servers), so ``edge_grpc`` and ``edgecore`` here
are the old ones. It is the old ``serve-gateway`` entry of the benchmark: the
old ``edge_grpc.__main__.serve(settings, signer, extra_routes=...)`` with
the same ``bench.echo`` downstream as ``edge_grpc_bench_app``. Nothing from the
current tree is imported.

    PYTHONPATH=<old>/libs/edgecore/src:<old>/services/edge-grpc/src \
        python bench/edge_grpc_legacy_gateway.py
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any


def main() -> int:
    from edge_grpc import __main__ as entry  # noqa: PLC0415 - the old tree's, via PYTHONPATH
    from edgecore.config import EdgeGrpcSettings, load_settings_or_exit  # noqa: PLC0415
    from edgecore.downstream import DownstreamResult  # noqa: PLC0415
    from edgecore.telemetry import configure_logging  # noqa: PLC0415

    serve = getattr(entry, "serve", None)
    load_or_refuse = getattr(entry, "load_or_refuse", None)
    if serve is None or load_or_refuse is None:
        print(
            f"edge_grpc at {entry.__file__} has no grpc.aio serve(): not an old tree",
            file=sys.stderr,
        )
        return 2

    class Echo:
        async def execute(self, command: Any) -> Any:
            return DownstreamResult("ok", command.payload)

    settings = load_settings_or_exit(EdgeGrpcSettings, "edge-grpc")
    signer = load_or_refuse(settings)
    if signer is None:
        return 2
    configure_logging(settings.logging.level, "edge-grpc")
    code: int = asyncio.run(serve(settings, signer, extra_routes={"bench.echo": Echo()}))
    return code


if __name__ == "__main__":
    sys.exit(main())
