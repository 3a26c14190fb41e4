"""Fuzz target 4: the internal-route HMAC verifier (docs/internal-auth.md), driven in process.

* correctly signed requests (any method, raw target, content type, body split into
  any chunks, fresh timestamp, nonce, key id, request id) reach the app exactly
  once, with the exact body and the verified caller; the same request again is a
  409 replay;
* a signed request with any one signed component changed afterwards never reaches
  the app, and is answered with a documented rejection;
* arbitrary scopes (raw header bytes, repeated headers, any path, raw_path, method,
  query, body chunks, disconnects) never raise, never reach the app on a protected
  path, and only produce the documented statuses, codes and headers;
* the canonical string builder: every field in grammar or ``ValueError``;
* end to end: ``HmacRequestSigner`` through httpx's ASGI transport is accepted for
  arbitrary paths, queries and bodies.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any, Final
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from edgecore.internal_auth import (
    HmacRequestSigner,
    HmacVerifierMiddleware,
    MemoryNonceStore,
    VerifiedCaller,
    body_sha256_hex,
    canonical_string,
    compute_signature,
    request_target,
    verified_caller,
)
from edgecore.internal_auth.canonical import (
    KEY_ID_PATTERN,
    METHOD_PATTERN,
    NONCE_PATTERN,
    REQUEST_ID_PATTERN,
    TIMESTAMP_PATTERN,
)

from .profiles import fuzz_settings

pytestmark = pytest.mark.fuzz

SECRET: Final = b"galaxy-internal-test-secret-0123456789abcdef"
NOW: Final = 1_750_000_000.0
NOW_MS: Final = 1_750_000_000_000
WINDOW_MS: Final = 30_000
MAX_BODY: Final = 256
# Every rejection docs/internal-auth.md lists: (status, code).
DOCUMENTED: Final = {
    (401, "unauthenticated"),
    (400, "invalid_request"),
    (401, "stale_request"),
    (413, "request_too_large"),
    (415, "unsupported_media_type"),
    (401, "invalid_signature"),
    (409, "replay_detected"),
    (503, "service_unavailable"),
}
PROTECTED: Final = ("/api/v1/internal/", "/api/v1/user/")

# --- request model ---------------------------------------------------------------------


class Request:
    """One HTTP request as an ASGI server hands it to the middleware."""

    def __init__(
        self,
        *,
        method: str,
        raw_path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        chunks: list[bytes],
        path: str | None = None,
    ) -> None:
        self.method = method
        self.raw_path = raw_path
        self.query = query
        self.headers = headers
        self.chunks = chunks
        self.path = unquote(raw_path.decode("latin-1")) if path is None else path

    def scope(self) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": self.method,
            "path": self.path,
            "raw_path": self.raw_path,
            "query_string": self.query,
            "headers": list(self.headers),
        }

    def messages(self) -> list[dict[str, Any]]:
        chunks = self.chunks or [b""]
        return [
            {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
            for i, chunk in enumerate(chunks)
        ]


class Outcome:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.app_calls: list[tuple[dict[str, Any], bytes]] = []

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        assert len(starts) <= 1
        return starts[0]["status"] if starts else None

    @property
    def headers(self) -> dict[bytes, bytes]:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return dict(start["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def _middleware(store: MemoryNonceStore | None = None, **options: Any) -> HmacVerifierMiddleware:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        scope["_outcome"].app_calls.append((scope, body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return HmacVerifierMiddleware(
        app,
        secret=options.pop("secret", SECRET),
        nonce_store=store or MemoryNonceStore(),
        max_body_bytes=MAX_BODY,
        clock=lambda: NOW,
        **options,
    )


async def _drive(
    middleware: HmacVerifierMiddleware, scope: dict[str, Any], messages: list[dict[str, Any]]
) -> Outcome:
    outcome = Outcome()
    scope = {**scope, "_outcome": outcome}
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        outcome.sent.append(message)

    await middleware(scope, receive, send)
    return outcome


def _run(
    request: Request, middleware: HmacVerifierMiddleware | None = None, times: int = 1
) -> list[Outcome]:
    mw = middleware or _middleware()

    async def run() -> list[Outcome]:
        return [await _drive(mw, request.scope(), request.messages()) for _ in range(times)]

    return asyncio.run(run())


def _assert_documented_reject(outcome: Outcome, request_id: str | None = None) -> tuple[int, str]:
    """A rejection exactly as docs/internal-auth.md describes it; returns (status, code)."""
    assert outcome.app_calls == []
    if outcome.status is None:  # the client went away while its body was read
        assert outcome.sent == []
        return (0, "disconnected")
    document = json.loads(outcome.body)
    assert set(document) == {"error"} and set(document["error"]) == {"code", "message"}
    pair = (outcome.status, document["error"]["code"])
    assert pair in DOCUMENTED, pair
    headers = outcome.headers
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"cache-control"] == b"no-store"
    assert headers[b"content-length"] == str(len(outcome.body)).encode()
    echoed = headers.get(b"x-request-id")
    if echoed is not None:
        assert REQUEST_ID_PATTERN.fullmatch(echoed.decode("ascii"))
        if request_id is not None:
            assert echoed == request_id.encode()
    return pair


# --- strategies ------------------------------------------------------------------------

_VISIBLE: Final = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
methods: Final = st.from_regex(METHOD_PATTERN, fullmatch=True)
nonces: Final = st.from_regex(NONCE_PATTERN, fullmatch=True)
key_ids: Final = st.from_regex(KEY_ID_PATTERN, fullmatch=True)
request_ids: Final = st.from_regex(REQUEST_ID_PATTERN, fullmatch=True)
_SEGMENT_CHARS: Final = sorted(set(map(chr, range(0x21, 0x7F))) - set("?/#"))
_SEGMENT: Final = st.text(st.sampled_from(_SEGMENT_CHARS), min_size=1, max_size=10)
raw_paths: Final = st.builds(
    lambda prefix, segments: (prefix + "/".join(segments)).encode("ascii"),
    st.sampled_from(PROTECTED),
    st.lists(_SEGMENT, max_size=3),
)
queries: Final = st.one_of(st.just(b""), st.text(_VISIBLE, max_size=20).map(str.encode))
content_types: Final = st.one_of(
    st.just("application/json"),
    st.sampled_from(["Application/JSON", "application/json; charset=utf-8", " application/json "]),
    st.just(""),
)


def _chunked(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    edges = [0, *points, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)] or [b""]


@st.composite
def signed_requests(draw: st.DrawFn) -> tuple[Request, dict[str, str]]:
    """A request signed exactly as docs/internal-auth.md says; returns it and its fields."""
    body = draw(st.binary(max_size=MAX_BODY), "body")
    content_type = draw(content_types, "content_type")
    if body and not content_type:
        content_type = "application/json"  # a body needs an allowed type (else 415)
    fields = {
        "method": draw(methods, "method"),
        "target": "",
        "content_type": content_type,
        "body_sha256": body_sha256_hex(body),
        "timestamp_ms": str(NOW_MS + draw(st.integers(-WINDOW_MS, WINDOW_MS), "skew")),
        "nonce": draw(nonces, "nonce"),
        "key_id": draw(key_ids, "key_id"),
        "request_id": draw(request_ids, "request_id"),
    }
    raw_path, query = draw(raw_paths, "raw_path"), draw(queries, "query")
    fields["target"] = request_target(raw_path, query)
    headers = [
        (b"x-galaxy-timestamp", fields["timestamp_ms"].encode()),
        (b"x-galaxy-nonce", fields["nonce"].encode()),
        (b"x-galaxy-key-id", fields["key_id"].encode()),
        (b"x-request-id", fields["request_id"].encode()),
        (b"x-galaxy-signature", compute_signature(SECRET, canonical_string(**fields)).encode()),
    ]
    if content_type:
        headers.append((b"content-type", content_type.encode()))
    if draw(st.booleans(), "content_length"):
        headers.append((b"content-length", str(len(body)).encode()))
    # Header names in any case, in any order.
    headers = [
        (draw(st.sampled_from([name, name.upper(), name.title()]), "case"), value)
        for name, value in draw(st.permutations(headers), "order")
    ]
    cuts = draw(st.lists(st.integers(0, MAX_BODY), max_size=3), "cuts")
    request = Request(
        method=fields["method"],
        raw_path=raw_path,
        query=query,
        headers=headers,
        chunks=_chunked(body, cuts),
    )
    return request, fields


@fuzz_settings(200)
@given(signed=signed_requests())
def test_correctly_signed_requests_are_accepted_once(
    signed: tuple[Request, dict[str, str]],
) -> None:
    request, fields = signed
    first, again = _run(request, times=2)
    assert first.status == 200
    ((scope, body),) = first.app_calls
    assert body == b"".join(request.chunks)
    assert verified_caller(scope) == VerifiedCaller(fields["key_id"], fields["request_id"])
    assert _assert_documented_reject(again, fields["request_id"]) == (409, "replay_detected")


SIGNED_PARTS: Final = (
    "method",
    "raw_path",
    "query",
    "content_type",
    "body",
    "timestamp",
    "nonce",
    "key_id",
    "request_id",
    "signature",
)
_HEADER: Final = {
    "timestamp": b"x-galaxy-timestamp",
    "nonce": b"x-galaxy-nonce",
    "key_id": b"x-galaxy-key-id",
    "request_id": b"x-request-id",
    "signature": b"x-galaxy-signature",
    "content_type": b"content-type",
}


def _replace_header(request: Request, name: bytes, value: bytes) -> None:
    kept = [(n, v) for n, v in request.headers if n.lower() != name]
    request.headers = [*kept, (name, value)]


@fuzz_settings(200)
@given(signed=signed_requests(), part=st.sampled_from(SIGNED_PARTS), data=st.data())
def test_changing_any_signed_part_is_rejected(
    signed: tuple[Request, dict[str, str]], part: str, data: st.DataObject
) -> None:
    request, fields = signed
    body = b"".join(request.chunks)
    if part == "method":
        request.method = data.draw(methods.filter(lambda m: m != fields["method"]), "new")
    elif part == "raw_path":
        new = data.draw(raw_paths.filter(lambda p: p != request.raw_path), "new")
        request.raw_path, request.path = new, unquote(new.decode("latin-1"))
    elif part == "query":
        request.query = data.draw(queries.filter(lambda q: q != request.query), "new")
    elif part == "body":
        new_body = data.draw(st.binary(max_size=MAX_BODY).filter(lambda b: b != body), "new")
        request.chunks = [new_body]
        request.headers = [(n, v) for n, v in request.headers if n.lower() != b"content-length"]
    else:
        old = fields.get(part, fields.get(f"{part}_ms", ""))
        new_value = {
            "content_type": content_types.filter(lambda c: c != old and c.strip()),
            "timestamp": st.integers(NOW_MS - WINDOW_MS, NOW_MS + WINDOW_MS).map(str),
            "nonce": nonces,
            "key_id": key_ids,
            "request_id": request_ids,
            "signature": st.from_regex(r"v1=[0-9a-f]{64}", fullmatch=True),
        }[part]
        value = data.draw(new_value.filter(lambda v: v != old), "new")
        _replace_header(request, _HEADER[part], value.encode())
    (outcome,) = _run(request)
    pair = _assert_documented_reject(outcome)
    event(f"{part}: {pair}")
    # Everything is still in grammar, so only the signature (or the type of a body
    # whose Content-Type changed) can fail.
    assert pair in {(401, "invalid_signature"), (415, "unsupported_media_type")}, pair


# --- arbitrary scopes ----------------------------------------------------------------------

_WATCHED_NAMES: Final = [
    b"x-galaxy-signature",
    b"x-galaxy-timestamp",
    b"x-galaxy-nonce",
    b"x-galaxy-key-id",
    b"x-request-id",
    b"content-type",
    b"content-length",
    b"transfer-encoding",
    b"X-Galaxy-Nonce",
]
_HEADER_VALUES: Final = st.one_of(
    st.binary(max_size=70),
    st.text(_VISIBLE, max_size=70).map(str.encode),
    st.from_regex(r"v1=[0-9a-fA-F]{62,66}", fullmatch=True).map(str.encode),
    st.sampled_from([b"1750000000000", b"01750000000000", b"-1", b"99999999999999999", b""]),
    st.sampled_from([b"application/json", b"text/plain", b"0", b"257", b"1" * 25, b"\xb9"]),
    nonces.map(str.encode),
    request_ids.map(str.encode),
)
_PATHS: Final = st.one_of(
    st.sampled_from(
        [
            "/api/v1/internal/x",
            "/api/v1/internal",
            "//api//v1//internal//x",
            "/API/V1/INTERNAL/x",
            "/api/v1/./internal/x",
            "/api/v1/x/../internal/x",
            "/api/v1/user",
            "/api/v1/users",
            "/api/v1/internalx",
            "/public/x",
            "/",
            "",
        ]
    ),
    st.text(max_size=30),
    st.text(st.characters(exclude_categories=()), max_size=10),
    st.builds(lambda p, s: p + s, st.sampled_from(PROTECTED), st.text(max_size=10)),
)


def _looks_protected(path: str) -> bool:
    """Independent of the middleware: would a router that collapses '//', resolves dot
    segments and ignores case route this to a protected prefix?"""
    lowered = path.lower()
    parts: list[str] = []
    for segment in lowered.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    normal = "/" + "/".join(parts)
    return any(
        candidate.startswith(prefix) or candidate == prefix.rstrip("/")
        for prefix in PROTECTED
        for candidate in (lowered, normal, normal + "/")
    )


@st.composite
def arbitrary_requests(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    scope: dict[str, Any] = {
        "type": draw(st.sampled_from(["http", "http", "http", "websocket", "lifespan"]), "type"),
        "method": draw(st.one_of(methods, st.text(max_size=8)), "method"),
        "path": draw(_PATHS, "path"),
        "query_string": draw(st.binary(max_size=16), "query"),
        "headers": draw(
            st.lists(
                st.tuples(
                    st.one_of(st.sampled_from(_WATCHED_NAMES), st.binary(max_size=12)),
                    _HEADER_VALUES,
                ),
                max_size=9,
            ),
            "headers",
        ),
    }
    raw_path = draw(
        st.one_of(st.none(), st.just("same"), st.binary(max_size=30), raw_paths), "raw_path"
    )
    if raw_path == "same":
        raw_path = scope["path"].encode("utf-8", "surrogatepass")
    if raw_path is not None:
        scope["raw_path"] = raw_path
    messages = draw(
        st.lists(
            st.one_of(
                st.builds(
                    lambda body, more: {"type": "http.request", "body": body, "more_body": more},
                    st.binary(max_size=120),
                    st.booleans(),
                ),
                st.just({"type": "http.disconnect"}),
                st.just({"type": "http.unknown"}),
            ),
            max_size=4,
        ),
        "messages",
    )
    return scope, messages


@st.composite
def corrupted_signed_requests(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A signed request with headers repeated, dropped or replaced, a body too large,
    a stale clock, or a disconnect: reaches every check past the first."""
    request, _ = draw(signed_requests(), "signed")
    headers = list(request.headers)
    for _ in range(draw(st.integers(1, 3), "count")):
        action = draw(
            st.sampled_from(["repeat", "drop", "replace", "add", "big", "gone", "stale", "noise"])
        )
        if action == "repeat" and headers:
            headers.append(draw(st.sampled_from(headers), "repeated"))
        elif action == "drop" and headers:
            headers.pop(draw(st.integers(0, len(headers) - 1), "dropped"))
        elif action == "replace" and headers:
            index = draw(st.integers(0, len(headers) - 1), "replaced")
            headers[index] = (headers[index][0], draw(_HEADER_VALUES, "value"))
        elif action == "add":
            headers.append((draw(st.sampled_from(_WATCHED_NAMES)), draw(_HEADER_VALUES)))
        elif action == "big":
            request.chunks = [*request.chunks, bytes(MAX_BODY + 1 - len(b"".join(request.chunks)))]
        elif action == "stale":
            skew = draw(st.integers(WINDOW_MS + 1, 10**12), "skew") * draw(st.sampled_from([-1, 1]))
            headers = [(n, v) for n, v in headers if n.lower() != b"x-galaxy-timestamp"]
            headers.append((b"x-galaxy-timestamp", str(NOW_MS + skew).encode()))
        elif action == "noise":  # harmless: the request stays correctly signed
            headers.append((b"x-unrelated", draw(st.binary(max_size=8), "noise")))
        elif action == "gone":
            request.chunks = request.chunks[:-1]  # then the client disconnects
    request.headers = headers
    return request.scope(), request.messages()[: len(request.chunks)]


def _correctly_signed(scope: dict[str, Any], body: bytes) -> bool:
    """An independent reading of docs/internal-auth.md: does this request carry a valid
    v1 signature (every header once and in grammar, fresh, body within the limit)?"""
    values: dict[bytes, list[bytes]] = {}
    for name, value in scope["headers"]:
        values.setdefault(name.lower(), []).append(value)
    needed = (b"x-galaxy-signature", b"x-galaxy-timestamp", b"x-galaxy-nonce")
    needed += (b"x-galaxy-key-id", b"x-request-id")
    if any(len(values.get(name, [])) != 1 for name in needed):
        return False
    if any(len(values.get(name, [])) > 1 for name in (b"content-type", b"content-length")):
        return False
    text = {name: values[name][0].decode("latin-1") for name in needed}
    content_type = values.get(b"content-type", [b""])[0].decode("latin-1")
    if len(body) > MAX_BODY or not TIMESTAMP_PATTERN.fullmatch(text[b"x-galaxy-timestamp"]):
        return False
    if abs(int(text[b"x-galaxy-timestamp"]) - NOW_MS) > WINDOW_MS:
        return False
    try:
        canonical = canonical_string(
            method=scope["method"],
            target=request_target(scope["raw_path"], scope["query_string"]),
            content_type=content_type,
            body_sha256=body_sha256_hex(body),
            timestamp_ms=text[b"x-galaxy-timestamp"],
            nonce=text[b"x-galaxy-nonce"],
            key_id=text[b"x-galaxy-key-id"],
            request_id=text[b"x-request-id"],
        )
    except (ValueError, KeyError):
        return False
    return text[b"x-galaxy-signature"] == compute_signature(SECRET, canonical)


@fuzz_settings(200)
@given(case=st.one_of(arbitrary_requests(), corrupted_signed_requests()))
@example(
    case=(
        {"type": "http", "method": "POST", "path": "/api/v1/internal/\ud800", "headers": []},
        [],
    )
)
def test_arbitrary_requests_never_reach_a_protected_app(
    case: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    scope, messages = case
    middleware = _middleware()
    outcome = asyncio.run(_drive(middleware, scope, messages))
    protected = middleware.is_protected(str(scope.get("path", "")))
    if _looks_protected(str(scope["path"])) and scope["type"] in ("http", "websocket"):
        assert protected
    if scope["type"] == "http" and protected and not outcome.app_calls:
        event(f"protected: {_assert_documented_reject(outcome)}")
    elif scope["type"] == "websocket" and protected:
        assert outcome.app_calls == []
        assert outcome.sent == [{"type": "websocket.close", "code": 1008}]
        event("websocket closed")
    elif scope["type"] == "http" and protected:
        # Only a request that really is correctly signed gets through.
        ((seen, body),) = outcome.app_calls
        assert _correctly_signed(scope, body)
        assert verified_caller(seen) is not None
        event("correctly signed, accepted")
    else:
        # Not protected: passed through untouched (the app saw the very scope).
        ((seen, _),) = outcome.app_calls
        assert {k: v for k, v in seen.items() if k != "_outcome"} == scope
        event("passed through")


# --- the canonical string ----------------------------------------------------------------


@fuzz_settings(150)
@given(
    fields=st.fixed_dictionaries(
        {
            "method": st.one_of(methods, st.text(max_size=6)),
            "target": st.one_of(st.text(_VISIBLE, min_size=1, max_size=20), st.text(max_size=8)),
            "content_type": st.one_of(content_types, st.text(max_size=8)),
            "body_sha256": st.one_of(
                st.binary(max_size=4).map(body_sha256_hex),
                st.text("0123456789abcdefA", max_size=66),
            ),
            "timestamp_ms": st.one_of(
                st.from_regex(TIMESTAMP_PATTERN, fullmatch=True), st.text(max_size=18)
            ),
            "nonce": st.one_of(nonces, st.text(max_size=24)),
            "key_id": st.one_of(key_ids, st.text(max_size=8)),
            "request_id": st.one_of(request_ids, st.text(max_size=8)),
        }
    )
)
def test_canonical_string_is_unambiguous(fields: dict[str, str]) -> None:
    try:
        canonical = canonical_string(**fields)
    except ValueError as exc:
        assert type(exc) is ValueError
        assert str(exc).endswith("does not match the canonical grammar")
        return
    # One reading only: nine ASCII lines that give the fields back.
    canonical.encode("ascii")
    lines = canonical.split("\n")
    order = ("method", "target", "content_type", "body_sha256", "timestamp_ms", "nonce")
    assert lines == [
        "galaxy-internal-v1",
        *(fields[name] for name in order),
        fields["key_id"],
        fields["request_id"],
    ]
    assert compute_signature(SECRET, canonical).startswith("v1=")


# --- signer and verifier, end to end through httpx -----------------------------------------------


@fuzz_settings(150)
@given(
    # httpx refuses control characters in URLs and resolves dot segments itself.
    segments=st.lists(
        st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=8).filter(
            lambda s: s not in (".", "..")
        ),
        max_size=3,
    ),
    params=st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=3),
    body=st.one_of(
        st.binary(max_size=64).map(lambda b: {"content": b}),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3).map(
            lambda d: {"json": d}
        ),
    ),
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    prefix=st.sampled_from(PROTECTED),
)
def test_signer_and_verifier_agree(
    segments: list[str],
    params: list[tuple[str, str]],
    body: dict[str, Any],
    method: str,
    prefix: str,
) -> None:
    seen: list[VerifiedCaller | None] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(verified_caller(scope))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    verifier = HmacVerifierMiddleware(
        app, secret=SECRET, nonce_store=MemoryNonceStore(), clock=lambda: NOW
    )
    signer = HmacRequestSigner(secret=SECRET, key_id="edge-gateway", clock=lambda: NOW)

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=verifier)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://backend", auth=signer
        ) as client:
            headers = {"content-type": "application/json"} if "content" in body else {}
            return await client.request(
                method, prefix + "/".join(segments), params=params, headers=headers, **body
            )

    response = asyncio.run(run())
    assert response.status_code == 204, response.text
    assert len(seen) == 1 and seen[0] is not None and seen[0].key_id == "edge-gateway"
