"""Entry point of edge-grpc: `galaxy-edge-grpc` or `python -m edge_grpc`."""

from __future__ import annotations

import argparse
import sys

from edgecore.config import EdgeGrpcSettings, load_settings_or_exit
from edgecore.keys import SignerKeyError, load_response_signer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="galaxy-edge-grpc", description=__doc__)
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the environment (and key material) and exit",
    )
    args = parser.parse_args(argv)
    settings = load_settings_or_exit(EdgeGrpcSettings, "edge-grpc")
    try:
        load_response_signer(settings.signer.private_key_pem_path)
    except SignerKeyError as exc:
        print(f"edge-grpc: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print("edge-grpc: configuration OK", file=sys.stderr)
        return 0
    print(
        "edge-grpc: the server itself is not built yet; only --check-config works", file=sys.stderr
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
