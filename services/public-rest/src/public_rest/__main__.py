"""Entry point of public-rest: `galaxy-public-rest` or `python -m public_rest`.

Reads ``PublicRestSettings`` from the environment (docs/configuration.md),
then serves the public REST surface with Granian's embedded server in this
process (docs/public-rest.md). Browser bootstrap/asset traffic is answered
``404 not_found`` unless ``--static-dir`` or ``--browser-upstream`` plugs a
handler in. Exit codes: 0 after a clean stop, 1 when the listener fails,
2 for a configuration problem (one line per problem on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from urllib.parse import urlsplit

from edgecore.backend.client import build_backend_client
from edgecore.config import PublicRestSettings, load_settings_or_exit
from edgecore.internal_auth import HmacSecretError
from public_rest.browser import BrowserHandler, ProxyBrowserHandler, StaticDirectoryHandler

SERVICE = "public-rest"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="galaxy-public-rest", description=__doc__)
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the environment (and key material) and exit",
    )
    browser = parser.add_mutually_exclusive_group()
    browser.add_argument(
        "--static-dir",
        metavar="DIR",
        help="serve browser bootstrap/asset traffic from this directory (index.html fallback)",
    )
    browser.add_argument(
        "--browser-upstream",
        metavar="URL",
        help="proxy browser bootstrap/asset traffic (GET/HEAD) to this http(s) URL",
    )
    parser.add_argument(
        "--browser-upstream-timeout",
        metavar="SECONDS",
        type=float,
        default=10.0,
        help="timeout of one proxied browser request (default 10)",
    )
    return parser


def _browser(args: argparse.Namespace) -> BrowserHandler | None:
    if args.static_dir:
        try:
            return StaticDirectoryHandler(args.static_dir)
        except OSError:
            print(f"{SERVICE}: --static-dir: not a readable directory", file=sys.stderr)
            raise SystemExit(2) from None
    if args.browser_upstream:
        parts = urlsplit(args.browser_upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            print(f"{SERVICE}: --browser-upstream: must be an http(s) URL", file=sys.stderr)
            raise SystemExit(2)
        if not args.browser_upstream_timeout > 0:
            print(f"{SERVICE}: --browser-upstream-timeout: must be positive", file=sys.stderr)
            raise SystemExit(2)
        return ProxyBrowserHandler(args.browser_upstream, timeout=args.browser_upstream_timeout)
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings_or_exit(PublicRestSettings, SERVICE)
    try:
        backend = build_backend_client(settings.backend)
    except HmacSecretError as exc:
        print(f"{SERVICE}: configuration error: GATEWAY_BACKEND_HMAC_SECRET_PATH: {exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    browser = _browser(args)
    if args.check_config:
        print(f"{SERVICE}: configuration OK", file=sys.stderr)
        return 0

    from public_rest.server import serve  # noqa: PLC0415 - keep --check-config light

    code = asyncio.run(serve(settings, backend, browser))
    # Everything is closed and flushed by now. Skip interpreter finalisation: the
    # embedded server's Rust threads can abort the process while Python tears down
    # (granian 2.8, "panic in a function that cannot unwind"), which would turn a
    # clean stop into SIGABRT.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
