"""Parsing and validation of the public auth request bodies (pure functions).

Every failure is a ``ValidationProblem`` whose message names the field at fault;
the HTTP layer turns it into ``400 invalid_request`` with that message. Messages
never echo the submitted value (it may be an e-mail address, a code or a key).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import json
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "MAX_CHALLENGE_ID_LENGTH",
    "MAX_CODE_LENGTH",
    "MAX_EMAIL_LENGTH",
    "ConfirmEmailCodeCommand",
    "SendEmailCodeCommand",
    "ValidationProblem",
    "email_identity",
    "is_iana_time_zone",
    "normalize_challenge_id",
    "normalize_email",
    "parse_confirm_email_code",
    "parse_json_object",
    "parse_send_email_code",
    "valid_client_public_key",
]

MAX_EMAIL_LENGTH: Final = 254
MAX_LOCAL_PART_LENGTH: Final = 64
MAX_CHALLENGE_ID_LENGTH: Final = 256
MAX_CODE_LENGTH: Final = 64
MAX_TIME_ZONE_LENGTH: Final = 64
PUBLIC_KEY_BYTES: Final = 32

# RFC 5322 dot-atom local part (ASCII only; quoted local parts are not accepted).
_ATOM: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART: Final = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
# A DNS name of at least two labels; the top-level label is not all digits.
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TOKEN: Final = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces
_STANDARD_BASE64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class ValidationProblem(ValueError):
    """A request body problem; ``field`` is the JSON field (or ``body``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class SendEmailCodeCommand:
    email: str
    """Trimmed, domain in lower case: what is forwarded upstream."""

    @property
    def identity(self) -> str:
        return email_identity(self.email)


@dataclass(frozen=True, slots=True)
class ConfirmEmailCodeCommand:
    challenge_id: str
    code: str
    client_public_key: str
    time_zone: str

    @property
    def identity(self) -> str:
        return self.challenge_id

    def __repr__(self) -> str:  # never print the secrets of a login
        return "ConfirmEmailCodeCommand(<redacted>)"


def _reject_constant(value: str) -> Any:
    raise ValueError(value)


def parse_json_object(body: bytes, fields: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object with only ``fields`` (duplicates and NaN rejected)."""
    if not body.strip():
        raise ValidationProblem("body", "request body must be a JSON object")
    # Strict UTF-8 without a byte order mark (RFC 8259 8.1). json.loads on bytes
    # would guess UTF-16/32 from the first bytes and skip a UTF-8 BOM, so the body
    # is decoded here and json.loads sees text, where a BOM is an error.
    if body.startswith(codecs.BOM_UTF8):
        raise ValidationProblem("body", "request body must be valid JSON")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationProblem("body", "request body must be valid JSON") from None
    try:
        data = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
        )
    except _DuplicateKey as exc:
        raise ValidationProblem(exc.field, f"{exc.field} must appear only once") from None
    except (ValueError, RecursionError):
        raise ValidationProblem("body", "request body must be valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationProblem("body", "request body must be a JSON object")
    for name in data:
        if name not in fields:
            if _TOKEN.fullmatch(name) and len(name) <= 64:
                raise ValidationProblem(name, f"{name} is not a known field")
            raise ValidationProblem("body", "request body has an unknown field")
    return data


class _DuplicateKey(ValueError):
    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(field)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key if _TOKEN.fullmatch(key) and len(key) <= 64 else "body")
        out[key] = value
    return out


def _required_string(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if value is None:
        raise ValidationProblem(field, f"{field} is required")
    if not isinstance(value, str):
        raise ValidationProblem(field, f"{field} must be a string")
    return value


def normalize_email(raw: str) -> str:
    """Trim, lower-case the domain, check the syntax; raise ``ValidationProblem``."""
    value = raw.strip()
    if not value:
        raise ValidationProblem("email", "email must not be empty")
    local, sep, domain = value.rpartition("@")
    # ASCII before lower-casing: KELVIN SIGN (U+212A) lower-cases to an ASCII "k".
    domain = domain.lower().rstrip(".") if sep and domain.isascii() else ""
    if (
        not sep
        or len(value) > MAX_EMAIL_LENGTH
        or not local
        or len(local) > MAX_LOCAL_PART_LENGTH
        or not _LOCAL_PART.fullmatch(local)
        or not _valid_domain(domain)
    ):
        raise ValidationProblem("email", "email must be a valid e-mail address")
    return f"{local}@{domain}"


def _valid_domain(domain: str) -> bool:
    if not domain or len(domain) > 253:
        return False
    labels = domain.split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        return False
    return all(_LABEL.fullmatch(label) for label in labels)


def email_identity(normalized_email: str) -> str:
    """The identity-bucket key of an address: the normalized address, case-folded whole,
    so ``Alice@x.org`` and ``alice@x.org`` share one bucket."""
    return normalized_email.lower()


def normalize_challenge_id(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValidationProblem("challenge_id", "challenge_id must not be empty")
    if len(value) > MAX_CHALLENGE_ID_LENGTH or not _TOKEN.fullmatch(value):
        raise ValidationProblem(
            "challenge_id",
            f"challenge_id must be at most {MAX_CHALLENGE_ID_LENGTH} printable characters",
        )
    return value


def valid_client_public_key(value: str) -> bool:
    """Standard base64 (``+/``, padded) of exactly 32 raw bytes."""
    if len(value) != 44 or not _STANDARD_BASE64.fullmatch(value):
        return False
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == PUBLIC_KEY_BYTES and base64.b64encode(raw).decode() == value


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_iana_time_zone(name: str) -> bool:
    """A name of the IANA tz database (``Europe/Berlin``, ``UTC``), loadable by zoneinfo."""
    if not name or len(name) > MAX_TIME_ZONE_LENGTH or name not in _time_zones():
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def parse_send_email_code(body: bytes) -> SendEmailCodeCommand:
    data = parse_json_object(body, ("email",))
    return SendEmailCodeCommand(email=normalize_email(_required_string(data, "email")))


def parse_confirm_email_code(body: bytes) -> ConfirmEmailCodeCommand:
    data = parse_json_object(body, ("challenge_id", "code", "client_public_key", "time_zone"))
    challenge_id = normalize_challenge_id(_required_string(data, "challenge_id"))
    code = _required_string(data, "code").strip()
    if not code:
        raise ValidationProblem("code", "code must not be empty")
    if len(code) > MAX_CODE_LENGTH or not _TOKEN.fullmatch(code):
        raise ValidationProblem(
            "code", f"code must be at most {MAX_CODE_LENGTH} printable characters"
        )
    key = _required_string(data, "client_public_key")
    if not valid_client_public_key(key):
        raise ValidationProblem(
            "client_public_key",
            "client_public_key must be the standard base64 encoding of a 32-byte Ed25519 key",
        )
    time_zone = _required_string(data, "time_zone")
    if not is_iana_time_zone(time_zone):
        raise ValidationProblem("time_zone", "time_zone must be an IANA time zone name")
    return ConfirmEmailCodeCommand(
        challenge_id=challenge_id, code=code, client_public_key=key, time_zone=time_zone
    )
