"""Internal-route protection: HMAC-SHA256 signed service-to-service HTTP calls.

Callers sign with ``HmacRequestSigner`` (an ``httpx.Auth``); services verify
with ``HmacVerifierMiddleware`` (pure ASGI). docs/internal-auth.md describes
the scheme for implementers in any language.
"""

from edgecore.internal_auth.canonical import (
    CANONICAL_DOMAIN,
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_REQUEST_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MIN_SECRET_BYTES,
    body_sha256_hex,
    canonical_string,
    compute_signature,
    request_target,
    signature_matches,
)
from edgecore.internal_auth.client import (
    HmacRequestSigner,
    UnsupportedRequestBodyError,
    new_nonce,
    new_request_id,
)
from edgecore.internal_auth.middleware import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PROTECTED_PREFIXES,
    DEFAULT_REPLAY_WINDOW,
    STATE_KEY,
    HmacVerifierMiddleware,
    VerifiedCaller,
    verified_caller,
)
from edgecore.internal_auth.nonces import (
    DEFAULT_NONCE_KEY_PREFIX,
    MemoryNonceStore,
    NonceStore,
    NonceStoreUnavailableError,
    RedisNonceStore,
)
from edgecore.internal_auth.rejects import InternalAuthReject, RejectSpec
from edgecore.internal_auth.secret import (
    HmacSecretError,
    SecretEmptyError,
    SecretFileMissingError,
    SecretFileUnreadableError,
    SecretTooShortError,
    load_hmac_secret,
)

__all__ = [
    "CANONICAL_DOMAIN",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_NONCE_KEY_PREFIX",
    "DEFAULT_PROTECTED_PREFIXES",
    "DEFAULT_REPLAY_WINDOW",
    "HEADER_KEY_ID",
    "HEADER_NONCE",
    "HEADER_REQUEST_ID",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "MIN_SECRET_BYTES",
    "STATE_KEY",
    "HmacRequestSigner",
    "HmacSecretError",
    "HmacVerifierMiddleware",
    "InternalAuthReject",
    "MemoryNonceStore",
    "NonceStore",
    "NonceStoreUnavailableError",
    "RedisNonceStore",
    "RejectSpec",
    "SecretEmptyError",
    "SecretFileMissingError",
    "SecretFileUnreadableError",
    "SecretTooShortError",
    "UnsupportedRequestBodyError",
    "VerifiedCaller",
    "body_sha256_hex",
    "canonical_string",
    "compute_signature",
    "load_hmac_secret",
    "new_nonce",
    "new_request_id",
    "request_target",
    "signature_matches",
    "verified_caller",
]
