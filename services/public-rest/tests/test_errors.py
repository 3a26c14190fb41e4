"""Upstream error projection and the error shapes."""

from __future__ import annotations

import json

import pytest

from edgecore.errors import Reject
from public_rest.auth import AuthServiceError, project_auth_error
from public_rest.errors import (
    PublicError,
    default_code_for_status,
    default_message_for_status,
    error_body,
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (AuthServiceError(400, "invalid_code", "wrong code, 4 attempts left"),
         (400, "invalid_code", "wrong code, 4 attempts left")),
        (AuthServiceError(404, "challenge_not_found", " unknown challenge "),
         (404, "challenge_not_found", "unknown challenge")),
        (AuthServiceError(429, "too_many_attempts", ""), (429, "too_many_attempts", "rate limit exceeded")),
        (AuthServiceError(410, "", "expired"), (410, "gone", "expired")),
        (AuthServiceError(400, "  ", "  "), (400, "invalid_request", "request is malformed")),
        (AuthServiceError(404, "Not-A-Code", ""), (404, "not_found", "route not found")),
        (AuthServiceError(418, "", ""), (418, "invalid_request", "request failed")),
        (AuthServiceError(503, "", ""), (503, "service_unavailable", "service is unavailable")),
        (AuthServiceError(502, "bad", "x"), (502, "bad", "x")),
        (AuthServiceError(599, "", ""), (599, "internal_error", "internal error")),
        (AuthServiceError(200, "ok", "fine"), (500, "internal_error", "internal error")),
        (AuthServiceError(302, "moved", "m"), (500, "internal_error", "internal error")),
        (AuthServiceError(600, "x", "y"), (500, "internal_error", "internal error")),
        (AuthServiceError(399, "x", "y"), (500, "internal_error", "internal error")),
        (AuthServiceError(400, "x", "line1\r\nline2\x00"), (400, "x", "line1 line2")),
    ],
)  # fmt: skip
def test_projection_normalizes_blank_and_invalid_fields(
    error: AuthServiceError, expected: tuple[int, str, str]
) -> None:
    projected = project_auth_error(error)
    assert (projected.status, projected.code, projected.message) == expected


def test_projection_bounds_the_message() -> None:
    projected = project_auth_error(AuthServiceError(400, "x", "m" * 5000))
    assert len(projected.message) == 512


def test_projection_of_garbage_types() -> None:
    projected = project_auth_error(AuthServiceError("400", None, None))  # type: ignore[arg-type]
    assert projected.status == 500
    projected = project_auth_error(AuthServiceError(400, None, None))  # type: ignore[arg-type]
    assert (projected.status, projected.code, projected.message) == (
        400,
        "invalid_request",
        "request is malformed",
    )


def test_error_body_shape() -> None:
    assert json.loads(error_body("rate_limited", "rate limit exceeded")) == {
        "error": {"code": "rate_limited", "message": "rate limit exceeded"}
    }


def test_catalog_errors() -> None:
    cases = {
        Reject.MALFORMED_REQUEST: (400, "invalid_request"),
        Reject.ROUTE_NOT_FOUND: (404, "not_found"),
        Reject.METHOD_NOT_ALLOWED: (405, "method_not_allowed"),
        Reject.REQUEST_TOO_LARGE: (413, "request_too_large"),
        Reject.RATE_LIMITED: (429, "rate_limited"),
        Reject.INTERNAL_ERROR: (500, "internal_error"),
        Reject.BACKEND_UNAVAILABLE: (503, "service_unavailable"),
    }
    for reject, (status, code) in cases.items():
        error = PublicError.of(reject)
        assert (error.status, error.code, error.message) == (
            status,
            code,
            reject.spec.public_message,
        )
    limited = PublicError.rate_limited(0)
    assert limited.headers == {"Retry-After": "1"}


def test_defaults_per_status() -> None:
    assert default_code_for_status(404) == "not_found"
    assert default_code_for_status(451) == "invalid_request"
    assert default_code_for_status(507) == "internal_error"
    assert default_message_for_status(429) == "rate limit exceeded"
    assert default_message_for_status(504) == "service is unavailable"
