"""Entry point of push-hub: `galaxy-push-hub` or `python -m push_hub`.

This process validates the configuration and key material, then launches
Envoy with the app embedded (``push_hub.asgi:app``, ``edgecore.rpc.launcher``)
and stops it gracefully on SIGTERM/SIGINT.

Exit codes: 0 after a graceful stop (SIGTERM/SIGINT) or a passing
``--check-config``; 2 for a configuration problem (variables, the response
signer key, the backend HMAC secret); 1 when start-up is refused for another
reason (Redis down or misconfigured, a listener that cannot bind). Every
refusal is one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from edgecore.config import PushHubSettings, load_settings_or_exit
from edgecore.internal_auth import HmacSecretError, load_hmac_secret
from edgecore.keys import SignerKeyError, load_response_signer
from edgecore.rpc import launcher
from edgecore.telemetry import configure_logging
from push_hub.app import SERVICE
from push_hub.asgi import QUIET_LIBRARIES

__all__ = ["main"]

APP = "push_hub.asgi:app"


def _refuse(message: str) -> None:
    print(f"{SERVICE}: {message}", file=sys.stderr, flush=True)


def key_material_usable(settings: PushHubSettings) -> bool:
    """The response signer and the backend secret, checked; False (reported) when unusable."""
    try:
        load_response_signer(settings.signer.private_key_pem_path)
        if settings.backend.hmac_secret_path is not None:
            load_hmac_secret(settings.backend.hmac_secret_path)
    except (SignerKeyError, HmacSecretError) as exc:
        _refuse(f"configuration error: {exc}")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="galaxy-push-hub", description=__doc__)
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the environment (and key material) and exit",
    )
    args = parser.parse_args(argv)
    settings = load_settings_or_exit(PushHubSettings, SERVICE)
    if not key_material_usable(settings):
        return 2
    if args.check_config:
        print(f"{SERVICE}: configuration OK", file=sys.stderr)
        return 0
    configure_logging(settings.logging.level, SERVICE, quiet=QUIET_LIBRARIES)
    return asyncio.run(launcher.run(launcher.LaunchSpec.of(SERVICE, APP, settings)))


if __name__ == "__main__":
    sys.exit(main())
