"""The device-session record: what the gateway knows about an authenticated device.

The Auth / Session Service owns the record. The gateway sees it in two shapes
that share one JSON encoding: the backend's ``GET /api/v1/internal/sessions/{id}``
answer and the snapshots on the session-events stream. Decoding is strict:
anything unexpected is a ``SessionRecordError``, never a half-built record.

The public key is kept exactly as received (standard base64 text). A
malformed key is *not* a decode error: the pipeline detects it when it
verifies a signature and fails closed with "session cache is unavailable",
as the specification requires.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeGuard

__all__ = ["SessionRecord", "SessionRecordError", "SessionStatus"]


class SessionStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class SessionRecordError(ValueError):
    """A session record that does not follow the contract (the message names the field)."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    device_session_id: str
    user_id: str
    client_public_key: str
    status: SessionStatus
    created_at_ms: int = 0
    revoked_at_ms: int | None = None
    revoke_reason: str | None = None
    client_metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def revoked(self) -> bool:
        return self.status is SessionStatus.REVOKED

    def __repr__(self) -> str:
        # Public keys stay out of logs (docs/observability).
        return (
            f"SessionRecord(device_session_id={self.device_session_id!r}, "
            f"user_id={self.user_id!r}, status={self.status.value})"
        )

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "device_session_id": self.device_session_id,
            "user_id": self.user_id,
            "client_public_key": self.client_public_key,
            "status": self.status.value,
            "created_at_ms": self.created_at_ms,
            "client_metadata": dict(self.client_metadata),
        }
        if self.revoked_at_ms is not None:
            out["revoked_at_ms"] = self.revoked_at_ms
        if self.revoke_reason is not None:
            out["revoke_reason"] = self.revoke_reason
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_json_dict(), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> SessionRecord:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):  # nesting deeper than ~1000
            raise SessionRecordError("session record is not valid JSON") from None
        return cls.from_json_dict(data)

    @classmethod
    def from_json_dict(cls, data: object) -> SessionRecord:
        if not isinstance(data, dict):
            raise SessionRecordError("session record must be a JSON object")
        unknown = set(data) - _FIELDS
        if unknown:
            raise SessionRecordError(f"session record has unknown field {sorted(unknown)[0]!r}")
        status_text = _str(data, "status")
        try:
            status = SessionStatus(status_text)
        except ValueError:
            raise SessionRecordError(
                "session record field 'status' must be 'active' or 'revoked'"
            ) from None
        metadata = data.get("client_metadata", {})
        if not isinstance(metadata, dict) or not all(
            _is_text(k) and _is_text(v) for k, v in metadata.items()
        ):
            raise SessionRecordError(
                "session record field 'client_metadata' must map strings to strings"
            )
        return cls(
            device_session_id=_str(data, "device_session_id"),
            user_id=_str(data, "user_id"),
            client_public_key=_str(data, "client_public_key", allow_empty=True),
            status=status,
            created_at_ms=_int(data, "created_at_ms", default=0),
            revoked_at_ms=_optional_int(data, "revoked_at_ms"),
            revoke_reason=_optional_str(data, "revoke_reason"),
            client_metadata=MappingProxyType(dict(metadata)),
        )


_FIELDS = frozenset(
    {
        "device_session_id",
        "user_id",
        "client_public_key",
        "status",
        "created_at_ms",
        "revoked_at_ms",
        "revoke_reason",
        "client_metadata",
    }
)


def _is_text(value: object) -> TypeGuard[str]:
    """A str that is valid Unicode text: JSON can spell lone surrogates (``"\\ud800"``),
    which no UTF-8 consumer (Redis keys, headers, logs) can encode."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _str(data: Mapping[str, object], name: str, *, allow_empty: bool = False) -> str:
    value = data.get(name)
    if not _is_text(value) or (not allow_empty and not value):
        raise SessionRecordError(f"session record field {name!r} must be a non-empty string")
    return value


def _optional_str(data: Mapping[str, object], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not _is_text(value):
        raise SessionRecordError(f"session record field {name!r} must be a string")
    return value


def _int(data: Mapping[str, object], name: str, *, default: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SessionRecordError(f"session record field {name!r} must be a non-negative integer")
    return value


def _optional_int(data: Mapping[str, object], name: str) -> int | None:
    if data.get(name) is None:
        return None
    return _int(data, name, default=0)
