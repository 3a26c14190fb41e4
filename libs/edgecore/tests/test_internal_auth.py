"""Internal-route HMAC: canonical string, secret loading, signer headers, memory nonce store.

Pure unit tests (no sockets, no servers). The vector below is also checked
independently with openssl in docs/internal-auth.md.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from edgecore.internal_auth import (
    HmacRequestSigner,
    MemoryNonceStore,
    NonceStoreUnavailableError,
    SecretEmptyError,
    SecretFileMissingError,
    SecretFileUnreadableError,
    SecretTooShortError,
    UnsupportedRequestBodyError,
    body_sha256_hex,
    canonical_string,
    compute_signature,
    load_hmac_secret,
    new_nonce,
    request_target,
    signature_matches,
)
from edgecore.internal_auth.canonical import NONCE_PATTERN

SECRET = b"galaxy-internal-test-secret-0123456789abcdef"
BODY = b'{"lobby_id":"l-1"}'
NONCE = "AAECAwQFBgcICQoLDA0ODw"  # urlsafe base64 of bytes 0..15, unpadded
REQUEST_ID = "6f1f9c2e-3c1a-4d8b-9a57-1f7e2b9d0c11"
NOW = 1_750_000_000.0
VECTOR_CANONICAL = (
    "galaxy-internal-v1\n"
    "POST\n"
    "/api/v1/internal/lobbies?dry_run=1\n"
    "application/json\n"
    "ca113887b2d22e69b96dc26fd48d9414d9c56f77f754e653ce0e4470e269b162\n"
    "1750000000000\n"
    "AAECAwQFBgcICQoLDA0ODw\n"
    "edge-gateway\n"
    "6f1f9c2e-3c1a-4d8b-9a57-1f7e2b9d0c11"
)
VECTOR_SIGNATURE = "v1=7bee0a47c51e2328e169c3400085961f5404c6110b67f913197b343a321a27f7"


def vector_fields() -> dict[str, str]:
    return {
        "method": "POST",
        "target": "/api/v1/internal/lobbies?dry_run=1",
        "content_type": "application/json",
        "body_sha256": body_sha256_hex(BODY),
        "timestamp_ms": "1750000000000",
        "nonce": NONCE,
        "key_id": "edge-gateway",
        "request_id": REQUEST_ID,
    }


def fixed_signer(secret: bytes = SECRET) -> HmacRequestSigner:
    return HmacRequestSigner(
        secret=secret,
        key_id="edge-gateway",
        clock=lambda: NOW,
        nonce_factory=lambda: NONCE,
        request_id_factory=lambda: REQUEST_ID,
    )


# --- canonical string -------------------------------------------------------


def test_canonical_string_vector() -> None:
    assert canonical_string(**vector_fields()) == VECTOR_CANONICAL
    assert compute_signature(SECRET, VECTOR_CANONICAL) == VECTOR_SIGNATURE


def test_body_hash_of_empty_body_is_sha256_of_nothing() -> None:
    assert body_sha256_hex(b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize(
    ("raw_path", "query", "target"),
    [
        (b"/api/v1/internal/x", b"", "/api/v1/internal/x"),
        (b"/api/v1/internal/x", b"a=1&b=%20c", "/api/v1/internal/x?a=1&b=%20c"),
        ("/api/v1/user/a%2Fb/%C3%BC", "x=%C3%BC", "/api/v1/user/a%2Fb/%C3%BC?x=%C3%BC"),
    ],
)
def test_request_target_keeps_the_raw_spelling(
    raw_path: bytes | str, query: bytes | str, target: str
) -> None:
    assert request_target(raw_path, query) == target


@pytest.mark.parametrize(
    ("raw_path", "query"),
    [(b"/a?b", b""), (b"/a b", b""), ("/ü", ""), (b"a", b""), (b"/a", b"x=\n")],
)
def test_request_target_refuses_non_wire_spellings(raw_path: bytes | str, query: bytes) -> None:
    with pytest.raises(ValueError):
        request_target(raw_path, query)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("method", "post"),
        ("target", "/a\nb"),
        ("content_type", "application/json\nx"),
        ("body_sha256", "ABC"),
        ("timestamp_ms", "0175"),
        ("timestamp_ms", "-1"),
        ("nonce", "short"),
        ("nonce", "AAECAwQFBgcICQoLDA0ODw=="),
        ("key_id", "edge gateway"),
        ("request_id", ""),
        ("request_id", "a\nb"),
    ],
)
def test_canonical_string_refuses_fields_out_of_grammar(field: str, bad: str) -> None:
    fields = vector_fields() | {field: bad}
    with pytest.raises(ValueError, match=f"^{field} does not match the canonical grammar$"):
        canonical_string(**fields)


def test_signature_comparison() -> None:
    assert signature_matches(SECRET, VECTOR_CANONICAL, VECTOR_SIGNATURE)
    assert not signature_matches(SECRET, VECTOR_CANONICAL, VECTOR_SIGNATURE.upper())
    assert not signature_matches(SECRET, VECTOR_CANONICAL, "v2=" + VECTOR_SIGNATURE[3:])
    assert not signature_matches(SECRET + b"x", VECTOR_CANONICAL, VECTOR_SIGNATURE)
    assert not signature_matches(SECRET, VECTOR_CANONICAL, "v1=ü")


# --- secret loading -----------------------------------------------------------


def test_secret_loads_and_strips_exactly_one_newline(tmp_path: Path) -> None:
    file = tmp_path / "secret"
    file.write_bytes(SECRET + b"\n")
    assert load_hmac_secret(file) == SECRET
    file.write_bytes(SECRET + b"\n\n")
    assert load_hmac_secret(file) == SECRET + b"\n"
    file.write_bytes(SECRET + b"\r\n")
    assert load_hmac_secret(str(file)) == SECRET + b"\r"
    file.write_bytes(b"x" * 32)
    assert load_hmac_secret(file) == b"x" * 32


def test_secret_absent(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SecretFileMissingError) as err:
        load_hmac_secret(missing)
    assert str(err.value) == f"HMAC secret file {missing} does not exist"


def test_secret_unreadable_directory(tmp_path: Path) -> None:
    with pytest.raises(SecretFileUnreadableError) as err:
        load_hmac_secret(tmp_path)
    assert str(err.value) == f"HMAC secret file {tmp_path} is not readable: Is a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of mode bits")
def test_secret_unreadable_permissions(tmp_path: Path) -> None:
    file = tmp_path / "secret"
    file.write_bytes(SECRET)
    file.chmod(0)
    with pytest.raises(SecretFileUnreadableError) as err:
        load_hmac_secret(file)
    assert str(err.value) == f"HMAC secret file {file} is not readable: Permission denied"


@pytest.mark.parametrize("content", [b"", b"\n"])
def test_secret_empty(tmp_path: Path, content: bytes) -> None:
    file = tmp_path / "secret"
    file.write_bytes(content)
    with pytest.raises(SecretEmptyError) as err:
        load_hmac_secret(file)
    assert str(err.value) == f"HMAC secret file {file} is empty"


def test_secret_too_short_never_shows_the_secret(tmp_path: Path) -> None:
    file = tmp_path / "secret"
    file.write_bytes(b"short-secret-value-31-bytes-xyz\n")
    with pytest.raises(SecretTooShortError) as err:
        load_hmac_secret(file)
    assert str(err.value) == (
        f"HMAC secret file {file} is too short: 31 bytes, at least 32 are required"
    )
    assert "short-secret" not in repr(err.value)


# --- signer -----------------------------------------------------------------------


def test_signer_headers_are_deterministic_with_fixed_inputs() -> None:
    request = httpx.Request(
        "POST",
        "http://backend:8080/api/v1/internal/lobbies?dry_run=1",
        content=BODY,
        headers={"Content-Type": "application/json"},
    )
    fixed_signer().sign(request)
    assert request.headers["X-Request-Id"] == REQUEST_ID
    assert request.headers["X-Galaxy-Timestamp"] == "1750000000000"
    assert request.headers["X-Galaxy-Nonce"] == NONCE
    assert request.headers["X-Galaxy-Key-Id"] == "edge-gateway"
    assert request.headers["X-Galaxy-Signature"] == VECTOR_SIGNATURE
    assert request.content == BODY


def test_signer_keeps_a_caller_request_id_and_signs_it() -> None:
    request = httpx.Request(
        "GET", "http://b/api/v1/user/me?x=1", headers={"X-Request-Id": "edge-req-42"}
    )
    fixed_signer().sign(request)
    assert request.headers["X-Request-Id"] == "edge-req-42"
    canonical = canonical_string(
        method="GET",
        target="/api/v1/user/me?x=1",
        content_type="",
        body_sha256=body_sha256_hex(b""),
        timestamp_ms="1750000000000",
        nonce=NONCE,
        key_id="edge-gateway",
        request_id="edge-req-42",
    )
    assert request.headers["X-Galaxy-Signature"] == compute_signature(SECRET, canonical)


def test_signer_signs_an_empty_query_without_question_mark() -> None:
    with_mark = httpx.Request("GET", "http://b/api/v1/user/me?")
    without = httpx.Request("GET", "http://b/api/v1/user/me")
    fixed_signer().sign(with_mark)
    fixed_signer().sign(without)
    assert with_mark.headers["X-Galaxy-Signature"] == without.headers["X-Galaxy-Signature"]


def test_signer_refuses_a_malformed_caller_request_id() -> None:
    request = httpx.Request("GET", "http://b/x", headers={"X-Request-Id": "has space"})
    with pytest.raises(ValueError, match="X-Request-Id must match"):
        fixed_signer().sign(request)


async def test_signer_refuses_streaming_bodies() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"{}"

    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200))
    async with httpx.AsyncClient(transport=transport, auth=fixed_signer()) as client:
        with pytest.raises(UnsupportedRequestBodyError, match="streaming request bodies"):
            await client.post("http://b/api/v1/internal/x", content=chunks())
    assert sent == []


async def test_signer_works_as_async_client_auth_and_signs_sent_bytes() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(handler), auth=fixed_signer()
    ) as client:
        await client.post(
            "http://backend:8080/api/v1/internal/lobbies",
            params={"dry_run": "1"},
            content=BODY,
            headers={"Content-Type": "application/json"},
        )
    (request,) = seen
    assert request.headers["X-Galaxy-Signature"] == VECTOR_SIGNATURE
    assert request.content == BODY


def test_signer_validates_inputs_and_hides_the_secret() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        HmacRequestSigner(secret=b"x" * 31, key_id="edge-gateway")
    with pytest.raises(ValueError, match="key id must match"):
        HmacRequestSigner(secret=SECRET, key_id="bad id")
    signer = HmacRequestSigner(secret=SECRET, key_id="edge-gateway")
    assert repr(signer) == "HmacRequestSigner(key_id='edge-gateway')"
    assert SECRET.decode() not in repr(signer)
    assert SECRET.decode() not in str(signer)


def test_new_nonce_is_128_bits_urlsafe() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    for nonce in nonces:
        assert len(nonce) == 22
        assert NONCE_PATTERN.fullmatch(nonce)


# --- memory nonce store -------------------------------------------------------------


async def test_memory_store_rejects_a_second_reservation_until_expiry() -> None:
    now = [100.0]
    store = MemoryNonceStore(max_entries=10, clock=lambda: now[0])
    ttl = timedelta(seconds=60)
    assert await store.reserve("gw", NONCE, ttl) is True
    assert await store.reserve("gw", NONCE, ttl) is False
    assert await store.reserve("other", NONCE, ttl) is True
    now[0] += 59.9
    assert await store.reserve("gw", NONCE, ttl) is False
    now[0] += 0.1
    assert await store.reserve("gw", NONCE, ttl) is True


async def test_memory_store_is_bounded_and_fails_closed_when_full() -> None:
    now = [0.0]
    store = MemoryNonceStore(max_entries=2, clock=lambda: now[0])
    ttl = timedelta(seconds=1)
    assert await store.reserve("gw", "a" * 22, ttl)
    assert await store.reserve("gw", "b" * 22, ttl)
    with pytest.raises(NonceStoreUnavailableError, match="full"):
        await store.reserve("gw", "c" * 22, ttl)
    now[0] = 1.0  # both expire: room again, and "a" is forgotten only after its window
    assert await store.reserve("gw", "c" * 22, ttl)
    assert len(store) == 1
