"""Fuzz target 5: public REST's body parsing and field validation (public_rest.validation).

Arbitrary bodies (bytes, JSON of any shape, BOMs, deep nesting, duplicate keys, huge
numbers) and arbitrary field values either parse or raise ``ValidationProblem``
naming the field, never anything else; its message never echoes the submitted
value. What is accepted is what the docs promise: a normalised e-mail address that
normalises to itself, a printable challenge id and code, a standard-base64 32-byte
key, an IANA zone. Valid bodies built from valid fields are accepted.
"""

from __future__ import annotations

import base64
import json
import string
import zoneinfo
from typing import Any, Final

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from public_rest.validation import (
    ConfirmEmailCodeCommand,
    SendEmailCodeCommand,
    ValidationProblem,
    is_iana_time_zone,
    normalize_challenge_id,
    normalize_email,
    parse_confirm_email_code,
    parse_send_email_code,
    valid_client_public_key,
)

from .profiles import fuzz_settings
from .schema_strategies import json_junk

pytestmark = pytest.mark.fuzz

# docs/public-rest.md (literals: independent of the module's constants).
MAX_EMAIL_LENGTH: Final = 254
MAX_CHALLENGE_ID_LENGTH: Final = 256
MAX_CODE_LENGTH: Final = 64
ZONES: Final = sorted(zoneinfo.available_timezones())
CONFIRM_FIELDS: Final = ("challenge_id", "code", "client_public_key", "time_zone")
_PRINTABLE: Final = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
_ATOM: Final = st.text(
    st.sampled_from(string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"),
    min_size=1,
    max_size=8,
)
_LABEL: Final = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
valid_emails: Final = st.builds(
    lambda local, labels, tld, case: (
        ".".join(local) + "@" + ".".join([*labels, tld]).upper()
        if case
        else ".".join(local) + "@" + ".".join([*labels, tld])
    ),
    st.lists(_ATOM, min_size=1, max_size=3),
    st.lists(_LABEL, min_size=1, max_size=3),
    st.from_regex(r"[a-z][a-z0-9]{1,5}", fullmatch=True),
    st.booleans(),
)
valid_keys: Final = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())
valid_confirm: Final = st.fixed_dictionaries(
    {
        "challenge_id": st.text(_PRINTABLE, min_size=1, max_size=MAX_CHALLENGE_ID_LENGTH),
        "code": st.text(_PRINTABLE, min_size=1, max_size=MAX_CODE_LENGTH),
        "client_public_key": valid_keys,
        "time_zone": st.sampled_from(ZONES),
    }
)
_ANY_TEXT: Final = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(exclude_categories=()), max_size=12),
    st.text(_PRINTABLE, min_size=MAX_CODE_LENGTH, max_size=MAX_CHALLENGE_ID_LENGTH + 2),
    st.sampled_from(["", " ", "\t", "\u00a0", "\u2028", "\x00", "\ufeff"]),
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw: st.DrawFn, fields: tuple[str, ...], valid: Any) -> bytes:
    """Bodies from bytes to nearly-valid documents."""
    kind = draw(
        st.sampled_from(["bytes", "junk", "changed", "duplicate", "nested", "text", "bom"]), "kind"
    )
    if kind == "bytes":
        return draw(st.binary(max_size=64), "bytes")
    if kind == "junk":
        return _dumps(draw(json_junk.filter(_json_safe), "junk"))
    if kind == "nested":
        depth = draw(st.sampled_from([10, 999, 1000, 5000, 100_000]), "depth")
        return draw(st.sampled_from([b"[", b'{"email":']), "open") * depth
    if kind == "text":  # JSON-ish text: NaN, Infinity, big numbers, trailing garbage
        return draw(
            st.sampled_from(
                [b"NaN", b'{"email": NaN}', b'{"email": Infinity}', b"{} x", b"1" * 5000, b'"x"']
            )
        )
    document = dict(draw(valid, "valid"))
    if kind == "bom":
        return b"\xef\xbb\xbf" + _dumps(document)
    if kind == "duplicate":
        text = _dumps(document).decode("utf-8", "surrogatepass")
        name = draw(st.sampled_from([*fields, "x y", "\u00e9"]), "name")
        return (text[:-1] + f', "{name}": 1}}').encode("utf-8", "surrogatepass")
    # changed: one field replaced, dropped, or an unknown one added
    name = draw(st.sampled_from([*fields, "extra", "not a token", "\ud800"]), "field")
    if draw(st.booleans(), "drop"):
        document.pop(name, None)
    else:
        document[name] = draw(st.one_of(_ANY_TEXT, json_junk.filter(_json_safe)), "value")
    return _dumps(document)


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


_BODY_MESSAGES: Final = {
    "request body must be a JSON object",
    "request body must be valid JSON",
    "request body has an unknown field",
}
_FIELD_MESSAGES: Final = {
    "email": {"email must not be empty", "email must be a valid e-mail address"},
    "challenge_id": {
        "challenge_id must not be empty",
        f"challenge_id must be at most {MAX_CHALLENGE_ID_LENGTH} printable characters",
    },
    "code": {
        "code must not be empty",
        f"code must be at most {MAX_CODE_LENGTH} printable characters",
    },
    "client_public_key": {
        "client_public_key must be the standard base64 encoding of a 32-byte Ed25519 key"
    },
    "time_zone": {"time_zone must be an IANA time zone name"},
}


def _check_problem(exc: ValidationProblem, fields: tuple[str, ...], body: bytes) -> None:
    """Only the documented messages: fixed texts that name the field, never its value."""
    assert type(exc) is ValidationProblem
    field, message = exc.field, exc.message
    if field == "body":
        assert message in _BODY_MESSAGES, message
    elif field in fields:
        common = {f"{field} is required", f"{field} must be a string"}
        common.add(f"{field} must appear only once")
        assert message in _FIELD_MESSAGES[field] | common, message
    else:  # an unknown or repeated name, echoed only when it is a short printable token
        assert message in {f"{field} is not a known field", f"{field} must appear only once"}
        assert field.isascii() and field.isprintable() and " " not in field
        assert 1 <= len(field) <= 64
    event(f"rejected: {field if field in (*fields, 'body') else 'unknown field'}")


_ATEXT: Final = frozenset(string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-")


def _assert_valid_email(email: str) -> None:
    """docs/public-rest.md, written without the module's regexes."""
    assert email.isascii() and len(email) <= MAX_EMAIL_LENGTH
    assert normalize_email(email) == email  # normalised means a fixed point
    local, _, domain = email.rpartition("@")
    assert 1 <= len(local) <= 64
    assert all(atom and set(atom) <= _ATEXT for atom in local.split("."))  # dot-atom
    labels = domain.split(".")
    assert len(labels) >= 2 and not labels[-1].isdigit()
    for label in labels:
        assert 1 <= len(label) <= 63 and label[0] != "-" and label[-1] != "-"
        assert set(label) <= set(string.ascii_lowercase + string.digits + "-")


@fuzz_settings(400)
@given(body=bodies(("email",), st.fixed_dictionaries({"email": valid_emails})))
@example(body=b"[" * 100_000)
@example(body=b'{"email": "a@b.co", "email": "c@d.co"}')
@example(body=b"\xef\xbb\xbf{}")
def test_send_email_code_body(body: bytes) -> None:
    try:
        command = parse_send_email_code(body)
    except ValidationProblem as exc:
        _check_problem(exc, ("email",), body)
        return
    assert type(command) is SendEmailCodeCommand
    _assert_valid_email(command.email)
    event("accepted")


@fuzz_settings(400)
@given(body=bodies(CONFIRM_FIELDS, valid_confirm))
def test_confirm_email_code_body(body: bytes) -> None:
    try:
        command = parse_confirm_email_code(body)
    except ValidationProblem as exc:
        _check_problem(exc, CONFIRM_FIELDS, body)
        return
    assert type(command) is ConfirmEmailCodeCommand
    assert command.challenge_id == normalize_challenge_id(command.challenge_id)
    assert command.code.isascii() and command.code.isprintable() and " " not in command.code
    assert 1 <= len(command.code) <= MAX_CODE_LENGTH
    assert len(base64.b64decode(command.client_public_key, validate=True)) == 32
    assert command.time_zone in ZONES
    event("accepted")


@fuzz_settings(200)
@given(document=valid_confirm, email=valid_emails)
def test_valid_bodies_are_accepted(document: dict[str, str], email: str) -> None:
    command = parse_confirm_email_code(json.dumps(document).encode())
    assert (command.challenge_id, command.code) == (document["challenge_id"], document["code"])
    assert (command.client_public_key, command.time_zone) == (
        document["client_public_key"],
        document["time_zone"],
    )
    sent = parse_send_email_code(json.dumps({"email": f"  {email}\t"}).encode())
    local, _, domain = email.rpartition("@")
    assert sent.email == f"{local}@{domain.lower()}"


@fuzz_settings(400)
@given(
    raw=st.one_of(
        _ANY_TEXT,
        valid_emails,
        valid_emails.map(lambda e: e + "\u212a"),
        # One part arbitrary, the other valid: reaches each check on its own.
        st.builds(lambda local, email: local + email[email.rindex("@") :], _ANY_TEXT, valid_emails),
        st.builds(
            lambda email, domain: email[: email.rindex("@") + 1] + domain,
            valid_emails,
            st.one_of(_ANY_TEXT, st.text("abc.-_019", max_size=12), st.just("a" * 64 + ".com")),
        ),
    )
)
@example(raw="alice@\u212aexample.com").via(
    "regression: KELVIN SIGN lower-cased to ASCII 'k' and was accepted (docs/fuzzing.md, bug 6)"
)
@example(raw="a@b." + "c" * 300)
def test_email_field(raw: str) -> None:
    try:
        email = normalize_email(raw)
    except ValidationProblem as exc:
        assert type(exc) is ValidationProblem and exc.field == "email"
        assert exc.message in _FIELD_MESSAGES["email"]  # never echoes the address
        return
    _assert_valid_email(email)
    # No internationalised addresses (docs/public-rest.md): only ASCII input is accepted.
    assert raw.strip().isascii()


@fuzz_settings(300)
@given(value=st.one_of(_ANY_TEXT, valid_keys, valid_keys.map(lambda k: k[:-2] + "==")))
def test_public_key_and_zone_predicates(value: str) -> None:
    if valid_client_public_key(value):
        raw = base64.b64decode(value, validate=True)
        assert len(raw) == 32 and base64.b64encode(raw).decode() == value
    assert is_iana_time_zone(value) == (value in ZONES)
