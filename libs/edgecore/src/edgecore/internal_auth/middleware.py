"""The ASGI verifier of internal-route HMAC signatures (docs/internal-auth.md).

``HmacVerifierMiddleware`` wraps any ASGI application. Requests whose path is
under a protected prefix are verified in this order, cheapest first, and the
first failure answers with a JSON error and one log line:

1. the four signature headers are present (401 ``unauthenticated``);
2. ``X-Request-Id`` is present (400 ``invalid_request``);
3. every header is well formed and not repeated (400 ``invalid_request``),
   the key id is known (401 ``unauthenticated``);
4. the timestamp is within the replay window (401 ``stale_request``);
5. a declared Content-Length is within the limit (413 ``request_too_large``)
   and a request that has a body has an allowed Content-Type
   (415 ``unsupported_media_type``);
6. the body is read, never beyond ``max_body_bytes`` (413), and hashed;
7. the HMAC matches, compared in constant time (401 ``invalid_signature``);
8. the nonce is reserved (409 ``replay_detected``; 503 ``service_unavailable``
   when the store cannot answer: fail closed). Last, so requests that fail
   any other check never consume a nonce.

On success the application receives the buffered body through a wrapped
``receive`` and ``scope["state"]["internal_auth"]`` holds a ``VerifiedCaller``
(see ``verified_caller``). Other paths pass through untouched. WebSocket
connections to a protected path are closed before the handshake (HTTP 403).
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final
from urllib.parse import quote

from edgecore.internal_auth.canonical import (
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_REQUEST_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    KEY_ID_PATTERN,
    METHOD_PATTERN,
    MIN_SECRET_BYTES,
    NONCE_PATTERN,
    REQUEST_ID_PATTERN,
    SIGNATURE_PATTERN,
    TIMESTAMP_PATTERN,
    body_sha256_hex,
    canonical_string,
    request_target,
    signature_matches,
)
from edgecore.internal_auth.nonces import NonceStore
from edgecore.internal_auth.rejects import InternalAuthReject

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PROTECTED_PREFIXES",
    "DEFAULT_REPLAY_WINDOW",
    "STATE_KEY",
    "HmacVerifierMiddleware",
    "VerifiedCaller",
    "verified_caller",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loosely typed on purpose: frameworks declare their own (narrower) scope types.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

DEFAULT_REPLAY_WINDOW: Final = timedelta(seconds=30)
DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
DEFAULT_PROTECTED_PREFIXES: Final = ("/api/v1/internal/", "/api/v1/user/")
STATE_KEY: Final = "internal_auth"

_SIGNATURE_HEADERS: Final = (HEADER_SIGNATURE, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_KEY_ID)
_SINGLE_HEADERS: Final = (
    *_SIGNATURE_HEADERS,
    HEADER_REQUEST_ID,
    "Content-Type",
    "Content-Length",
)
_WATCHED: Final = frozenset(h.lower() for h in (*_SINGLE_HEADERS, "Transfer-Encoding"))
_CONTENT_LENGTH_DIGITS: Final = 19

logger = logging.getLogger("edgecore.internal_auth")


@dataclass(frozen=True, slots=True)
class VerifiedCaller:
    """Who signed the request: the key id (caller identity) and its X-Request-Id."""

    key_id: str
    request_id: str


def verified_caller(scope: Mapping[str, Any]) -> VerifiedCaller | None:
    """The verified caller of a request that passed the middleware, else None."""
    state = scope.get("state")
    caller = state.get(STATE_KEY) if isinstance(state, Mapping) else None
    return caller if isinstance(caller, VerifiedCaller) else None


class _Rejected(Exception):
    """``message`` goes to the client; ``detail`` (default: the message) only to the log."""

    def __init__(
        self, reject: InternalAuthReject, message: str | None = None, *, detail: str | None = None
    ) -> None:
        self.reject = reject
        self.message = message or reject.spec.message
        self.detail = detail or self.message
        super().__init__(self.message)


class _Disconnected(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Checked:
    """The outcome of the header checks; ``fields`` are canonical_string's arguments."""

    key_id: str
    request_id: str
    secret: bytes = field(repr=False)
    signature: str = field(repr=False)
    fields: dict[str, str] = field(repr=False)


class HmacVerifierMiddleware:
    """Verify HMAC-signed requests under ``protected_prefixes`` (docs/internal-auth.md).

    ``secret`` is one shared secret (any well-formed key id is accepted and
    becomes the caller identity) or a mapping key id -> secret (only those key
    ids are accepted; also the way to rotate: accept an old and a new id).
    ``clock`` returns Unix seconds.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: bytes | Mapping[str, bytes],
        nonce_store: NonceStore,
        replay_window: timedelta = DEFAULT_REPLAY_WINDOW,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        protected_prefixes: Iterable[str] = DEFAULT_PROTECTED_PREFIXES,
        allowed_content_types: Iterable[str] = ("application/json",),
        clock: Callable[[], float] = time.time,
    ) -> None:
        secrets: dict[str | None, bytes] = {}
        if isinstance(secret, bytes):
            secrets[None] = secret
        else:
            secrets.update(secret)
        if not secrets:
            raise ValueError("at least one secret is required")
        for key_id, value in secrets.items():
            if key_id is not None and KEY_ID_PATTERN.fullmatch(key_id) is None:
                raise ValueError(f"key id must match {KEY_ID_PATTERN.pattern}")
            if len(value) < MIN_SECRET_BYTES:
                raise ValueError(f"every HMAC secret must be at least {MIN_SECRET_BYTES} bytes")
        if replay_window <= timedelta(0):
            raise ValueError("replay_window must be positive")
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        prefixes = tuple(protected_prefixes)
        if any(not p.startswith("/") for p in prefixes):
            raise ValueError("protected prefixes must start with '/'")
        self.app = app
        self._secrets = secrets
        self._nonce_store = nonce_store
        self._window_ms = int(replay_window.total_seconds() * 1000)
        # A nonce must outlive every instant at which its timestamp is still fresh:
        # up to (timestamp + window) - now, which is at most two windows.
        self._nonce_ttl = replay_window * 2
        self._max_body = max_body_bytes
        self._prefixes = tuple(p.lower() for p in prefixes)
        self._content_types = frozenset(t.strip().lower() for t in allowed_content_types)
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"HmacVerifierMiddleware(protected_prefixes={self._prefixes!r}, "
            f"window_ms={self._window_ms}, max_body_bytes={self._max_body})"
        )

    def is_protected(self, path: str) -> bool:
        """Whether ``path`` (decoded) is under a protected prefix.

        Checked on the path as given and on a normalised form (``//`` collapsed,
        dot segments resolved, lower case), so no spelling of a protected path
        that a router might still route slips past.
        """
        candidates = {path.lower(), _normalise(path).lower()}
        return any(
            candidate.startswith(prefix) or candidate == prefix.rstrip("/")
            for prefix in self._prefixes
            for candidate in candidates
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "http" and self.is_protected(str(scope.get("path", ""))):
            await self._verify(scope, receive, send)
        elif kind == "websocket" and self.is_protected(str(scope.get("path", ""))):
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            self._log_reject(scope, InternalAuthReject.UNSIGNED, "websocket", None, None)
        else:
            await self.app(scope, receive, send)

    async def _verify(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _watched_headers(scope.get("headers", ()))
        request_id = _single_matching(headers, HEADER_REQUEST_ID, REQUEST_ID_PATTERN)
        key_id = _single_matching(headers, HEADER_KEY_ID, KEY_ID_PATTERN)
        try:
            checked = self._check_headers(scope, headers)
            body = await self._read_body(receive)
            if body:
                self._check_content_type(checked.fields["content_type"])
            canonical = canonical_string(body_sha256=body_sha256_hex(body), **checked.fields)
            if not signature_matches(checked.secret, canonical, checked.signature):
                raise _Rejected(InternalAuthReject.INVALID_SIGNATURE)
            await self._reserve_nonce(checked.key_id, checked.fields["nonce"])
        except _Rejected as rejected:
            self._log_reject(scope, rejected.reject, rejected.detail, request_id, key_id)
            await _send_error(send, rejected, request_id)
            return
        except _Disconnected:
            logger.info(
                "internal_auth_disconnect request_id=%s key_id=%s",
                request_id or "-",
                key_id or "-",
            )
            return
        logger.debug("internal_auth_ok request_id=%s key_id=%s", checked.request_id, checked.key_id)
        state = dict(scope.get("state") or {})
        state[STATE_KEY] = VerifiedCaller(key_id=checked.key_id, request_id=checked.request_id)
        await self.app({**scope, "state": state}, _replay(body, receive), send)

    def _check_headers(self, scope: Scope, headers: dict[str, list[str]]) -> _Checked:
        missing = [h for h in _SIGNATURE_HEADERS if h.lower() not in headers]
        if missing:
            raise _Rejected(
                InternalAuthReject.UNSIGNED, f"request is not signed: missing {', '.join(missing)}"
            )
        if HEADER_REQUEST_ID.lower() not in headers:
            raise _Rejected(InternalAuthReject.MISSING_REQUEST_ID)
        for name in _SINGLE_HEADERS:
            if len(headers.get(name.lower(), ())) > 1:
                raise _malformed(name, "repeated")
        value = {
            name: headers[name.lower()][0] for name in (*_SIGNATURE_HEADERS, HEADER_REQUEST_ID)
        }
        grammar = (
            (HEADER_REQUEST_ID, REQUEST_ID_PATTERN),
            (HEADER_KEY_ID, KEY_ID_PATTERN),
            (HEADER_TIMESTAMP, TIMESTAMP_PATTERN),
            (HEADER_NONCE, NONCE_PATTERN),
            (HEADER_SIGNATURE, SIGNATURE_PATTERN),
        )
        for name, pattern in grammar:
            if pattern.fullmatch(value[name]) is None:
                raise _malformed(name)
        key_id = value[HEADER_KEY_ID]
        secret = self._secrets.get(None) or self._secrets.get(key_id)
        if secret is None:
            raise _Rejected(InternalAuthReject.UNKNOWN_KEY_ID)
        now_ms = int(self._clock() * 1000)
        if abs(now_ms - int(value[HEADER_TIMESTAMP])) > self._window_ms:
            raise _Rejected(InternalAuthReject.STALE_TIMESTAMP)
        method = str(scope.get("method", ""))
        if METHOD_PATTERN.fullmatch(method) is None:
            raise _Rejected(InternalAuthReject.MALFORMED_HEADER, "request method is malformed")
        try:
            target = request_target(
                scope.get("raw_path") or _fallback_raw_path(scope), _query(scope)
            )
        except ValueError:
            raise _Rejected(
                InternalAuthReject.MALFORMED_HEADER, "request target is malformed"
            ) from None
        fields = {
            "method": method,
            "target": target,
            "content_type": self._check_content_headers(headers),
            "timestamp_ms": value[HEADER_TIMESTAMP],
            "nonce": value[HEADER_NONCE],
            "key_id": key_id,
            "request_id": value[HEADER_REQUEST_ID],
        }
        return _Checked(
            key_id=key_id,
            request_id=value[HEADER_REQUEST_ID],
            secret=secret,
            signature=value[HEADER_SIGNATURE],
            fields=fields,
        )

    def _check_content_headers(self, headers: dict[str, list[str]]) -> str:
        """Check Content-Length against the limit and the type of an announced body."""
        content_type = headers.get("content-type", [""])[0]
        if not content_type.isascii() or not content_type.isprintable():
            raise _malformed("Content-Type")
        length = headers.get("content-length", [None])[0]
        if length is not None:
            if not length.isdigit() or not length.isascii() or len(length) > _CONTENT_LENGTH_DIGITS:
                raise _malformed("Content-Length")
            if int(length) > self._max_body:
                raise self._too_large()
        if (length is not None and int(length) > 0) or "transfer-encoding" in headers:
            self._check_content_type(content_type)
        return content_type

    def _check_content_type(self, content_type: str) -> None:
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type not in self._content_types:
            allowed = ", ".join(sorted(self._content_types))
            raise _Rejected(
                InternalAuthReject.UNSUPPORTED_MEDIA_TYPE,
                f"request Content-Type must be one of: {allowed}",
            )

    def _too_large(self) -> _Rejected:
        return _Rejected(
            InternalAuthReject.BODY_TOO_LARGE,
            f"request body is larger than {self._max_body} bytes",
        )

    async def _read_body(self, receive: Receive) -> bytes:
        """Read the whole body, stopping as soon as it exceeds the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            kind = message.get("type")
            if kind == "http.disconnect":
                raise _Disconnected
            if kind != "http.request":
                continue
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self._max_body:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _reserve_nonce(self, key_id: str, nonce: str) -> None:
        try:
            fresh = await self._nonce_store.reserve(key_id, nonce, self._nonce_ttl)
        except Exception as exc:  # fail closed whatever the store raised
            cause = f": {type(exc.__cause__).__name__}" if exc.__cause__ else ""
            raise _Rejected(
                InternalAuthReject.NONCE_STORE_UNAVAILABLE,
                detail=f"nonce store failed: {type(exc).__name__}{cause}",
            ) from None
        if not fresh:
            raise _Rejected(InternalAuthReject.REPLAYED_NONCE)

    @staticmethod
    def _log_reject(
        scope: Scope,
        reject: InternalAuthReject,
        detail: str,
        request_id: str | None,
        key_id: str | None,
    ) -> None:
        spec = reject.spec
        path = str(scope.get("path", ""))[:256]
        logger.warning(
            "internal_auth_reject reason=%s status=%d code=%s request_id=%s key_id=%s "
            "method=%s path=%r detail=%r",
            spec.reason,
            spec.status,
            spec.code,
            request_id or "-",
            key_id or "-",
            str(scope.get("method", "-"))[:16],
            path,
            detail,
            extra={
                "internal_auth_reason": spec.reason,
                "request_id": request_id,
                "key_id": key_id,
            },
        )


def _malformed(header: str, how: str = "malformed") -> _Rejected:
    return _Rejected(InternalAuthReject.MALFORMED_HEADER, f"{header} header is {how}")


def _watched_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in raw:
        key = bytes(name).decode("latin-1").lower()
        if key in _WATCHED:
            headers.setdefault(key, []).append(bytes(value).decode("latin-1"))
    return headers


def _single_matching(
    headers: dict[str, list[str]], name: str, pattern: re.Pattern[str]
) -> str | None:
    """The header's value when it is present once and well formed (safe to echo and log)."""
    values = headers.get(name.lower(), [])
    if len(values) == 1 and pattern.fullmatch(values[0]):
        return values[0]
    return None


def _query(scope: Scope) -> bytes:
    query = scope.get("query_string", b"")
    return bytes(query)


def _fallback_raw_path(scope: Scope) -> bytes:
    # Servers that omit raw_path: re-encode the decoded path (percent-encoding
    # spelled differently by the caller will then not verify).
    return quote(str(scope.get("path", "")), safe="/:@!$&'()*+,;=-._~").encode("ascii")


def _normalise(path: str) -> str:
    collapsed = "/" + "/".join(segment for segment in path.split("/") if segment)
    normal = posixpath.normpath(collapsed)
    return normal + "/" if path.endswith("/") and normal != "/" else normal


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_error(send: Send, rejected: _Rejected, request_id: str | None) -> None:
    spec = rejected.reject.spec
    body = json.dumps(
        {"error": {"code": spec.code, "message": rejected.message}}, separators=(",", ":")
    ).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"cache-control", b"no-store"),
    ]
    if request_id is not None:
        headers.append((HEADER_REQUEST_ID.lower().encode("ascii"), request_id.encode("ascii")))
    await send({"type": "http.response.start", "status": spec.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
