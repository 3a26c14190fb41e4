"""Entry point of push-hub: `galaxy-push-hub` or `python -m push_hub`.

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

from edgecore.config import PushHubSettings, load_settings_or_exit
from edgecore.internal_auth import HmacSecretError, load_hmac_secret
from edgecore.keys import SignerKeyError, load_response_signer
from edgecore.signing import Signer
from edgecore.telemetry import configure_logging
from push_hub.app import StartupError, run

__all__ = ["main"]

SERVICE = "push-hub"
# Libraries that log routine work at INFO/DEBUG; raised to WARNING unless the level is debug.
_QUIET_LIBRARIES = ("httpx", "httpcore", "grpc", "opentelemetry", "redis")


def _refuse(message: str) -> None:
    print(f"{SERVICE}: {message}", file=sys.stderr, flush=True)


def load_or_refuse(settings: PushHubSettings) -> Signer | None:
    """The response signer, after checking every key file; None (reported) when unusable."""
    try:
        signer = load_response_signer(settings.signer.private_key_pem_path)
    except SignerKeyError as exc:
        _refuse(f"configuration error: {exc}")
        return None
    if settings.backend.hmac_secret_path is not None:
        try:
            load_hmac_secret(settings.backend.hmac_secret_path)
        except HmacSecretError as exc:
            _refuse(f"configuration error: {exc}")
            return None
    return signer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="galaxy-push-hub", description=__doc__)
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the environment (and key material) and exit",
    )
    args = parser.parse_args(argv)
    settings = load_settings_or_exit(PushHubSettings, SERVICE)
    signer = load_or_refuse(settings)
    if signer is None:
        return 2
    if args.check_config:
        print(f"{SERVICE}: configuration OK", file=sys.stderr)
        return 0
    configure_logging(settings.logging.level, SERVICE, quiet=_QUIET_LIBRARIES)
    return asyncio.run(_serve(settings, signer))


async def _serve(settings: PushHubSettings, signer: Signer) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        return await run(settings, signer, stop)
    except StartupError as exc:
        _refuse(f"cannot start: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
