"""Entry point of edge-grpc: `galaxy-edge-grpc` or `python -m edge_grpc`.

This process validates the configuration and key material, then launches
Envoy with the app embedded (``edge_grpc.asgi:app``, ``edgecore.rpc.launcher``)
and stops it gracefully on SIGTERM/SIGINT.

Exit codes: 0 after a graceful stop or a passing ``--check-config``; 2 for a
configuration problem (variables, the response signer key, the backend HMAC
secret, the route-table key); 1 when start-up is refused for another reason
(Redis down or misconfigured, a listener that cannot bind). Every refusal is
one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from edge_grpc.app import SERVICE
from edge_grpc.asgi import QUIET_LIBRARIES
from edgecore.config import EdgeGrpcSettings, load_settings_or_exit
from edgecore.internal_auth import HmacSecretError, load_hmac_secret
from edgecore.keys import SignerKeyError, load_response_signer
from edgecore.routes import RouteTableKeyError, load_route_table_key
from edgecore.rpc import launcher
from edgecore.telemetry import configure_logging

__all__ = ["launch_spec", "main"]

APP = "edge_grpc.asgi:app"


def _refuse(message: str) -> None:
    print(f"{SERVICE}: {message}", file=sys.stderr, flush=True)


def key_material_usable(settings: EdgeGrpcSettings) -> bool:
    """Key material that must be usable before anything starts; False after printing why."""
    try:
        load_response_signer(settings.signer.private_key_pem_path)
        if settings.routes.table_key_path is not None:
            load_route_table_key(settings.routes.table_key_path)
        if settings.backend.hmac_secret_path is not None:
            load_hmac_secret(settings.backend.hmac_secret_path)
    except (SignerKeyError, RouteTableKeyError, HmacSecretError) as exc:
        _refuse(f"configuration error: {exc}")
        return False
    return True


def launch_spec(settings: EdgeGrpcSettings, app: str = APP) -> launcher.LaunchSpec:
    return launcher.LaunchSpec.of(SERVICE, app, settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="galaxy-edge-grpc", description=__doc__)
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the environment (and key material) and exit",
    )
    args = parser.parse_args(argv)
    settings = load_settings_or_exit(EdgeGrpcSettings, SERVICE)
    if not key_material_usable(settings):
        return 2
    if args.check_config:
        print(f"{SERVICE}: configuration OK", file=sys.stderr)
        return 0
    configure_logging(settings.logging.level, SERVICE, quiet=QUIET_LIBRARIES)
    return asyncio.run(launcher.run(launch_spec(settings)))


if __name__ == "__main__":
    sys.exit(main())
