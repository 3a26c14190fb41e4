"""Entry point of edge-grpc: `galaxy-edge-grpc` or `python -m edge_grpc`.

Exit codes: 0 after a graceful stop (SIGTERM/SIGINT) or a passing
``--check-config``; 2 for a configuration problem (variables, the response
signer key, the backend HMAC secret); 1 when start-up is refused for another
reason (Redis down or misconfigured, a listener that cannot bind). Every
refusal is one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Mapping

from edge_grpc.app import EdgeGrpcApp, StartupError
from edgecore.config import EdgeGrpcSettings, load_settings_or_exit
from edgecore.downstream import DownstreamClient
from edgecore.internal_auth import HmacSecretError, load_hmac_secret
from edgecore.keys import SignerKeyError, load_response_signer
from edgecore.routes import RouteTableKeyError, load_route_table_key
from edgecore.signing import Signer
from edgecore.telemetry import configure_logging

__all__ = ["main", "serve"]

SERVICE = "edge-grpc"
# Libraries that log every success at INFO (httpx: one line per backend call).
_QUIET_LIBRARIES = ("httpx", "httpcore", "grpc", "opentelemetry")


def _refuse(message: str) -> None:
    print(f"{SERVICE}: {message}", file=sys.stderr, flush=True)


def load_or_refuse(settings: EdgeGrpcSettings) -> Signer | None:
    """Key material that must be usable before anything starts; None after printing why."""
    try:
        signer = load_response_signer(settings.signer.private_key_pem_path)
    except SignerKeyError as exc:
        _refuse(f"configuration error: {exc}")
        return None
    if settings.routes.table_key_path is not None:
        try:
            load_route_table_key(settings.routes.table_key_path)
        except RouteTableKeyError as exc:
            _refuse(f"configuration error: {exc}")
            return None
    if settings.backend.hmac_secret_path is not None:
        try:
            load_hmac_secret(settings.backend.hmac_secret_path)
        except HmacSecretError as exc:
            _refuse(f"configuration error: {exc}")
            return None
    return signer


async def serve(
    settings: EdgeGrpcSettings,
    signer: Signer,
    *,
    extra_routes: Mapping[str, DownstreamClient] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT, then stop gracefully. Returns the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app = EdgeGrpcApp(settings, signer=signer, extra_routes=extra_routes)
    try:
        await app.start()
    except StartupError as exc:
        _refuse(f"cannot start: {exc}")
        return 1
    await stop.wait()
    await app.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="galaxy-edge-grpc", description=__doc__)
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the environment (and key material) and exit",
    )
    args = parser.parse_args(argv)
    settings = load_settings_or_exit(EdgeGrpcSettings, SERVICE)
    signer = load_or_refuse(settings)
    if signer is None:
        return 2
    if args.check_config:
        print(f"{SERVICE}: configuration OK", file=sys.stderr)
        return 0
    configure_logging(settings.logging.level, SERVICE, quiet=_QUIET_LIBRARIES)
    return asyncio.run(serve(settings, signer))


if __name__ == "__main__":
    sys.exit(main())
