"""RespReplayStore: the RESP parser, and the store against a real Redis and bad servers."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from edge_grpc.replay import RespConnection, RespError, RespReplayStore, encode_command
from edgecore.config.sections import RedisSettings
from edgecore.replay import (
    RedisReplayStore,
    ReplayStoreUnavailableError,
    Reservation,
    epoch_key,
    replay_key,
    seed_replay_epoch,
)
from edgecore.testing.redis_server import RedisServer

# --- the parser (no sockets) -----------------------------------------------------------------


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def connection() -> tuple[RespConnection, FakeTransport]:
    conn, transport = RespConnection(), FakeTransport()
    conn.connection_made(transport)
    return conn, transport


REPLIES = b"+OK\r\n$-1\r\n-READONLY You can't write against a read only replica.\r\n:42\r\n$3\r\nabc\r\n$0\r\n\r\n"
EXPECTED = [b"OK", None, RespError, 42, b"abc", b""]


def check(values: list[object]) -> None:
    assert len(values) == len(EXPECTED)
    for value, expected in zip(values, EXPECTED, strict=True):
        if expected is RespError:
            assert isinstance(value, RespError)
            assert value.kind == "READONLY"
        else:
            assert value == expected


async def test_replies_are_matched_in_order_whatever_the_chunking():
    for split in range(1, len(REPLIES)):
        conn, _ = connection()
        futures = [conn.send(b"X") for _ in EXPECTED]
        conn.data_received(REPLIES[:split])
        conn.data_received(REPLIES[split:])
        assert all(f.done() for f in futures), split
        check([f.result() for f in futures])


async def test_byte_by_byte():
    conn, _ = connection()
    futures = [conn.send(b"X") for _ in EXPECTED]
    for byte in REPLIES:
        conn.data_received(bytes([byte]))
    check([f.result() for f in futures])


async def test_a_cancelled_caller_keeps_its_slot():
    conn, _ = connection()
    first, second = conn.send(b"A"), conn.send(b"B")
    first.cancel()
    conn.data_received(b"$-1\r\n+OK\r\n")
    assert second.result() == b"OK"


@pytest.mark.parametrize(
    "garbage",
    [b"*1\r\n$2\r\nOK\r\n", b"?\r\n", b"$x\r\n", b"$3\r\nabcd\r\n", b"+OK\r\n+OK\r\n"],
    ids=["array", "unknown-type", "bad-length", "unterminated-bulk", "reply-without-command"],
)
async def test_protocol_violations_close_the_connection_and_fail_everything(garbage: bytes):
    conn, transport = connection()
    futures = [conn.send(b"X")]
    conn.data_received(garbage)
    assert transport.aborted and conn.closed
    for future in futures:
        if future.done() and not future.cancelled() and future.exception() is None:
            continue  # "+OK" answered the one real command before the stray reply
        with pytest.raises(ReplayStoreUnavailableError):
            future.result()
    with pytest.raises(ReplayStoreUnavailableError):
        conn.send(b"Y")


async def test_losing_the_connection_fails_what_is_in_flight():
    conn, _ = connection()
    future = conn.send(b"X")
    conn.connection_lost(ConnectionResetError())
    with pytest.raises(ReplayStoreUnavailableError, match="ConnectionResetError"):
        future.result()


def test_encode_command():
    assert encode_command(b"SET", b"k", b"1") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n"


# --- against a real Redis --------------------------------------------------------------------

integration = pytest.mark.integration


def settings_for(host: str, port: int, password: str, **extra: str) -> RedisSettings:
    return RedisSettings.model_validate(
        {
            "GATEWAY_REDIS_MASTER_ADDR": f"{host}:{port}",
            "GATEWAY_REDIS_PASSWORD": password,
            **extra,
        }
    )


@pytest.fixture
async def store(redis_url: str, redis_server: RedisServer) -> AsyncIterator[RespReplayStore]:
    replay = RespReplayStore(
        settings_for(redis_server.host, redis_server.port, redis_server.password),
        key_prefix="test:replay:",
        # The bound itself is tested with the fake servers below; real-Redis tests
        # get room for a loaded machine.
        reserve_timeout=timedelta(seconds=1),
    )
    yield replay
    await replay.aclose()


def sync_client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, password=server.password)


MINUTE = timedelta(minutes=1)


@integration
async def test_first_use_then_replay(store: RespReplayStore):
    assert (await store.reserve("session-a", "request-1", MINUTE)).first_use is True
    assert (await store.reserve("session-a", "request-1", MINUTE)).first_use is False
    assert (await store.reserve("session-b", "request-1", MINUTE)).first_use is True
    assert (await store.reserve("session-a", "request-2", MINUTE)).first_use is True
    assert store.connects == 1


@integration
async def test_same_keys_and_ttls_as_the_edgecore_store(store: RespReplayStore, redis_server):
    with sync_client(redis_server) as client:
        assert (await store.reserve("s", "ours", timedelta(seconds=90))).first_use is True
        key = replay_key("test:replay:", "s", "ours")
        assert client.get(key) == b"1"
        assert 88_000 < client.pttl(key) <= 90_000
        # Interchangeable with edgecore's redis-py store, in both directions.
        async_client = AsyncRedis(
            host=redis_server.host, port=redis_server.port, password=redis_server.password
        )
        theirs = RedisReplayStore(
            async_client, key_prefix="test:replay:", reserve_timeout=timedelta(seconds=1)
        )
        try:
            assert (await theirs.reserve("s", "ours", MINUTE)).first_use is False
            assert (await theirs.reserve("s", "theirs", MINUTE)).first_use is True
        finally:
            await async_client.aclose()
        assert (await store.reserve("s", "theirs", MINUTE)).first_use is False
        # The TTL is clamped so a request accepted on the window's edge still reserves.
        assert (await store.reserve("s", "edge", timedelta(0))).first_use is True
        assert 0 < client.pttl(replay_key("test:replay:", "s", "edge")) <= 1000


@integration
async def test_concurrent_reservations_of_one_key_have_one_winner(store: RespReplayStore):
    results = await asyncio.gather(*(store.reserve("s", "same", MINUTE) for _ in range(50)))
    assert [r.first_use for r in results].count(True) == 1


@integration
async def test_many_in_flight_on_one_connection(redis_url: str, redis_server: RedisServer):
    # About pipelining, not the bound: a generous timeout so a loaded machine
    # (2000 requests queued on one connection) cannot turn it into a timing test.
    store = RespReplayStore(
        settings_for(redis_server.host, redis_server.port, redis_server.password),
        key_prefix="test:replay:",
        reserve_timeout=timedelta(seconds=10),
    )
    try:
        ids = [str(uuid.uuid4()) for _ in range(2000)]
        results = await asyncio.gather(*(store.reserve("s", i, MINUTE) for i in ids))
        assert all(r.first_use for r in results)
        again = await asyncio.gather(*(store.reserve("s", i, MINUTE) for i in ids[:100]))
        assert not any(r.first_use for r in again)
        assert store.connects == 1
    finally:
        await store.aclose()


@integration
async def test_selects_the_configured_database(redis_url: str, redis_server: RedisServer):
    replay = RespReplayStore(
        settings_for(
            redis_server.host, redis_server.port, redis_server.password, GATEWAY_REDIS_DB="3"
        ),
        key_prefix="db:",
        reserve_timeout=timedelta(seconds=1),
    )
    try:
        assert (await replay.reserve("s", "r", MINUTE)).first_use
    finally:
        await replay.aclose()
    key = replay_key("db:", "s", "r")
    with redis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password, db=3
    ) as client:
        assert client.exists(key)
    with sync_client(redis_server) as client:
        assert not client.exists(key)


@integration
async def test_wrong_password_fails_closed(redis_url: str, redis_server: RedisServer):
    replay = RespReplayStore(
        settings_for(redis_server.host, redis_server.port, "wrong-password"),
        key_prefix="x:",
        reserve_timeout=timedelta(milliseconds=250),
        reconnect_backoff=timedelta(0),
    )
    try:
        with pytest.raises(ReplayStoreUnavailableError, match="handshake"):
            await replay.reserve("s", "r", MINUTE)
    finally:
        await replay.aclose()


@integration
async def test_redis_stopped_then_started(store: RespReplayStore, redis_server: RedisServer):
    if not redis_server.restartable:
        pytest.skip("the Redis server in use cannot be stopped from here")
    assert (await store.reserve("s", "before", MINUTE)).first_use
    redis_server.stop()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ReplayStoreUnavailableError):
            await store.reserve("s", "during", MINUTE)
        assert loop.time() - started < 2.0  # bounded: not a hang (generous for loaded CI)
        # Further calls fail fast as well (no connect storm while it is down).
        for _ in range(20):
            with pytest.raises(ReplayStoreUnavailableError):
                await store.reserve("s", "during", MINUTE)
        assert loop.time() - started < 10
    finally:
        redis_server.start()
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        try:
            assert (await store.reserve("s", "after", MINUTE)).first_use
            break
        except ReplayStoreUnavailableError:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
    assert store.connects == 2


# --- against servers that misbehave ----------------------------------------------------------


async def fake_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], object],
) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    return server, server.sockets[0].getsockname()[1]


async def read_reservation(reader: asyncio.StreamReader) -> None:
    """One reservation as the store sends it: the SET ... PX and the epoch's SET ... NX GET."""
    await reader.readuntil(b"PX\r\n")
    await reader.readline()
    await reader.readline()
    await reader.readuntil(b"GET\r\n")


EPOCH_REPLY = b"$1\r\n0\r\n"  # the floor: 0, nothing refused


def fake_store(port: int, timeout_ms: int = 200) -> RespReplayStore:
    return RespReplayStore(
        settings_for("127.0.0.1", port, "pw"),
        key_prefix="f:",
        reserve_timeout=timedelta(milliseconds=timeout_ms),
        reconnect_backoff=timedelta(0),
    )


@integration
async def test_a_server_that_stops_answering_is_cut_off_and_reconnected():
    accepted: list[asyncio.StreamWriter] = []
    answer_sets = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.readuntil(b"pw\r\n")  # AUTH
        writer.write(b"+OK\r\n")
        while True:
            await read_reservation(reader)
            if answer_sets.is_set():
                writer.write(b"+OK\r\n" + EPOCH_REPLY)

    server, port = await fake_server(handler)
    replay = fake_store(port)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ReplayStoreUnavailableError, match="TimeoutError"):
            await replay.reserve("s", "r1", MINUTE)
        assert 0.15 < loop.time() - started < 3.0
        answer_sets.set()
        # Reconnecting races the 200 ms bound on a loaded machine: retry, as callers would.
        for _attempt in range(50):
            try:
                assert (await replay.reserve("s", f"r2-{_attempt}", MINUTE)).first_use is True
                break
            except ReplayStoreUnavailableError:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("the store never reconnected")
        assert len(accepted) >= 2  # the silent connection was dropped
    finally:
        await replay.aclose()
        server.close()


@integration
async def test_error_replies_fail_closed_without_dropping_the_connection():
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"pw\r\n")
        writer.write(b"+OK\r\n")
        while True:
            await read_reservation(reader)
            writer.write(b"-READONLY You can't write against a read only replica.\r\n" * 2)

    server, port = await fake_server(handler)
    replay = fake_store(port)
    try:
        for _ in range(3):
            with pytest.raises(ReplayStoreUnavailableError, match="READONLY"):
                await replay.reserve("s", "r", MINUTE)
        assert replay.connects == 1
    finally:
        await replay.aclose()
        server.close()


@integration
async def test_garbage_from_the_server_fails_closed():
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"pw\r\n")
        writer.write(b"+OK\r\n")
        await reader.readuntil(b"PX\r\n")
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    server, port = await fake_server(handler)
    replay = fake_store(port)
    try:
        with pytest.raises(ReplayStoreUnavailableError, match="protocol violation"):
            await replay.reserve("s", "r", MINUTE)
    finally:
        await replay.aclose()
        server.close()


@integration
async def test_nothing_listening_fails_closed_fast():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    replay = fake_store(port)
    try:
        with pytest.raises(ReplayStoreUnavailableError, match="connect"):
            await replay.reserve("s", "r", MINUTE)
    finally:
        await replay.aclose()


async def test_closed_store_refuses():
    replay = fake_store(1)
    await replay.aclose()
    with pytest.raises(ReplayStoreUnavailableError):
        await replay.reserve("s", "r", MINUTE)


# --- the replay floor (both stores, the same contract) -----------------------------------------


@integration
@pytest.mark.parametrize("kind", ["resp", "redis-py"])
async def test_a_redis_that_lost_its_data_moves_the_replay_floor(
    kind: str, redis_url: str, redis_server: RedisServer
):
    now = [1_000]
    client = AsyncRedis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password
    )
    store: RespReplayStore | RedisReplayStore
    if kind == "resp":
        store = RespReplayStore(
            settings_for(redis_server.host, redis_server.port, redis_server.password),
            key_prefix="test:replay:",
            reserve_timeout=timedelta(seconds=1),
            clock_ms=lambda: now[0],
        )
    else:
        store = RedisReplayStore(
            client, key_prefix="test:replay:", reserve_timeout=timedelta(seconds=1),
            clock_ms=lambda: now[0],
        )  # fmt: skip
    try:
        seeded = await seed_replay_epoch(
            client, key_prefix="test:replay:", operation_timeout=timedelta(seconds=1), now_ms=500
        )
        assert seeded == 500
        first = await store.reserve("s", "a", MINUTE)
        assert (first.first_use, first.floor_ms) == (True, 500)
        sync_client(redis_server).flushall()  # a restart without persistence, a failover
        now[0] = 3_000
        again = await store.reserve("s", "a", MINUTE)
        assert (again.first_use, again.floor_ms) == (True, 3_000)
        now[0] = 4_000
        replay = await store.reserve("s", "a", MINUTE)
        assert (replay.first_use, replay.floor_ms) == (False, 3_000)
        # A floor that is not a number fails closed.
        sync_client(redis_server).set(epoch_key("test:replay:"), b"garbage")
        with pytest.raises(ReplayStoreUnavailableError, match="malformed"):
            await store.reserve("s", "b", MINUTE)
    finally:
        if isinstance(store, RespReplayStore):
            await store.aclose()
        await client.aclose()


@integration
async def test_a_stalled_event_loop_is_not_a_silent_redis(
    redis_url: str, redis_server: RedisServer
):
    """CPU starvation: this process is not scheduled for longer than the reserve timeout
    while Redis answers at once. The replies are waiting in the socket when the loop
    wakes up, so no reservation may fail and the connection must not be dropped."""
    store = RespReplayStore(
        settings_for(redis_server.host, redis_server.port, redis_server.password),
        key_prefix="test:replay:",
        reserve_timeout=timedelta(milliseconds=200),
    )
    try:
        assert (await store.reserve("s", "warm-up", MINUTE)).first_use
        for round_ in range(3):
            tasks = [
                asyncio.ensure_future(store.reserve("s", f"{round_}-{n}", MINUTE))
                for n in range(50)
            ]
            await asyncio.sleep(0)  # the reservations are queued...
            await asyncio.sleep(0)  # ...and written
            time.sleep(0.6)  # the stall under test: 3x the reserve timeout
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert [r for r in results if isinstance(r, BaseException)] == []
            assert all(r.first_use for r in results if isinstance(r, Reservation))
        assert store.connects == 1
    finally:
        await store.aclose()
