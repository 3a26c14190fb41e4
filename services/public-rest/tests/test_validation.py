"""Request body parsing and field validation."""

from __future__ import annotations

import base64
import json

import pytest

from public_rest.validation import (
    ValidationProblem,
    email_identity,
    is_iana_time_zone,
    normalize_email,
    parse_confirm_email_code,
    parse_send_email_code,
    valid_client_public_key,
)

KEY = base64.b64encode(bytes(range(32))).decode()


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice@example.com", "alice@example.com"),
        ("  Alice@Example.COM \t", "Alice@example.com"),
        ("a.b+tag@sub.example.org", "a.b+tag@sub.example.org"),
        ("o'brien@xn--bcher-kva.example", "o'brien@xn--bcher-kva.example"),
        ("user@example.com.", "user@example.com"),
    ],
)
def test_email_normalization(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "plain",
        "@example.com",
        "alice@",
        "alice@localhost",
        "alice@example",
        "al ice@example.com",
        ".alice@example.com",
        "alice.@example.com",
        "al..ice@example.com",
        "alice@-example.com",
        "alice@exa_mple.com",
        "alice@example.123",
        "ålice@example.com",
        "alice@exämple.com",
        '"quoted"@example.com',
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
        "alice@@example.com",
    ],
)
def test_invalid_emails_name_the_field(raw: str) -> None:
    with pytest.raises(ValidationProblem) as info:
        normalize_email(raw)
    assert info.value.field == "email"
    assert info.value.message.startswith("email ")
    if raw.strip():
        assert raw.strip() not in info.value.message


def test_email_identity_folds_case() -> None:
    assert email_identity(normalize_email("Alice@Example.com")) == email_identity(
        normalize_email("alice@example.COM")
    )


def test_send_email_code_body() -> None:
    assert parse_send_email_code(body(email=" Bob@EXAMPLE.org")).email == "Bob@example.org"
    assert parse_send_email_code(body(email="Bob@example.org")).identity == "bob@example.org"


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (b"", "body", "request body must be a JSON object"),
        (b"{", "body", "request body must be valid JSON"),
        (b"[]", "body", "request body must be a JSON object"),
        (b'"x"', "body", "request body must be a JSON object"),
        (b"\xff\xfe", "body", "request body must be valid JSON"),
        (b"{}", "email", "email is required"),
        (b'{"email": null}', "email", "email is required"),
        (b'{"email": 5}', "email", "email must be a string"),
        (b'{"email": "a@b.org", "extra": 1}', "extra", "extra is not a known field"),
        (b'{"email": "a@b.org", "email": "c@d.org"}', "email", "email must appear only once"),
        (b'{"email": NaN}', "body", "request body must be valid JSON"),
        (b"[" * 100000, "body", "request body must be valid JSON"),
        (b'{"email": "a\xff@b.org"}', "body", "request body must be valid JSON"),
        # a UTF-16 surrogate encoded as UTF-8 (json.loads on bytes let it through)
        (b'{"email": "\xed\xa0\x80@b.org"}', "body", "request body must be valid JSON"),
    ],
)
def test_send_email_code_problems(raw: bytes, field: str, message: str) -> None:
    with pytest.raises(ValidationProblem) as info:
        parse_send_email_code(raw)
    assert (info.value.field, info.value.message) == (field, message)


@pytest.mark.parametrize(
    "encoding",
    ["utf-16-le", "utf-16-be", "utf-16", "utf-32-le", "utf-32-be", "utf-32", "utf-8-sig"],
)
def test_only_utf8_without_bom_is_json(encoding: str) -> None:
    # json.loads on bytes would detect every one of these and accept the body.
    text = '{"email": "a@b.org"}'
    assert json.loads(text.encode(encoding)) == {"email": "a@b.org"}
    with pytest.raises(ValidationProblem) as info:
        parse_send_email_code(text.encode(encoding))
    assert (info.value.field, info.value.message) == ("body", "request body must be valid JSON")
    assert parse_send_email_code(text.encode()).email == "a@b.org"


def test_unknown_field_with_odd_name_is_reported_as_body() -> None:
    with pytest.raises(ValidationProblem) as info:
        parse_send_email_code(json.dumps({"email": "a@b.org", "bad key": 1}).encode())
    assert info.value.field == "body"


def test_confirm_email_code_body() -> None:
    command = parse_confirm_email_code(
        body(
            challenge_id=" ch_1 ", code=" 123456 ", client_public_key=KEY, time_zone="Europe/Berlin"
        )
    )
    assert command.challenge_id == "ch_1"
    assert command.identity == "ch_1"
    assert command.code == "123456"
    assert command.client_public_key == KEY
    assert command.time_zone == "Europe/Berlin"
    assert "123456" not in repr(command)


def _confirm(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "challenge_id": "ch_1",
        "code": "123456",
        "client_public_key": KEY,
        "time_zone": "UTC",
    }
    fields.update(overrides)
    return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"challenge_id": ...}, "challenge_id"),
        ({"challenge_id": "  "}, "challenge_id"),
        ({"challenge_id": "a b"}, "challenge_id"),
        ({"challenge_id": "x" * 257}, "challenge_id"),
        ({"code": ...}, "code"),
        ({"code": ""}, "code"),
        ({"code": 123456}, "code"),
        ({"code": "1" * 65}, "code"),
        ({"client_public_key": ...}, "client_public_key"),
        ({"client_public_key": ""}, "client_public_key"),
        ({"client_public_key": base64.b64encode(bytes(31)).decode()}, "client_public_key"),
        ({"client_public_key": base64.b64encode(bytes(33)).decode()}, "client_public_key"),
        (
            {"client_public_key": base64.urlsafe_b64encode(b"\xfb" * 32).decode()},
            "client_public_key",
        ),
        ({"client_public_key": KEY.rstrip("=")}, "client_public_key"),
        ({"client_public_key": KEY[:-2] + "B="}, "client_public_key"),
        ({"client_public_key": " " + KEY}, "client_public_key"),
        ({"time_zone": ...}, "time_zone"),
        ({"time_zone": ""}, "time_zone"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": "europe/berlin"}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"time_zone": "/usr/share/zoneinfo/UTC"}, "time_zone"),
        ({"time_zone": "+02:00"}, "time_zone"),
        ({"unknown": "x"}, "unknown"),
    ],
)
def test_confirm_problems_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationProblem) as info:
        parse_confirm_email_code(_confirm(**overrides))
    assert info.value.field == field
    assert field in info.value.message


def test_public_key_rules() -> None:
    assert valid_client_public_key(KEY)
    assert valid_client_public_key(base64.b64encode(b"\xfb\xff" * 16).decode())  # + and /
    assert not valid_client_public_key(base64.b64encode(bytes(32)).decode() + "\n")


@pytest.mark.parametrize(
    "name", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"]
)
def test_real_time_zones(name: str) -> None:
    assert is_iana_time_zone(name)
