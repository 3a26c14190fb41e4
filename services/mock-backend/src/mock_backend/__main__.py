"""Entry point of the mock backend: `galaxy-mock-backend` or `python -m mock_backend`.

Reads ``MOCK_BACKEND_*`` (docs/mock-backend.md), then serves the app with
Granian's embedded server in this process (one worker: the state is in
memory). SIGTERM / SIGINT stop it gracefully. Exit codes: 0 after a clean
stop, 2 for a configuration problem (one line per problem on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from datetime import timedelta

import redis.asyncio as aioredis
from granian.constants import Interfaces
from granian.server.embed import Server
from redis.exceptions import RedisError

from edgecore.fbjson import default_codec
from edgecore.internal_auth import HmacSecretError, RedisNonceStore, load_hmac_secret
from mock_backend.app import AppState, build_app
from mock_backend.config import ConfigError, MockBackendConfig, load_config
from mock_backend.publish import RedisOutboxPublisher
from mock_backend.store import Store

logger = logging.getLogger("mock_backend")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="galaxy-mock-backend", description=__doc__)
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the environment (and the HMAC secret file) and exit",
    )
    args = parser.parse_args(argv)
    try:
        config = load_config()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"mock-backend: {problem}", file=sys.stderr)
        return 2
    try:
        secret = load_hmac_secret(config.hmac_secret_path)
    except HmacSecretError as exc:
        print(f"mock-backend: MOCK_BACKEND_HMAC_SECRET_PATH: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print("mock-backend: configuration OK", file=sys.stderr)
        return 0
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    code = asyncio.run(serve(config, secret))
    # Everything is closed and flushed by now. Skip interpreter finalisation: the
    # embedded server's Rust threads can abort the process while Python tears down
    # (seen with granian 2.8.7, "panic in a function that cannot unwind"; compare
    # emmett-framework/granian#693), which would turn a clean stop into SIGABRT.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def serve(config: MockBackendConfig, secret: bytes) -> int:
    client = aioredis.Redis.from_url(
        config.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
    )
    codec = default_codec()
    state = AppState(
        store=Store(fixed_login_code=config.fixed_login_code),
        publisher=RedisOutboxPublisher(
            client,
            session_stream=config.session_events_stream,
            events_key_prefix=config.events_key_prefix,
            codec=codec,
        ),
        codec=codec,
        dev_endpoints=config.dev_endpoints,
    )

    async def check_redis() -> None:
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            logger.warning(
                "redis is not reachable yet (%s); publishing answers 503", type(exc).__name__
            )

    app = build_app(
        state,
        hmac_secret=secret,
        nonce_store=RedisNonceStore(client, timeout=timedelta(seconds=1)),
        on_startup=[check_redis],
    )
    server = Server(
        app,
        address=config.host,
        port=config.port,
        interface=Interfaces.ASGI,
        log_access=False,
        websockets=False,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    logger.info(
        "mock backend listening on %s:%d (dev endpoints %s)",
        config.host,
        config.port,
        "on" if config.dev_endpoints else "off",
    )
    try:
        await server.serve()
    finally:
        await client.aclose()
    logger.info("mock backend stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
