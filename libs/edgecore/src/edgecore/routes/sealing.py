"""Sealing the route table: its routes carry HMAC secrets, and Redis is not a vault.

Operator and edge-grpc share one 32-byte route-table key
(``GATEWAY_ROUTES_TABLE_KEY_PATH``: a file holding it base64-encoded, e.g.
``openssl rand -base64 32``). From it two sub-keys are derived (BLAKE2b with
distinct personalisation), one per job:

* the seal: NaCl SecretBox (XSalsa20-Poly1305) over the table's JSON. Anyone
  who can read Redis sees no route secret; anyone who can write Redis cannot
  forge or alter a table, because edge-grpc refuses what does not open.
* the digest: a keyed hash of the routes, published beside the seal so the
  operator can tell "nothing changed" without opening the current table and
  without exposing an unkeyed hash of secret material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import nacl.exceptions
import nacl.secret
import nacl.utils

from edgecore.routes.table import RouteTable, RouteTableFormatError

__all__ = [
    "TABLE_KEY_BYTES",
    "RouteTableKey",
    "RouteTableKeyError",
    "RouteTableSealError",
    "load_route_table_key",
    "new_route_table_key",
]

TABLE_KEY_BYTES: Final = 32
_SEAL_PERSON: Final = b"galaxy-rt-seal"
_DIGEST_PERSON: Final = b"galaxy-rt-digest"


class RouteTableKeyError(ValueError):
    """The route-table key file is missing, unreadable or not 32 base64-encoded bytes."""


class RouteTableSealError(ValueError):
    """A sealed table does not open (wrong key, tampered, or not a table)."""


@dataclass(frozen=True, slots=True)
class RouteTableKey:
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != TABLE_KEY_BYTES:
            raise RouteTableKeyError(f"the route-table key must be {TABLE_KEY_BYTES} bytes")

    def _subkey(self, person: bytes) -> bytes:
        return hashlib.blake2b(self.key, digest_size=32, person=person).digest()

    def digest(self, table: RouteTable) -> str:
        """A keyed digest of the routes (not the version): equal digests, equal routes."""
        body = _canonical_json(table.routes_document())
        return hashlib.blake2b(body, digest_size=32, key=self._subkey(_DIGEST_PERSON)).hexdigest()

    def seal(self, table: RouteTable) -> str:
        box = nacl.secret.SecretBox(self._subkey(_SEAL_PERSON))
        sealed = box.encrypt(_canonical_json(table.to_document()))
        return base64.b64encode(bytes(sealed)).decode("ascii")

    def open(self, sealed: str | bytes) -> RouteTable:
        box = nacl.secret.SecretBox(self._subkey(_SEAL_PERSON))
        try:
            plain = box.decrypt(base64.b64decode(sealed, validate=True))
        except (binascii.Error, ValueError, nacl.exceptions.CryptoError):
            raise RouteTableSealError(
                "route table does not open with this key (wrong key or tampered)"
            ) from None
        try:
            return RouteTable.from_document(json.loads(plain))
        except (ValueError, RouteTableFormatError) as exc:
            raise RouteTableSealError(f"sealed route table is malformed: {exc}") from None


def load_route_table_key(path: str | Path) -> RouteTableKey:
    """Read the key file: base64 of exactly 32 bytes, surrounding whitespace ignored."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise RouteTableKeyError(f"route-table key file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not ASCII text"
        raise RouteTableKeyError(f"route-table key file {path} is unreadable: {reason}") from None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RouteTableKeyError(f"route-table key file {path} is not base64") from None
    if len(key) != TABLE_KEY_BYTES:
        raise RouteTableKeyError(
            f"route-table key file {path} must hold {TABLE_KEY_BYTES} base64-encoded bytes "
            "(openssl rand -base64 32)"
        )
    return RouteTableKey(key)


def new_route_table_key() -> RouteTableKey:
    return RouteTableKey(nacl.utils.random(TABLE_KEY_BYTES))


def _canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
