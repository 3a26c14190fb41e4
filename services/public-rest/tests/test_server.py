"""Granian option mapping and the readiness probe."""

from __future__ import annotations

import asyncio

import pytest
from granian.constants import HTTPModes, Interfaces

from edgecore.config import HostPort, PublicRestSettings, load_settings
from public_rest.readiness import Readiness, TcpProbe, upstream_address
from public_rest.server import granian_options, listen_host


def settings(**env: str) -> PublicRestSettings:
    return load_settings(PublicRestSettings, {"GATEWAY_BACKEND_GATEWAY_CLIENT_ID": "t", **env})


def test_listener_budgets_map_onto_granian() -> None:
    options = granian_options(
        settings(
            GATEWAY_PUBLIC_HTTP_ADDR="127.0.0.1:18080",
            GATEWAY_PUBLIC_HTTP_READ_HEADER_TIMEOUT="1500ms",
        )
    )
    kwargs = options.kwargs()
    assert (kwargs["address"], kwargs["port"]) == ("127.0.0.1", 18080)
    assert kwargs["interface"] is Interfaces.ASGI
    assert kwargs["http"] is HTTPModes.http1
    assert kwargs["websockets"] is False
    assert kwargs["http1_settings"].header_read_timeout == 1500
    assert kwargs["http1_settings"].keep_alive is True


def test_defaults() -> None:
    options = granian_options(settings())
    assert (options.address, options.port, options.header_read_timeout_ms) == (
        "0.0.0.0",
        8080,
        2000,
    )
    assert listen_host(HostPort("", 1)) == "0.0.0.0"
    assert listen_host(HostPort("::1", 1)) == "::1"


def test_upstream_address() -> None:
    assert upstream_address("http://backend:8090") == ("backend", 8090)
    assert upstream_address("https://backend.internal") == ("backend.internal", 443)
    assert upstream_address("http://10.0.0.2/") == ("10.0.0.2", 80)


async def test_tcp_probe_is_bounded_cached_and_shared() -> None:
    connections = 0

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    probe = TcpProbe("127.0.0.1", port, ttl=60)
    results = await asyncio.gather(*(probe.check() for _ in range(20)))
    assert all(results)
    await asyncio.sleep(0.05)
    assert connections == 1
    server.close()
    await server.wait_closed()
    assert await probe.check()  # cached within the ttl

    down = TcpProbe("127.0.0.1", port, ttl=0)
    assert not await down.check()


async def test_tcp_probe_never_waits_past_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    async def hangs(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(60)

    monkeypatch.setattr(asyncio, "open_connection", hangs)
    loop = asyncio.get_running_loop()
    probe = TcpProbe("127.0.0.1", 9, connect_timeout=0.2, ttl=0)
    started = loop.time()
    assert not await probe.check()
    assert loop.time() - started < 5.0  # the 0.2 s connect bound, not the 60 s hang


async def test_readiness_conditions() -> None:
    class Probe:
        def __init__(self, ok: bool) -> None:
            self.ok = ok

        async def check(self) -> bool:
            return self.ok

    assert not await Readiness(None).ready()
    assert await Readiness(Probe(True)).ready()  # type: ignore[arg-type]
    assert not await Readiness(Probe(False)).ready()  # type: ignore[arg-type]
    stopping = Readiness(Probe(True))  # type: ignore[arg-type]
    stopping.shutting_down = True
    assert not await stopping.ready()
