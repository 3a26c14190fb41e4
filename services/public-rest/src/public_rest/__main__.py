"""Entry point of public-rest: `galaxy-public-rest` or `python -m public_rest`."""

from __future__ import annotations

import argparse
import sys

from edgecore.config import PublicRestSettings, load_settings_or_exit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="galaxy-public-rest", description=__doc__)
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the environment (and key material) and exit",
    )
    args = parser.parse_args(argv)
    load_settings_or_exit(PublicRestSettings, "public-rest")
    if args.check_config:
        print("public-rest: configuration OK", file=sys.stderr)
        return 0
    print(
        "public-rest: the server itself is not built yet; only --check-config works",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
