"""Upstream error projection and the error shapes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from aiohttp import web

from edgecore.backend.client import BackendClient
from edgecore.errors import Reject
from public_rest.auth import (
    AuthServiceError,
    BackendAuthServiceClient,
    project_auth_error,
)
from public_rest.errors import (
    PublicError,
    default_code_for_status,
    default_message_for_status,
    error_body,
)
from public_rest.testing import CONFIRM


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


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [
        (17, "17"),  # the upstream's own value
        (None, "60"),  # none: DEFAULT_UPSTREAM_RETRY_AFTER_SECONDS
        (0, "1"),
        (7200, "3600"),  # at most an hour
        (-3, "60"),
        ("5", "60"),
        (True, "60"),
    ],
)
def test_projected_429_always_carries_retry_after(retry_after: object, header: str) -> None:
    error = AuthServiceError(429, "too_many_attempts", "slow down", retry_after)  # type: ignore[arg-type]
    projected = project_auth_error(error)
    assert (projected.status, projected.code, projected.message) == (
        429,
        "too_many_attempts",
        "slow down",
    )
    assert projected.headers == {"Retry-After": header}


def test_only_a_projected_429_carries_retry_after() -> None:
    for status in (400, 404, 410, 503):
        assert project_auth_error(AuthServiceError(status, "x", "y", 30)).headers == {}


async def test_backend_adapter_passes_the_backends_retry_after_on() -> None:
    async def too_many(_: web.Request) -> web.Response:
        body = {"error": {"code": "too_many_attempts", "message": "slow down"}}
        return web.json_response(body, status=429, headers={"Retry-After": "42"})

    app = web.Application()
    app.router.add_post(CONFIRM, too_many)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    backend = BackendClient(
        base_url=f"http://127.0.0.1:{runner.addresses[0][1]}", timeout=timedelta(seconds=5)
    )
    try:
        with pytest.raises(AuthServiceError) as err:
            await BackendAuthServiceClient(backend).confirm_email_code("ch", "1", "k", "UTC")
    finally:
        await backend.aclose()
        await runner.cleanup()
    assert err.value == AuthServiceError(429, "too_many_attempts", "slow down", 42)
    assert project_auth_error(err.value).headers == {"Retry-After": "42"}


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
