"""The catalog holds the specification's codes and messages verbatim."""

from __future__ import annotations

import grpc
import pytest

from edgecore.errors import CATALOG, EdgeError, GrpcCode, Reject

# (reject, gRPC code, message) exactly as the specification writes them.
SPECIFIED = [
    (
        Reject.INVALID_PAYLOAD_HASH,
        GrpcCode.INVALID_ARGUMENT,
        "payload_hash must be a 32-byte SHA-256 digest",
    ),
    (
        Reject.PAYLOAD_HASH_MISMATCH,
        GrpcCode.INVALID_ARGUMENT,
        "payload_hash does not match payload_bytes",
    ),
    (Reject.INVALID_SIGNATURE, GrpcCode.UNAUTHENTICATED, "invalid request signature"),
    (Reject.SESSION_CACHE_UNAVAILABLE, GrpcCode.UNAVAILABLE, "session cache is unavailable"),
    (
        Reject.STALE_REQUEST,
        GrpcCode.FAILED_PRECONDITION,
        "request timestamp is outside the freshness window",
    ),
    (Reject.REPLAY_DETECTED, GrpcCode.FAILED_PRECONDITION, "request replay detected"),
    (Reject.REPLAY_STORE_UNAVAILABLE, GrpcCode.UNAVAILABLE, "replay store is unavailable"),
    (Reject.RATE_LIMITED, GrpcCode.RESOURCE_EXHAUSTED, "authenticated request rate limit exceeded"),
    (Reject.ROUTE_NOT_FOUND, GrpcCode.UNIMPLEMENTED, "message_type is not routed"),
    (Reject.DOWNSTREAM_UNAVAILABLE, GrpcCode.UNAVAILABLE, "downstream service is unavailable"),
    (Reject.SHUTTING_DOWN, GrpcCode.UNAVAILABLE, "gateway is shutting down"),
    (Reject.PUSH_STREAM_OVERFLOWED, GrpcCode.RESOURCE_EXHAUSTED, "push stream overflowed"),
    (Reject.REVOKED_SESSION, GrpcCode.FAILED_PRECONDITION, "device session is revoked"),
    (Reject.MALFORMED_REQUEST, GrpcCode.INVALID_ARGUMENT, "request envelope is malformed"),
    (Reject.UNSUPPORTED_PROTOCOL, GrpcCode.FAILED_PRECONDITION, "unsupported protocol_version"),
    (Reject.UNKNOWN_SESSION, GrpcCode.UNAUTHENTICATED, "unknown device session"),
    (Reject.INTERNAL_ERROR, GrpcCode.INTERNAL, "internal error"),
]

# REST status and code the specification fixes for the public surface.
SPECIFIED_REST = [
    (Reject.REQUEST_TOO_LARGE, 413, "request_too_large"),
    (Reject.RATE_LIMITED, 429, "rate_limited"),
    (Reject.BACKEND_UNAVAILABLE, 503, "service_unavailable"),
    (Reject.INTERNAL_ERROR, 500, "internal_error"),
]


@pytest.mark.parametrize(("reject", "code", "message"), SPECIFIED)
def test_grpc_code_and_message(reject: Reject, code: GrpcCode, message: str) -> None:
    assert (reject.spec.grpc_code, reject.spec.message) == (code, message)
    err = EdgeError(reject)
    assert (err.grpc_code, err.message, str(err)) == (code, message, message)


@pytest.mark.parametrize(("reject", "status", "code"), SPECIFIED_REST)
def test_rest_status_and_code(reject: Reject, status: int, code: str) -> None:
    assert (reject.spec.http_status, reject.spec.rest_code) == (status, code)


def test_grpc_codes_mirror_grpcio() -> None:
    for code in GrpcCode:
        assert grpc.StatusCode[code.name].value[0] == code.value


def test_reasons_are_unique_metric_labels() -> None:
    reasons = [spec.reason for spec in CATALOG]
    assert len(reasons) == len(set(reasons))
    assert all(reason.isidentifier() and reason.islower() for reason in reasons)


def test_only_malformed_request_narrows_its_message() -> None:
    err = EdgeError(Reject.MALFORMED_REQUEST, "request_id must not be empty")
    assert err.message == "request_id must not be empty"
    assert err.grpc_code is GrpcCode.INVALID_ARGUMENT
    with pytest.raises(ValueError, match="only MALFORMED_REQUEST"):
        EdgeError(Reject.INVALID_SIGNATURE, "something else")
