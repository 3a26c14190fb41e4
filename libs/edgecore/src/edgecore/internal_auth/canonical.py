"""The v1 canonical string of internal-route HMAC signatures, and its header names.

The signature is ``HMAC-SHA256(secret, canonical_string(...).encode("ascii"))``,
sent as ``X-Galaxy-Signature: v1=<64 lowercase hex digits>``. The canonical
string is nine ASCII lines joined by a single LF (``\\n``), with no trailing
newline (docs/internal-auth.md)::

    galaxy-internal-v1
    <METHOD>                 upper-case HTTP method, e.g. POST
    <target>                 raw path, plus "?" and the raw query when the query is not empty
    <content-type>           the Content-Type header exactly as sent; empty when absent
    <body-sha256>            lower-case hex SHA-256 of the exact body bytes (of b"" when none)
    <timestamp-ms>           X-Galaxy-Timestamp: Unix time in milliseconds, decimal
    <nonce>                  X-Galaxy-Nonce
    <key-id>                 X-Galaxy-Key-Id: the caller's identity
    <request-id>             X-Request-Id

The target is the request target as sent on the wire: percent-encoding is kept
as is, nothing is decoded or normalised. ``/p?`` (an empty query) is signed as
``/p`` because ASGI servers cannot tell the two apart. Every field is checked
against a strict grammar (the ``*_PATTERN`` constants), so no field can contain
a newline and the string cannot be ambiguous.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

__all__ = [
    "CANONICAL_DOMAIN",
    "HEADER_KEY_ID",
    "HEADER_NONCE",
    "HEADER_REQUEST_ID",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "KEY_ID_PATTERN",
    "METHOD_PATTERN",
    "MIN_SECRET_BYTES",
    "NONCE_PATTERN",
    "REQUEST_ID_PATTERN",
    "SIGNATURE_PATTERN",
    "SIGNATURE_VERSION",
    "TIMESTAMP_PATTERN",
    "body_sha256_hex",
    "canonical_string",
    "compute_signature",
    "request_target",
    "signature_matches",
]

CANONICAL_DOMAIN: Final = "galaxy-internal-v1"
SIGNATURE_VERSION: Final = "v1"
MIN_SECRET_BYTES: Final = 32

HEADER_REQUEST_ID: Final = "X-Request-Id"
HEADER_TIMESTAMP: Final = "X-Galaxy-Timestamp"
HEADER_NONCE: Final = "X-Galaxy-Nonce"
HEADER_SIGNATURE: Final = "X-Galaxy-Signature"
HEADER_KEY_ID: Final = "X-Galaxy-Key-Id"

# Unix milliseconds: digits only, no sign, no leading zero (one spelling per instant).
TIMESTAMP_PATTERN: Final = re.compile(r"0|[1-9][0-9]{0,15}")
# At least 128 random bits in the URL-safe base64 alphabet, without padding.
NONCE_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{22,64}")
KEY_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
REQUEST_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
SIGNATURE_PATTERN: Final = re.compile(r"v1=([0-9a-f]{64})")
METHOD_PATTERN: Final = re.compile(r"[A-Z]{1,32}")
# Visible ASCII and spaces: a raw request target or a Content-Type value.
_VISIBLE_ASCII: Final = re.compile(r"[\x20-\x7e]*")
_TARGET_PATTERN: Final = re.compile(r"[\x21-\x7e]+")
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")


def request_target(raw_path: bytes | str, query: bytes | str = b"") -> str:
    """The target line: ``raw_path`` plus ``?query`` when the query is not empty.

    ``raw_path`` must not contain ``?`` (pass the query separately). Raises
    ``ValueError`` when either part is not visible ASCII.
    """
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path
    qs = query.decode("latin-1") if isinstance(query, bytes) else query
    if "?" in path or _TARGET_PATTERN.fullmatch(path) is None or not path.startswith("/"):
        raise ValueError("request path must be visible ASCII starting with '/' and without '?'")
    if qs and _TARGET_PATTERN.fullmatch(qs) is None:
        raise ValueError("request query must be visible ASCII")
    return f"{path}?{qs}" if qs else path


def body_sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical_string(
    *,
    method: str,
    target: str,
    content_type: str,
    body_sha256: str,
    timestamp_ms: str,
    nonce: str,
    key_id: str,
    request_id: str,
) -> str:
    """Build the v1 canonical string; ``ValueError`` names the first field out of grammar."""
    checks = (
        ("method", method, METHOD_PATTERN),
        ("target", target, _TARGET_PATTERN),
        ("content_type", content_type, _VISIBLE_ASCII),
        ("body_sha256", body_sha256, _SHA256_HEX),
        ("timestamp_ms", timestamp_ms, TIMESTAMP_PATTERN),
        ("nonce", nonce, NONCE_PATTERN),
        ("key_id", key_id, KEY_ID_PATTERN),
        ("request_id", request_id, REQUEST_ID_PATTERN),
    )
    for name, value, pattern in checks:
        if pattern.fullmatch(value) is None:
            raise ValueError(f"{name} does not match the canonical grammar")
    return "\n".join(
        (
            CANONICAL_DOMAIN,
            method,
            target,
            content_type,
            body_sha256,
            timestamp_ms,
            nonce,
            key_id,
            request_id,
        )
    )


def compute_signature(secret: bytes, canonical: str) -> str:
    """The ``X-Galaxy-Signature`` header value: ``v1=`` and the lower-case hex HMAC-SHA256."""
    digest = hmac.new(secret, canonical.encode("ascii"), hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signature_matches(secret: bytes, canonical: str, header_value: str) -> bool:
    """Constant-time comparison of a received header value with the expected signature."""
    expected = compute_signature(secret, canonical).encode("ascii")
    return hmac.compare_digest(expected, header_value.encode("utf-8"))
