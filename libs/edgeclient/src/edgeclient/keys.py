"""Device keys (the client's Ed25519 signer) and the gateway's response-signer public key."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from edgecore.signing import ED25519_PUBLIC_KEY_SIZE, Signer

__all__ = [
    "DeviceKey",
    "parse_server_public_key",
]

# RFC 8410: DER prefix of an Ed25519 SubjectPublicKeyInfo (the "PUBLIC KEY" PEM).
_ED25519_SPKI_PREFIX: Final = bytes.fromhex("302a300506032b6570032100")
_HEX_KEY: Final = re.compile(r"[0-9a-fA-F]{64}")
_PEM_BLOCK: Final = re.compile(
    r"-----BEGIN PUBLIC KEY-----(?P<body>[A-Za-z0-9+/=\s]+)-----END PUBLIC KEY-----"
)


class DeviceKey:
    """The device's Ed25519 key: it signs every authenticated request.

    The 32-byte seed is a secret; ``repr`` never shows it.
    """

    __slots__ = ("_signer",)

    def __init__(self, seed: bytes) -> None:
        self._signer = Signer(seed)

    @classmethod
    def generate(cls) -> DeviceKey:
        return cls(Signer.generate().seed())

    @classmethod
    def from_seed_b64(cls, seed_b64: str) -> DeviceKey:
        try:
            seed = base64.b64decode(seed_b64, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("device seed is not valid base64") from None
        if len(seed) != 32:
            raise ValueError("device seed is not 32 bytes")
        return cls(seed)

    @property
    def public_key(self) -> bytes:
        """Raw 32-byte Ed25519 public key."""
        return self._signer.public_key

    @property
    def public_key_b64(self) -> str:
        """Standard base64 of the raw public key (``client_public_key`` of confirm-email-code)."""
        return base64.b64encode(self._signer.public_key).decode("ascii")

    def seed_b64(self) -> str:
        """Standard base64 of the 32-byte seed; store it only in a 0600 profile."""
        return base64.b64encode(self._signer.seed()).decode("ascii")

    def sign(self, message: bytes) -> bytes:
        return self._signer.sign(message)

    def __repr__(self) -> str:
        return f"DeviceKey(public_key={self.public_key_b64})"


def parse_server_public_key(text: str) -> bytes:
    """Parse the gateway's response-signer public key.

    Accepted forms: standard or URL-safe base64 of the raw 32 bytes, 64 hex
    digits, or a ``-----BEGIN PUBLIC KEY-----`` PEM (Ed25519
    SubjectPublicKeyInfo, as ``openssl pkey -pubout`` writes it).
    """
    value = text.strip()
    if not value:
        raise ValueError("server public key is empty")
    pem = _PEM_BLOCK.search(value)
    if pem is not None:
        try:
            der = base64.b64decode("".join(pem.group("body").split()), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("server public key PEM body is not base64") from None
        if len(der) != len(_ED25519_SPKI_PREFIX) + 32 or not der.startswith(_ED25519_SPKI_PREFIX):
            raise ValueError("server public key PEM is not an Ed25519 public key")
        return der[len(_ED25519_SPKI_PREFIX) :]
    if _HEX_KEY.fullmatch(value):
        return bytes.fromhex(value)
    try:
        raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "server public key must be base64 or hex of 32 raw bytes, or a PUBLIC KEY PEM"
        ) from None
    if len(raw) != ED25519_PUBLIC_KEY_SIZE:
        raise ValueError(f"server public key is {len(raw)} bytes, expected 32")
    return raw
