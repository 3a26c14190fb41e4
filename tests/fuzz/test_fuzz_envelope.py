"""Fuzz target 1: the request envelope validator and the verification pipeline around it.

* ``validate_envelope``: arbitrary field values (the types the gRPC and Connect
  fronts hand in: text, int64, bytes) either pass or raise ``EdgeError`` with
  ``Reject.MALFORMED_REQUEST`` and one of its documented messages; and they pass
  exactly when an independent model of the field grammar says so;
* ``VerificationPipeline.verify`` (steps 1-9, in-memory stores): arbitrary and
  mutated envelopes raise only ``EdgeError``; whatever is accepted is correctly
  signed by the session's key, with a matching payload hash, fresh, and for an
  active session; every envelope built and signed correctly is accepted.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from datetime import timedelta
from typing import Any, Final

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from edgecore.catalog import PROTOCOL_VERSION, SUBSCRIBE_EVENTS_MESSAGE_TYPE
from edgecore.config import EdgeGrpcSettings, load_settings
from edgecore.errors import EdgeError, Reject
from edgecore.pipeline import Envelope, VerificationPipeline, validate_envelope
from edgecore.ratelimit import TokenBucketLimiter
from edgecore.replay import Reservation
from edgecore.session_cache import InProcessSessionCache
from edgecore.sessions import SessionRecord, SessionStatus
from edgecore.signing import (
    Signer,
    payload_hash,
    payload_hash_matches,
    request_signing_input,
    verify_signature,
)

from .profiles import fuzz_settings

pytestmark = pytest.mark.fuzz

INT64: Final = st.integers(-(2**63), 2**63 - 1)
_PRINTABLE: Final = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
VALID_ID: Final = st.text(_PRINTABLE, min_size=1, max_size=128)
_MT_FIRST: Final = st.sampled_from("ABCXYZabcxyz0189")
_MT_REST: Final = st.text(st.sampled_from("Aaz09._-"), max_size=127)
VALID_MESSAGE_TYPE: Final = st.builds(lambda a, b: a + b, _MT_FIRST, _MT_REST)
ANY_TEXT: Final = st.one_of(
    st.just(""),
    st.text(max_size=140),
    st.text(_PRINTABLE, min_size=120, max_size=140),
    st.text(st.sampled_from(" \t\n\r\x00\x7f\x85\u00a0\u2028"), min_size=1, max_size=3),
    st.builds(lambda s, c: s + c, VALID_ID.map(lambda s: s[:127]), st.sampled_from("\n \x00")),
)

MALFORMED_MESSAGES: Final = {
    "protocol_version must not be empty",
    "device_session_id must not be empty",
    "device_session_id is malformed",
    "message_type must not be empty",
    "message_type is malformed",
    "timestamp_ms must be positive",
    "request_id must not be empty",
    "request_id is malformed",
    "payload_hash must not be empty",
    "signature must not be empty",
    "trace_id is malformed",
}


def _is_id(value: str) -> bool:
    return 1 <= len(value) <= 128 and all(0x21 <= ord(c) <= 0x7E for c in value)


def _is_message_type(value: str) -> bool:
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return (
        1 <= len(value) <= 128 and value[0] in alnum and all(c in alnum + "._-" for c in value[1:])
    )


def _model_accepts(envelope: Envelope, expected: str | None) -> bool:
    """The field grammar of docs/edge-grpc.md, written independently of the regexes."""
    return (
        bool(envelope.protocol_version)
        and _is_id(envelope.device_session_id)
        and _is_message_type(envelope.message_type)
        and (expected is None or envelope.message_type == expected)
        and envelope.timestamp_ms > 0
        and _is_id(envelope.request_id)
        and bool(envelope.payload_hash)
        and bool(envelope.signature)
        and (not envelope.trace_id or _is_id(envelope.trace_id))
    )


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    """Each field valid or arbitrary, independently."""

    def either(valid: Any, arbitrary: Any, label: str) -> Any:
        return draw(st.one_of(valid, arbitrary), label)

    payload = draw(st.binary(max_size=32), "payload")
    return Envelope(
        protocol_version=either(st.just(PROTOCOL_VERSION), ANY_TEXT, "protocol_version"),
        device_session_id=either(VALID_ID, ANY_TEXT, "device_session_id"),
        message_type=either(VALID_MESSAGE_TYPE, ANY_TEXT, "message_type"),
        timestamp_ms=either(st.integers(1, 2**63 - 1), INT64, "timestamp_ms"),
        request_id=either(VALID_ID, ANY_TEXT, "request_id"),
        payload=payload,
        payload_hash=either(st.just(payload_hash(payload)), st.binary(max_size=40), "hash"),
        signature=either(st.binary(min_size=64, max_size=64), st.binary(max_size=70), "sig"),
        trace_id=either(st.just(""), ANY_TEXT, "trace_id"),
    )


VALID_ENVELOPES: Final = st.builds(
    Envelope,
    protocol_version=st.text(min_size=1, max_size=8),
    device_session_id=VALID_ID,
    message_type=VALID_MESSAGE_TYPE,
    timestamp_ms=st.integers(1, 2**63 - 1),
    request_id=VALID_ID,
    payload=st.binary(max_size=8),
    payload_hash=st.binary(min_size=1, max_size=40),
    signature=st.binary(min_size=1, max_size=70),
    trace_id=st.just("") | VALID_ID,
)


@fuzz_settings(600)
@given(
    envelope=st.one_of(envelopes(), VALID_ENVELOPES),
    expected=st.none() | st.just(SUBSCRIBE_EVENTS_MESSAGE_TYPE) | VALID_MESSAGE_TYPE,
)
@example(
    envelope=Envelope("v1", "ds-1\n", "user.account.get", 1, "r", b"", b"h", b"s"),
    expected=None,
)
@example(
    envelope=Envelope("v1", "ds-1", "user.account.get\n", 1, "r", b"", b"h", b"s"),
    expected=None,
)
@example(
    envelope=Envelope("v1", "d", "a" * 128, 1, "r", b"", b"h", b"s", trace_id="t" * 129),
    expected=None,
)
def test_validate_envelope(envelope: Envelope, expected: str | None) -> None:
    try:
        validate_envelope(envelope, expected_message_type=expected)
    except EdgeError as exc:
        assert type(exc) is EdgeError
        assert exc.reject is Reject.MALFORMED_REQUEST
        allowed = MALFORMED_MESSAGES | {f"message_type must be {expected}"}
        assert exc.message in allowed, exc.message
        assert not _model_accepts(envelope, expected), exc.message
        event("rejected")
        return
    assert _model_accepts(envelope, expected)
    event("accepted")


# --- the whole pipeline ------------------------------------------------------------------

NOW_MS: Final = 1_800_000_000_000
WINDOW: Final = timedelta(minutes=5)
WINDOW_MS: Final = 300_000
CLIENT: Final = Signer(bytes(range(32)))
ACTIVE, REVOKED, BAD_KEY = "ds-active", "ds-revoked", "ds-bad-key"
_GENEROUS = {
    f"GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_{dim}_RATE_LIMIT_{part}": "1000000"
    for dim in ("IP", "SESSION", "USER", "MESSAGE_CLASS", "SESSION_LOOKUP")
    for part in ("REQUESTS", "BURST")
}
SETTINGS: Final = load_settings(
    EdgeGrpcSettings,
    {
        "GATEWAY_REDIS_MASTER_ADDR": "127.0.0.1:1",
        "GATEWAY_REDIS_PASSWORD": "x",
        "GATEWAY_BACKEND_GATEWAY_CLIENT_ID": "g",
        "GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH": "/k",
        **_GENEROUS,
    },
)


def _record(device_session_id: str, key: str, status: SessionStatus) -> SessionRecord:
    return SessionRecord(device_session_id, "u-1", key, status)


_CLIENT_KEY: Final = base64.b64encode(CLIENT.public_key).decode()
RECORDS: Final = {
    r.device_session_id: r
    for r in (
        _record(ACTIVE, _CLIENT_KEY, SessionStatus.ACTIVE),
        _record(REVOKED, _CLIENT_KEY, SessionStatus.REVOKED),
        _record(BAD_KEY, _CLIENT_KEY[:-2], SessionStatus.ACTIVE),
    )
}


class _Source:
    async def get_session(self, device_session_id: str) -> SessionRecord | None:
        return RECORDS.get(device_session_id)


class _Replay:
    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    async def reserve(self, device_session_id: str, request_id: str, ttl: timedelta) -> Reservation:
        first = (device_session_id, request_id) not in self.seen
        self.seen.add((device_session_id, request_id))
        return Reservation(first, 0)


def _pipeline() -> VerificationPipeline:
    cache = InProcessSessionCache(
        _Source(), max_entries=100, ttl=timedelta(minutes=10), negative_ttl=timedelta(seconds=5)
    )
    return VerificationPipeline(
        sessions=cache,
        replay=_Replay(),
        limiter=TokenBucketLimiter(),
        anti_abuse=SETTINGS.anti_abuse,
        freshness_window=WINDOW,
        clock_ms=lambda: NOW_MS,
    )


def _sign(envelope: Envelope) -> Envelope:
    signature = CLIENT.sign(
        request_signing_input(
            protocol_version=envelope.protocol_version,
            device_session_id=envelope.device_session_id,
            message_type=envelope.message_type,
            timestamp_ms=envelope.timestamp_ms,
            request_id=envelope.request_id,
            payload_hash=envelope.payload_hash,
        )
    )
    return replace(envelope, signature=signature)


@st.composite
def signed_envelopes(draw: st.DrawFn) -> Envelope:
    payload = draw(st.binary(max_size=64), "payload")
    return _sign(
        Envelope(
            protocol_version=PROTOCOL_VERSION,
            device_session_id=ACTIVE,
            message_type=draw(VALID_MESSAGE_TYPE, "message_type"),
            timestamp_ms=NOW_MS + draw(st.integers(-WINDOW_MS, WINDOW_MS), "skew"),
            request_id=draw(VALID_ID, "request_id"),
            payload=payload,
            payload_hash=payload_hash(payload),
            signature=b"",
            trace_id=draw(st.just("") | VALID_ID, "trace_id"),
        )
    )


@st.composite
def hostile_envelopes(draw: st.DrawFn) -> Envelope:
    """A signed envelope with fields replaced, then maybe re-signed (a valid signature
    over bad fields) or given arbitrary signature bytes."""
    envelope = draw(signed_envelopes(), "signed")
    junk = draw(envelopes(), "junk")
    names = draw(
        st.sets(st.sampled_from([f for f in Envelope.__slots__ if f != "payload"]), min_size=1),
        "replaced",
    )
    changes: dict[str, Any] = {name: getattr(junk, name) for name in names}
    if "device_session_id" in names:
        changes["device_session_id"] = draw(
            st.sampled_from([ACTIVE, REVOKED, BAD_KEY, junk.device_session_id]), "session"
        )
    if "timestamp_ms" in names:
        changes["timestamp_ms"] = draw(
            st.one_of(INT64, st.integers(NOW_MS - 2 * WINDOW_MS, NOW_MS + 2 * WINDOW_MS)), "ts"
        )
    envelope = replace(envelope, **changes)
    resign = draw(st.booleans(), "resign")
    if resign and envelope.timestamp_ms >= 0:
        envelope = _sign(envelope)
    return envelope


def _verify(envelope: Envelope) -> Any:
    async def run() -> Any:
        try:
            return await _pipeline().verify(envelope, "10.0.0.1")
        except EdgeError as exc:
            return exc

    return asyncio.run(run())


@fuzz_settings(150)
@given(envelope=signed_envelopes())
def test_pipeline_accepts_every_correctly_signed_request(envelope: Envelope) -> None:
    outcome = _verify(envelope)
    assert not isinstance(outcome, BaseException), outcome
    assert outcome.user_id == "u-1"
    assert outcome.command().payload == envelope.payload


@fuzz_settings(200)
@given(envelope=st.one_of(hostile_envelopes(), envelopes()))
def test_pipeline_rejects_with_edge_errors_only(envelope: Envelope) -> None:
    outcome = _verify(envelope)
    if isinstance(outcome, BaseException):
        assert type(outcome) is EdgeError, repr(outcome)
        event(f"rejected: {outcome.reason}")
        return
    event("accepted")
    # Accepted: then it really is a fresh request of the active session, signed by its key.
    assert envelope.protocol_version == PROTOCOL_VERSION
    assert envelope.device_session_id == ACTIVE
    assert abs(envelope.timestamp_ms - NOW_MS) <= WINDOW_MS
    assert payload_hash_matches(envelope.payload, envelope.payload_hash)
    signing_input = request_signing_input(
        protocol_version=envelope.protocol_version,
        device_session_id=envelope.device_session_id,
        message_type=envelope.message_type,
        timestamp_ms=envelope.timestamp_ms,
        request_id=envelope.request_id,
        payload_hash=envelope.payload_hash,
    )
    assert verify_signature(CLIENT.public_key, signing_input, envelope.signature)
    assert _model_accepts(envelope, None)
