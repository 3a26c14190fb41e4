"""Loading the response-signer key: a PKCS#8 PEM-encoded Ed25519 private key.

Start-up must fail, with a distinct and clear error, when the file is absent,
unreadable, not strict PEM, not PKCS#8, or not Ed25519. The DER structure is
checked here by a small strict reader instead of a general crypto library,
because the general loaders accept several legacy encodings under one call
and cannot tell those failure modes apart.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Final

from edgecore.signing import Signer

__all__ = [
    "KeyFileMissingError",
    "KeyFileUnreadableError",
    "NotEd25519Error",
    "NotPKCS8Error",
    "NotStrictPEMError",
    "SignerKeyError",
    "encode_ed25519_pkcs8_pem",
    "load_response_signer",
    "parse_ed25519_pkcs8_pem",
]

_ED25519_OID: Final = "1.3.101.112"
_KNOWN_ALGORITHMS: Final = {
    "1.2.840.113549.1.1.1": "RSA",
    "1.2.840.113549.1.1.10": "RSA-PSS",
    "1.2.840.10045.2.1": "EC",
    "1.2.840.10040.4.1": "DSA",
    "1.3.101.110": "X25519",
    "1.3.101.111": "X448",
    "1.3.101.113": "Ed448",
}
# RFC 8410 section 7: the fixed DER prefix of a version-0 Ed25519 PrivateKeyInfo.
_ED25519_PKCS8_PREFIX: Final = bytes.fromhex("302e020100300506032b657004220420")
_PEM_LINE: Final = re.compile(
    r"-----(BEGIN|END) ([\x21-\x2c\x2e-\x7e]+(?: [\x21-\x2c\x2e-\x7e]+)*)-----"
)
_BASE64_LINE: Final = re.compile(r"[A-Za-z0-9+/]{1,64}={0,2}")
_MAX_KEY_FILE_BYTES: Final = 16 * 1024


class SignerKeyError(Exception):
    """The response-signer key cannot be used; the message says why and names the file."""


class KeyFileMissingError(SignerKeyError):
    pass


class KeyFileUnreadableError(SignerKeyError):
    pass


class NotStrictPEMError(SignerKeyError):
    pass


class NotPKCS8Error(SignerKeyError):
    pass


class NotEd25519Error(SignerKeyError):
    pass


def load_response_signer(path: str | Path) -> Signer:
    """Read and validate the key file, returning the Ed25519 signer."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise KeyFileMissingError(f"response signer key file {file} does not exist") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise KeyFileUnreadableError(
            f"response signer key file {file} is not readable: {reason}"
        ) from None
    return Signer(parse_ed25519_pkcs8_pem(raw, source=str(file)))


def parse_ed25519_pkcs8_pem(data: bytes, *, source: str = "<memory>") -> bytes:
    """Return the 32-byte Ed25519 seed held by a strict PKCS#8 PEM document."""
    label, der = _decode_strict_pem(data, source)
    if label != "PRIVATE KEY":
        hint = (
            " (encrypted keys are not supported)"
            if label == "ENCRYPTED PRIVATE KEY"
            else " (expected the PKCS#8 label PRIVATE KEY)"
        )
        raise NotPKCS8Error(
            f"response signer key file {source} is not PKCS#8: PEM label is {label!r}{hint}"
        )
    try:
        algorithm, private_key = _parse_private_key_info(der)
    except _DERError as exc:
        raise NotPKCS8Error(f"response signer key file {source} is not PKCS#8: {exc}") from None
    if algorithm != _ED25519_OID:
        name = _KNOWN_ALGORITHMS.get(algorithm, f"OID {algorithm}")
        raise NotEd25519Error(
            f"response signer key file {source} is not Ed25519: its algorithm is {name}"
        )
    try:
        seed = _parse_curve_private_key(private_key)
    except _DERError as exc:
        raise NotEd25519Error(f"response signer key file {source} is not Ed25519: {exc}") from None
    return seed


def encode_ed25519_pkcs8_pem(seed: bytes) -> bytes:
    """Encode a 32-byte Ed25519 seed as the PKCS#8 PEM that ``openssl genpkey`` writes."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is exactly 32 bytes")
    body = base64.b64encode(_ED25519_PKCS8_PREFIX + seed).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----\n"
    ).encode("ascii")


def _decode_strict_pem(data: bytes, source: str) -> tuple[str, bytes]:
    def fail(detail: str) -> NotStrictPEMError:
        return NotStrictPEMError(f"response signer key file {source} is not strict PEM: {detail}")

    if len(data) > _MAX_KEY_FILE_BYTES:
        raise fail("file is larger than any key")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise fail("file is not ASCII text") from None
    lines = text.replace("\r\n", "\n").strip("\n").split("\n")
    if len(lines) < 3:
        raise fail("expected one BEGIN line, base64 lines and one END line")
    begin, *body, end = lines
    begin_match = _PEM_LINE.fullmatch(begin)
    end_match = _PEM_LINE.fullmatch(end)
    if begin_match is None or begin_match.group(1) != "BEGIN":
        raise fail("the file must start with a -----BEGIN ...----- line and nothing before it")
    if end_match is None or end_match.group(1) != "END":
        raise fail("the file must end with an -----END ...----- line and nothing after it")
    label = begin_match.group(2)
    if end_match.group(2) != label:
        raise fail("BEGIN and END labels differ")
    for index, line in enumerate(body):
        if ":" in line:
            raise fail("PEM headers (RFC 1421 encryption) are not allowed")
        if _BASE64_LINE.fullmatch(line) is None:
            raise fail(f"body line {index + 1} is not base64 of at most 64 characters")
        if "=" in line and index != len(body) - 1:
            raise fail("padding may only appear on the last body line")
    try:
        der = base64.b64decode("".join(body), validate=True)
    except binascii.Error:
        raise fail("body is not valid base64") from None
    return label, der


class _DERError(Exception):
    pass


def _read_tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """Read one DER TLV at ``offset``; return (tag, value, next offset)."""
    if offset + 2 > len(data):
        raise _DERError("truncated DER")
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 2 or offset + count > len(data):
            raise _DERError("unsupported or invalid DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        if length < 0x80 or (count == 2 and length < 0x100):
            raise _DERError("non-minimal DER length")
        offset += count
    end = offset + length
    if end > len(data):
        raise _DERError("truncated DER")
    return tag, data[offset:end], end


def _decode_oid(value: bytes) -> str:
    if not value:
        raise _DERError("empty OBJECT IDENTIFIER")
    first = value[0]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    current = 0
    for byte in value[1:]:
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    if value[-1] & 0x80:
        raise _DERError("truncated OBJECT IDENTIFIER")
    return ".".join(str(arc) for arc in arcs)


def _parse_private_key_info(der: bytes) -> tuple[str, bytes]:
    """Parse RFC 5958 OneAsymmetricKey; return (algorithm OID, privateKey octets)."""
    tag, body, end = _read_tlv(der, 0)
    if tag != 0x30 or end != len(der):
        raise _DERError("not a single DER SEQUENCE (PrivateKeyInfo)")
    tag, version, offset = _read_tlv(body, 0)
    if tag != 0x02 or version not in (b"\x00", b"\x01"):
        raise _DERError("PrivateKeyInfo version must be 0 or 1")
    tag, algorithm_identifier, offset = _read_tlv(body, offset)
    if tag != 0x30:
        raise _DERError("missing AlgorithmIdentifier")
    oid_tag, oid, _ = _read_tlv(algorithm_identifier, 0)
    if oid_tag != 0x06:
        raise _DERError("AlgorithmIdentifier does not start with an OBJECT IDENTIFIER")
    tag, private_key, offset = _read_tlv(body, offset)
    if tag != 0x04:
        raise _DERError("missing privateKey OCTET STRING")
    while offset < len(body):
        tag, _, offset = _read_tlv(body, offset)
        if tag not in (0xA0, 0x81, 0xA1):
            raise _DERError("unexpected trailing field in PrivateKeyInfo")
    return _decode_oid(oid), private_key


def _parse_curve_private_key(private_key: bytes) -> bytes:
    tag, seed, end = _read_tlv(private_key, 0)
    if tag != 0x04 or end != len(private_key) or len(seed) != 32:
        raise _DERError("privateKey is not a 32-byte CurvePrivateKey")
    return seed
