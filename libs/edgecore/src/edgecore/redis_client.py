"""Creating the shared async Redis client from GATEWAY_REDIS_* and checking it at start-up."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from edgecore.config.sections import RedisSettings

__all__ = ["RedisStartupError", "create_redis", "ping_or_raise"]


class RedisStartupError(Exception):
    """Redis is misconfigured or unreachable; the service must not start."""


def create_redis(settings: RedisSettings, *, blocking_read: timedelta | None = None) -> redis.Redis:
    """A pooled client. ``blocking_read`` widens the socket timeout for XREAD BLOCK readers.

    Operations are bounded by GATEWAY_REDIS_OPERATION_TIMEOUT; a reader that
    blocks server-side needs the block time on top, or every idle XREAD would
    look like a dead connection.
    """
    timeout = settings.operation_timeout.total_seconds()
    socket_timeout = timeout + (blocking_read.total_seconds() if blocking_read else 0.0)
    return redis.Redis(
        host=settings.master_addr.host or "127.0.0.1",
        port=settings.master_addr.port,
        password=settings.password,
        db=settings.db,
        socket_connect_timeout=timeout,
        socket_timeout=socket_timeout,
        health_check_interval=30,
        # No silent retries: callers bound every operation and decide themselves
        # (fail closed, or back off and resume), and a wrong password must read as
        # an auth error, not as a timeout after ten retries.
        retry=Retry(NoBackoff(), 0),
    )


async def ping_or_raise(client: redis.Redis, bound: timedelta) -> None:
    """A bounded PING; raises RedisStartupError with a reason safe to print."""
    try:
        async with asyncio.timeout(bound.total_seconds()):
            await client.ping()
    except TimeoutError:
        raise RedisStartupError("Redis did not answer PING in time") from None
    except RedisError as exc:
        raise RedisStartupError(f"Redis PING failed: {type(exc).__name__}") from None
    except OSError as exc:
        raise RedisStartupError(
            f"Redis unreachable: {exc.strerror or type(exc).__name__}"
        ) from None
