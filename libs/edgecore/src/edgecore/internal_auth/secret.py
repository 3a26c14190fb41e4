"""Loading the shared HMAC secret of internal-route protection from a file.

The secret is the file's bytes, after removing exactly one trailing LF if
there is one (what ``echo`` or an editor appends); nothing else is stripped,
so every language loads the same key. Start-up fails with a distinct error
when the file is absent, unreadable, empty, or shorter than 32 bytes. No
message ever contains the secret or any part of it.
"""

from __future__ import annotations

from pathlib import Path

from edgecore.internal_auth.canonical import MIN_SECRET_BYTES

__all__ = [
    "HmacSecretError",
    "SecretEmptyError",
    "SecretFileMissingError",
    "SecretFileUnreadableError",
    "SecretTooShortError",
    "load_hmac_secret",
]


class HmacSecretError(Exception):
    """The HMAC secret cannot be used; the message says why and names the file."""


class SecretFileMissingError(HmacSecretError):
    pass


class SecretFileUnreadableError(HmacSecretError):
    pass


class SecretEmptyError(HmacSecretError):
    pass


class SecretTooShortError(HmacSecretError):
    pass


def load_hmac_secret(path: str | Path) -> bytes:
    """Read the secret file; the key is its bytes minus one trailing newline."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise SecretFileMissingError(f"HMAC secret file {file} does not exist") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SecretFileUnreadableError(
            f"HMAC secret file {file} is not readable: {reason}"
        ) from None
    secret = raw.removesuffix(b"\n")
    if not secret:
        raise SecretEmptyError(f"HMAC secret file {file} is empty")
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretTooShortError(
            f"HMAC secret file {file} is too short: {len(secret)} bytes, "
            f"at least {MIN_SECRET_BYTES} are required"
        )
    return secret
