"""Every failure mode of the response-signer key loader has its own error and message."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgecore.keys import (
    KeyFileMissingError,
    KeyFileUnreadableError,
    NotEd25519Error,
    NotPKCS8Error,
    NotStrictPEMError,
    encode_ed25519_pkcs8_pem,
    load_response_signer,
)
from edgecore.signing import Signer, verify_signature

KEYS = Path(__file__).parent / "data" / "keys"


def test_loads_openssl_ed25519_key_and_signs_verifiably() -> None:
    signer = load_response_signer(KEYS / "ed25519.pem")
    public_der = base64.b64decode(
        "".join((KEYS / "ed25519-public.pem").read_text().splitlines()[1:-1])
    )
    # SubjectPublicKeyInfo for Ed25519 ends with the raw 32-byte key.
    assert signer.public_key == public_der[-32:]
    assert verify_signature(signer.public_key, b"m", signer.sign(b"m"))


def test_encoded_pem_matches_openssl_der_layout() -> None:
    seed = load_response_signer(KEYS / "ed25519.pem").seed()
    assert encode_ed25519_pkcs8_pem(seed) == (KEYS / "ed25519.pem").read_bytes()


def test_absent_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(KeyFileMissingError) as err:
        load_response_signer(missing)
    assert str(err.value) == f"response signer key file {missing} does not exist"


def test_unreadable_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileUnreadableError) as err:
        load_response_signer(tmp_path)
    assert str(err.value) == f"response signer key file {tmp_path} is not readable: Is a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of mode bits")
def test_unreadable_permissions(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    shutil.copy(KEYS / "ed25519.pem", key)
    key.chmod(0)
    with pytest.raises(KeyFileUnreadableError) as err:
        load_response_signer(key)
    assert str(err.value) == f"response signer key file {key} is not readable: Permission denied"


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "key.pem"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        pytest.param((KEYS / "ed25519.der").read_bytes(), "file is not ASCII text", id="raw-der"),
        pytest.param(b"", "expected one BEGIN line, base64 lines and one END line", id="empty"),
        pytest.param(
            b"key:\n" + (KEYS / "ed25519.pem").read_bytes(),
            "the file must start with a -----BEGIN ...----- line and nothing before it",
            id="leading-text",
        ),
        pytest.param(
            (KEYS / "ed25519.pem").read_bytes() + b"trailing\n",
            "the file must end with an -----END ...----- line and nothing after it",
            id="trailing-text",
        ),
        pytest.param(
            (KEYS / "ed25519.pem").read_bytes() + (KEYS / "ed25519.pem").read_bytes(),
            "body line 2 is not base64 of at most 64 characters",
            id="two-blocks",
        ),
        pytest.param(
            (KEYS / "ed25519.pem").read_bytes().replace(b"END PRIVATE", b"END PUBLIC"),
            "BEGIN and END labels differ",
            id="label-mismatch",
        ),
        pytest.param(
            b"-----BEGIN PRIVATE KEY-----\nMC4C*QAwBQYDK2VwBCIEINoU5pLi8eYmCWVAw7rCXNcE0X7MSjRVXkFPhuGfRmty\n"
            b"-----END PRIVATE KEY-----\n",
            "body line 1 is not base64 of at most 64 characters",
            id="bad-alphabet",
        ),
        pytest.param(
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQA\n-----END PRIVATE KEY-----\n",
            "body is not valid base64",
            id="bad-padding",
        ),
        pytest.param(
            b"-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nMC4CAQA=\n"
            b"-----END PRIVATE KEY-----\n",
            "PEM headers (RFC 1421 encryption) are not allowed",
            id="headers",
        ),
    ],
)
def test_not_strict_pem(tmp_path: Path, content: bytes, detail: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(NotStrictPEMError) as err:
        load_response_signer(path)
    assert str(err.value) == f"response signer key file {path} is not strict PEM: {detail}"


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("rsa-pkcs1.pem", "PEM label is 'RSA PRIVATE KEY' (expected the PKCS#8 label PRIVATE KEY)"),
        ("ec-sec1.pem", "PEM label is 'EC PRIVATE KEY' (expected the PKCS#8 label PRIVATE KEY)"),
        ("ed25519-public.pem", "PEM label is 'PUBLIC KEY' (expected the PKCS#8 label PRIVATE KEY)"),
        (
            "ed25519-encrypted.pem",
            "PEM label is 'ENCRYPTED PRIVATE KEY' (encrypted keys are not supported)",
        ),
    ],
)
def test_not_pkcs8_label(name: str, detail: str) -> None:
    with pytest.raises(NotPKCS8Error) as err:
        load_response_signer(KEYS / name)
    assert str(err.value) == f"response signer key file {KEYS / name} is not PKCS#8: {detail}"


def test_not_pkcs8_structure_under_private_key_label(tmp_path: Path) -> None:
    # A PKCS#1 RSA body relabelled as PRIVATE KEY: strict PEM, wrong structure.
    lines = (KEYS / "rsa-pkcs1.pem").read_text().splitlines()
    relabelled = ["-----BEGIN PRIVATE KEY-----", *lines[1:-1], "-----END PRIVATE KEY-----"]
    path = _write(tmp_path, ("\n".join(relabelled) + "\n").encode())
    with pytest.raises(NotPKCS8Error) as err:
        load_response_signer(path)
    assert str(err.value) == (
        f"response signer key file {path} is not PKCS#8: missing AlgorithmIdentifier"
    )


@pytest.mark.parametrize(
    ("name", "algorithm"),
    [
        ("rsa-pkcs8.pem", "RSA"),
        ("ec-pkcs8.pem", "EC"),
        ("x25519.pem", "X25519"),
        ("ed448.pem", "Ed448"),
    ],
)
def test_not_ed25519(name: str, algorithm: str) -> None:
    with pytest.raises(NotEd25519Error) as err:
        load_response_signer(KEYS / name)
    assert str(err.value) == (
        f"response signer key file {KEYS / name} is not Ed25519: its algorithm is {algorithm}"
    )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_fresh_openssl_genpkey_key_loads(tmp_path: Path) -> None:
    path = tmp_path / "fresh.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(path)], check=True)
    signer = load_response_signer(path)
    assert isinstance(signer, Signer)
    assert len(signer.public_key) == 32
