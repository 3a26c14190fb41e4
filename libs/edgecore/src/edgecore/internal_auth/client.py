"""Signing outgoing internal calls: an ``httpx.Auth`` that adds the v1 headers.

Use it with ``httpx.AsyncClient(auth=HmacRequestSigner(...))`` (or per
request). It signs the exact bytes httpx sends, so the body must be known up
front (``content=bytes``, ``json=``, ``data=``); a streaming body raises
``UnsupportedRequestBodyError`` before anything is sent. Keep redirects off
(httpx's default): a redirected request is not re-signed.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Callable, Generator

import httpx

from edgecore.internal_auth.canonical import (
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_REQUEST_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    KEY_ID_PATTERN,
    MIN_SECRET_BYTES,
    REQUEST_ID_PATTERN,
    body_sha256_hex,
    canonical_string,
    compute_signature,
    request_target,
)

__all__ = [
    "HmacRequestSigner",
    "UnsupportedRequestBodyError",
    "new_nonce",
    "new_request_id",
]


class UnsupportedRequestBodyError(ValueError):
    """The request body is a stream, whose bytes cannot be signed before sending."""


def new_nonce() -> str:
    """128 random bits as URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


def new_request_id() -> str:
    return str(uuid.uuid4())


class HmacRequestSigner(httpx.Auth):
    """Adds X-Request-Id (kept when the caller set one), X-Galaxy-Timestamp,
    X-Galaxy-Nonce, X-Galaxy-Key-Id and X-Galaxy-Signature to every request.

    ``clock`` returns Unix seconds; ``nonce_factory`` and ``request_id_factory``
    exist for deterministic tests.
    """

    requires_request_body = False  # the body is inspected, never read from a stream

    def __init__(
        self,
        *,
        secret: bytes,
        key_id: str,
        clock: Callable[[], float] = time.time,
        nonce_factory: Callable[[], str] = new_nonce,
        request_id_factory: Callable[[], str] = new_request_id,
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the HMAC secret must be at least {MIN_SECRET_BYTES} bytes")
        if KEY_ID_PATTERN.fullmatch(key_id) is None:
            raise ValueError(f"key id must match {KEY_ID_PATTERN.pattern}")
        self._secret = secret
        self.key_id = key_id
        self._clock = clock
        self._nonce_factory = nonce_factory
        self._request_id_factory = request_id_factory

    def __repr__(self) -> str:
        return f"HmacRequestSigner(key_id={self.key_id!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Set the signature headers on ``request`` in place."""
        try:
            body = request.content
        except httpx.RequestNotRead:
            raise UnsupportedRequestBodyError(
                "HMAC request signing needs the whole body before sending; streaming "
                "request bodies are not supported (pass content=bytes, json= or data=)"
            ) from None
        raw_path, _, _ = request.url.raw_path.partition(b"?")
        request.headers.update(
            self.headers_for(
                request.method,
                request_target(raw_path, request.url.query),
                content_type=request.headers.get("content-type", ""),
                body=body,
                request_id=request.headers.get(HEADER_REQUEST_ID),
            )
        )

    def headers_for(
        self,
        method: str,
        target: str,
        *,
        content_type: str,
        body: bytes,
        request_id: str | None = None,
    ) -> dict[str, str]:
        """The five v1 headers for a request whose exact bytes are known.

        ``target`` is the raw request target (``request_target``); a client that
        builds its own requests (the backend adapter) signs through this.
        """
        request_id = request_id or self._request_id_factory()
        if REQUEST_ID_PATTERN.fullmatch(request_id) is None:
            raise ValueError(f"{HEADER_REQUEST_ID} must match {REQUEST_ID_PATTERN.pattern}")
        timestamp_ms = str(int(self._clock() * 1000))
        nonce = self._nonce_factory()
        canonical = canonical_string(
            method=method,
            target=target,
            content_type=content_type,
            body_sha256=body_sha256_hex(body),
            timestamp_ms=timestamp_ms,
            nonce=nonce,
            key_id=self.key_id,
            request_id=request_id,
        )
        return {
            HEADER_REQUEST_ID: request_id,
            HEADER_TIMESTAMP: timestamp_ms,
            HEADER_NONCE: nonce,
            HEADER_KEY_ID: self.key_id,
            HEADER_SIGNATURE: compute_signature(self._secret, canonical),
        }
