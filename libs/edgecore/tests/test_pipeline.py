"""Steps 1-9: every reject with its exact code and message, in the specification's order."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import timedelta

import pytest

from edgecore.config import EdgeGrpcSettings, load_settings
from edgecore.errors import EdgeError, GrpcCode, Reject
from edgecore.pipeline import Envelope, VerificationPipeline, VerifiedRequest, peer_ip_from_address
from edgecore.ratelimit import TokenBucketLimiter
from edgecore.replay import ReplayStoreUnavailableError, Reservation
from edgecore.session_cache import InProcessSessionCache
from edgecore.sessions import SessionRecord, SessionStatus
from edgecore.signing import Signer, payload_hash, request_signing_input

NOW_MS = 1_800_000_000_000
WINDOW = timedelta(minutes=5)
CLIENT = Signer(bytes(range(32)))
OTHER = Signer(bytes(range(1, 33)))


def _record(device_session_id: str = "ds-1", **changes: object) -> SessionRecord:
    base = SessionRecord(
        device_session_id=device_session_id,
        user_id="u-1",
        client_public_key=base64.b64encode(CLIENT.public_key).decode(),
        status=SessionStatus.ACTIVE,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


class DictSource:
    def __init__(self, *records: SessionRecord) -> None:
        self.records = {r.device_session_id: r for r in records}
        self.fail = False

    async def get_session(self, device_session_id: str) -> SessionRecord | None:
        if self.fail:
            raise ConnectionError("backend down")
        return self.records.get(device_session_id)


class DictReplayStore:
    """The ReplayStore contract over a dict (the Redis adapter has its own integration tests)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], timedelta] = {}
        self.fail = False
        self.floor_ms = 0

    async def reserve(self, device_session_id: str, request_id: str, ttl: timedelta) -> Reservation:
        if self.fail:
            raise ReplayStoreUnavailableError("down")
        first_use = (device_session_id, request_id) not in self.seen
        self.seen.setdefault((device_session_id, request_id), ttl)
        return Reservation(first_use, self.floor_ms)


class DenyPolicy:
    async def allows(self, request: VerifiedRequest) -> bool:
        return False


def _envelope(
    signer: Signer = CLIENT, *, sign_as: dict[str, object] | None = None, **changes: object
) -> Envelope:
    payload = changes.pop("payload", b"fb-payload")
    assert isinstance(payload, bytes)
    fields: dict[str, object] = {
        "protocol_version": "v1",
        "device_session_id": "ds-1",
        "message_type": "user.account.get",
        "timestamp_ms": NOW_MS,
        "request_id": "req-1",
        "payload": payload,
        "payload_hash": payload_hash(payload),
        "trace_id": "",
    }
    fields.update(changes)
    signed = {**fields, **(sign_as or {})}
    signature = signer.sign(
        request_signing_input(
            protocol_version=str(signed["protocol_version"]),
            device_session_id=str(signed["device_session_id"]),
            message_type=str(signed["message_type"]),
            timestamp_ms=int(signed["timestamp_ms"]),  # type: ignore[call-overload]
            request_id=str(signed["request_id"]),
            payload_hash=signed["payload_hash"],  # type: ignore[arg-type]
        )
    )
    fields.setdefault("signature", signature)
    return Envelope(**fields)  # type: ignore[arg-type]


SETTINGS = load_settings(
    EdgeGrpcSettings,
    {
        "GATEWAY_REDIS_MASTER_ADDR": "127.0.0.1:1",
        "GATEWAY_REDIS_PASSWORD": "x",
        "GATEWAY_BACKEND_GATEWAY_CLIENT_ID": "g",
        "GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH": "/k",
        "GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_SESSION_RATE_LIMIT_BURST": "3",
        "GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_SESSION_LOOKUP_RATE_LIMIT_BURST": "3",
    },
)


class Harness:
    def __init__(self, *records: SessionRecord) -> None:
        self.source = DictSource(*(records or (_record(),)))
        self.cache = InProcessSessionCache(
            self.source,
            max_entries=100,
            ttl=timedelta(minutes=10),
            negative_ttl=timedelta(seconds=5),
        )
        self.replay = DictReplayStore()
        self.limiter = TokenBucketLimiter()
        self.now_ms = NOW_MS
        self.pipeline = VerificationPipeline(
            sessions=self.cache,
            replay=self.replay,
            limiter=self.limiter,
            anti_abuse=SETTINGS.anti_abuse,
            freshness_window=WINDOW,
            clock_ms=lambda: self.now_ms,
        )

    async def reject(self, envelope: Envelope, peer: str = "10.0.0.1") -> tuple[GrpcCode, str]:
        with pytest.raises(EdgeError) as err:
            await self.pipeline.verify(envelope, peer)
        return err.value.grpc_code, err.value.message


async def test_valid_request_yields_the_authenticated_context() -> None:
    h = Harness(_record(client_metadata={"platform": "ios"}))
    verified = await h.pipeline.verify(_envelope(trace_id="t-9"), "10.0.0.1")
    command = verified.command()
    assert (command.user_id, command.device_session_id, command.message_type) == (
        "u-1",
        "ds-1",
        "user.account.get",
    )
    assert (command.payload, command.request_id, command.trace_id) == (
        b"fb-payload",
        "req-1",
        "t-9",
    )
    assert dict(command.client_metadata) == {"platform": "ios"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"protocol_version": ""}, "protocol_version must not be empty"),
        ({"device_session_id": ""}, "device_session_id must not be empty"),
        ({"device_session_id": "has space"}, "device_session_id is malformed"),
        ({"device_session_id": "x" * 129}, "device_session_id is malformed"),
        ({"message_type": ""}, "message_type must not be empty"),
        ({"message_type": "user account"}, "message_type is malformed"),
        ({"timestamp_ms": 0}, "timestamp_ms must be positive"),
        ({"timestamp_ms": -5}, "timestamp_ms must be positive"),
        ({"request_id": ""}, "request_id must not be empty"),
        ({"request_id": "r\n1"}, "request_id is malformed"),
        ({"payload_hash": b""}, "payload_hash must not be empty"),
        ({"signature": b""}, "signature must not be empty"),
        ({"trace_id": "t\x00"}, "trace_id is malformed"),
    ],
)
async def test_step1_malformed_envelope(changes: dict[str, object], message: str) -> None:
    envelope = replace(_envelope(), **changes)  # type: ignore[arg-type]
    assert await Harness().reject(envelope) == (GrpcCode.INVALID_ARGUMENT, message)


async def test_step1_expected_message_type_for_streams() -> None:
    with pytest.raises(EdgeError) as err:
        await Harness().pipeline.verify(
            _envelope(), "10.0.0.1", expected_message_type="gateway.subscribe_events"
        )
    assert (err.value.grpc_code, err.value.message) == (
        GrpcCode.INVALID_ARGUMENT,
        "message_type must be gateway.subscribe_events",
    )


async def test_step2_unsupported_protocol_version() -> None:
    assert await Harness().reject(_envelope(protocol_version="v2")) == (
        GrpcCode.FAILED_PRECONDITION,
        "unsupported protocol_version",
    )


async def test_step3_backend_failure_is_unavailable() -> None:
    h = Harness()
    h.source.fail = True
    assert await h.reject(_envelope()) == (GrpcCode.UNAVAILABLE, "session cache is unavailable")


async def test_step4_unknown_and_revoked_sessions() -> None:
    h = Harness(_record(), _record("ds-2", status=SessionStatus.REVOKED))
    assert await h.reject(_envelope(device_session_id="ds-9")) == (
        GrpcCode.UNAUTHENTICATED,
        "unknown device session",
    )
    assert await h.reject(_envelope(device_session_id="ds-2")) == (
        GrpcCode.FAILED_PRECONDITION,
        "device session is revoked",
    )


async def test_step5_payload_hash() -> None:
    h = Harness()
    assert await h.reject(_envelope(payload_hash=b"\x00" * 31)) == (
        GrpcCode.INVALID_ARGUMENT,
        "payload_hash must be a 32-byte SHA-256 digest",
    )
    assert await h.reject(_envelope(payload_hash=payload_hash(b"other"))) == (
        GrpcCode.INVALID_ARGUMENT,
        "payload_hash does not match payload_bytes",
    )


async def test_empty_payload_needs_sha256_of_empty() -> None:
    h = Harness()
    await h.pipeline.verify(_envelope(payload=b""), "10.0.0.1")
    assert await h.reject(_envelope(payload=b"", payload_hash=b"\x00" * 32, request_id="r-2")) == (
        GrpcCode.INVALID_ARGUMENT,
        "payload_hash does not match payload_bytes",
    )


@pytest.mark.parametrize(
    "envelope",
    [
        pytest.param(_envelope(OTHER), id="another-key"),
        pytest.param(
            _envelope(sign_as={"message_type": "user.profile.update"}), id="other-message-type"
        ),
        pytest.param(_envelope(sign_as={"timestamp_ms": NOW_MS + 1}), id="other-timestamp"),
        pytest.param(_envelope(sign_as={"request_id": "req-2"}), id="other-request-id"),
        pytest.param(replace(_envelope(), signature=b"\x01" * 64), id="garbage"),
        pytest.param(replace(_envelope(), signature=_envelope().signature[:63]), id="short"),
    ],
)
async def test_step6_invalid_signature(envelope: Envelope) -> None:
    assert await Harness().reject(envelope) == (
        GrpcCode.UNAUTHENTICATED,
        "invalid request signature",
    )


@pytest.mark.parametrize("bad_key", ["%%%", base64.b64encode(b"\x01" * 31).decode(), ""])
async def test_step6_malformed_cached_key_fails_closed(bad_key: str) -> None:
    h = Harness(_record(client_public_key=bad_key))
    assert await h.reject(_envelope()) == (GrpcCode.UNAVAILABLE, "session cache is unavailable")


@pytest.mark.parametrize("skew_ms", [-300_001, 300_001])
async def test_step7_stale_timestamp(skew_ms: int) -> None:
    assert await Harness().reject(_envelope(timestamp_ms=NOW_MS + skew_ms)) == (
        GrpcCode.FAILED_PRECONDITION,
        "request timestamp is outside the freshness window",
    )


@pytest.mark.parametrize("skew_ms", [-300_000, 300_000])
async def test_step7_window_edges_are_accepted(skew_ms: int) -> None:
    h = Harness()
    await h.pipeline.verify(_envelope(timestamp_ms=NOW_MS + skew_ms), "10.0.0.1")
    # TTL = timestamp + window - now: 0 at the old edge (the store clamps it), 10 min at the new one.
    [ttl] = h.replay.seen.values()
    assert ttl == timedelta(milliseconds=300_000 + skew_ms)


async def test_step8_replay_is_detected_per_session() -> None:
    h = Harness(_record(), _record("ds-2"))
    await h.pipeline.verify(_envelope(), "10.0.0.1")
    assert await h.reject(_envelope()) == (GrpcCode.FAILED_PRECONDITION, "request replay detected")
    # The same request_id in another session is not a replay.
    await h.pipeline.verify(_envelope(device_session_id="ds-2"), "10.0.0.1")


async def test_step3_unknown_ids_spend_the_peers_lookup_budget_then_fail_without_a_lookup() -> None:
    h = Harness()
    answers = [await h.reject(_envelope(device_session_id=f"random-{n}")) for n in range(6)]
    assert (
        answers
        == [(GrpcCode.UNAUTHENTICATED, "unknown device session")] * 3
        + [(GrpcCode.UNAUTHENTICATED, "session lookup rate limit exceeded")] * 3
    )
    assert h.cache.lookups == 3  # over budget, the backend is not asked
    # A remembered unknown id costs nothing; a cached session is served as ever.
    assert await h.reject(_envelope(device_session_id="random-0")) == (
        GrpcCode.UNAUTHENTICATED,
        "unknown device session",
    )
    await h.cache.get("ds-1")  # the session-events stream or an earlier lookup cached it
    await h.pipeline.verify(_envelope(), "10.0.0.1")
    # Another peer has a budget of its own.
    assert await h.reject(_envelope(device_session_id="random-9"), peer="10.0.0.2") == (
        GrpcCode.UNAUTHENTICATED,
        "unknown device session",
    )
    assert h.cache.lookups == 5


async def test_step8_a_request_signed_before_the_replay_floor_is_stale() -> None:
    """Redis lost its reservations at NOW_MS: what was signed before may have been accepted."""
    h = Harness()
    h.replay.floor_ms = NOW_MS
    assert await h.reject(_envelope(timestamp_ms=NOW_MS - 1)) == (
        GrpcCode.FAILED_PRECONDITION,
        "request timestamp is outside the freshness window",
    )
    await h.pipeline.verify(_envelope(request_id="r-new", timestamp_ms=NOW_MS), "10.0.0.1")


async def test_step8_replay_store_failure_fails_closed() -> None:
    h = Harness()
    h.replay.fail = True
    assert await h.reject(_envelope()) == (GrpcCode.UNAVAILABLE, "replay store is unavailable")


async def test_step9_rate_limits_per_dimension() -> None:
    h = Harness()
    for n in range(3):  # session burst is 3 in SETTINGS
        await h.pipeline.verify(_envelope(request_id=f"r-{n}"), "10.0.0.1")
    assert await h.reject(_envelope(request_id="r-3")) == (
        GrpcCode.RESOURCE_EXHAUSTED,
        "authenticated request rate limit exceeded",
    )
    assert "authenticated_grpc/session=ds-1" in h.limiter._buckets
    assert {k.split("=")[0] for k in h.limiter._buckets} == {
        "authenticated_grpc/session_lookup_ip",  # the first request missed the cache
        "authenticated_grpc/ip",
        "authenticated_grpc/session",
        "authenticated_grpc/user",
        "authenticated_grpc/message_class",
    }


async def test_step9_rate_limit_says_when_to_retry() -> None:
    h = Harness()
    h.limiter = TokenBucketLimiter(clock=lambda: 0.0)  # frozen: no refill between calls
    pipeline = VerificationPipeline(
        sessions=h.cache,
        replay=h.replay,
        limiter=h.limiter,
        anti_abuse=SETTINGS.anti_abuse,
        freshness_window=WINDOW,
        clock_ms=lambda: NOW_MS,
    )
    for n in range(3):
        await pipeline.verify(_envelope(request_id=f"r-{n}"), "10.0.0.1")
    with pytest.raises(EdgeError) as err:
        await pipeline.verify(_envelope(request_id="r-3"), "10.0.0.1")
    # 60 requests per minute (the spec's session default): one token per second.
    assert (err.value.reject, err.value.retry_after) == (Reject.RATE_LIMITED, 1)


def test_only_rate_limits_carry_retry_after() -> None:
    assert EdgeError(Reject.RATE_LIMITED, retry_after=30).retry_after == 30
    assert EdgeError(Reject.RATE_LIMITED).retry_after is None
    with pytest.raises(ValueError, match="only RATE_LIMITED"):
        EdgeError(Reject.REPLAY_DETECTED, retry_after=30)
    with pytest.raises(ValueError, match="at least 1 second"):
        EdgeError(Reject.RATE_LIMITED, retry_after=0)


async def test_step9_policy_hook_denies() -> None:
    h = Harness()
    pipeline = VerificationPipeline(
        sessions=h.cache,
        replay=h.replay,
        limiter=h.limiter,
        anti_abuse=SETTINGS.anti_abuse,
        freshness_window=WINDOW,
        policy=DenyPolicy(),
        clock_ms=lambda: NOW_MS,
    )
    with pytest.raises(EdgeError) as err:
        await pipeline.verify(_envelope(), "10.0.0.1")
    assert (err.value.grpc_code, err.value.message) == (
        GrpcCode.PERMISSION_DENIED,
        "request denied by edge policy",
    )


async def test_order_signature_is_checked_before_freshness_and_replay() -> None:
    h = Harness()
    stale_and_forged = _envelope(OTHER, timestamp_ms=NOW_MS - 999_999)
    assert await h.reject(stale_and_forged) == (
        GrpcCode.UNAUTHENTICATED,
        "invalid request signature",
    )
    assert h.replay.seen == {}  # nothing was reserved for a forged request


async def test_order_unknown_session_before_payload_hash() -> None:
    envelope = _envelope(device_session_id="ds-404", payload_hash=b"\x00")
    assert await Harness().reject(envelope) == (GrpcCode.UNAUTHENTICATED, "unknown device session")


async def test_rejected_requests_do_not_consume_rate_limit_tokens() -> None:
    h = Harness()
    for _ in range(10):
        await h.reject(_envelope(OTHER))
    # Only the one cache miss spent a token (the lookup budget); step 9 spent none.
    assert list(h.limiter._buckets) == ["authenticated_grpc/session_lookup_ip=10.0.0.1"]


@pytest.mark.parametrize(
    ("peer", "ip"),
    [
        ("10.1.2.3:5555", "10.1.2.3"),
        ("::1:5555", "::1"),
        ("[fe80::1%eth0]:5555", "fe80::1"),
        ("::ffff:10.1.2.3:5555", "10.1.2.3"),
        ("/tmp/sock", "unknown"),
        ("not-an-ip:1", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_peer_ip(peer: str | None, ip: str) -> None:
    assert peer_ip_from_address(peer) == ip
