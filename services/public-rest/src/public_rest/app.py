"""The public REST application: Litestar routes behind the public edge.

``build_app`` wires everything from explicit parts (tests inject fakes);
``build_app_from_settings`` is the production wiring from ``PublicRestSettings``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, cast

from litestar import Litestar, Request, Response, get, post
from opentelemetry.trace import Tracer

from edgecore.config import PublicRestSettings
from edgecore.config.sections import PublicAntiAbuseSettings
from edgecore.errors import Reject
from public_rest.audit import FailureTracker
from public_rest.auth import AuthCaller, AuthServiceClient, UnavailableAuthServiceClient
from public_rest.browser import BrowserHandler, NotConfiguredBrowserHandler
from public_rest.classifier import (
    CONFIRM_EMAIL_CODE_PATH,
    HEALTHZ_PATH,
    READYZ_PATH,
    SEND_EMAIL_CODE_PATH,
    DefaultPublicTrafficClassifier,
    PublicTrafficClassifier,
)
from public_rest.context import current_context
from public_rest.edge import ASGIApp, PublicEdge
from public_rest.errors import JSON_CONTENT_TYPE, PublicError, exception_handlers
from public_rest.language import resolve_preferred_language
from public_rest.metrics import PublicRestMetrics
from public_rest.policy import PublicPolicy
from public_rest.ratelimit import InMemoryRateLimiter, RateLimiter
from public_rest.readiness import Readiness
from public_rest.validation import (
    ValidationProblem,
    parse_confirm_email_code,
    parse_send_email_code,
)

__all__ = ["PublicRestApp", "build_app"]

_HEALTHY: Final = b'{"status":"ok"}'
_READY: Final = b'{"status":"ready"}'


def _json(payload: dict[str, str]) -> Response[bytes]:
    context = current_context()
    if context is not None:
        context.result = "ok"
    return Response(
        content=json.dumps(payload, separators=(",", ":")).encode(),
        status_code=200,
        media_type=JSON_CONTENT_TYPE,
    )


def _malformed(problem: ValidationProblem) -> PublicError:
    context = current_context()
    if context is not None:
        context.extra["field"] = problem.field
    return PublicError.malformed(problem.message)


def _check_content_type(request: Request[Any, Any, Any]) -> None:
    """No Content-Type is accepted (non-browser clients); any other than JSON is not,
    which also keeps cross-site "simple" browser form posts out."""
    value = request.headers.get("content-type")
    if value is None:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    raise _malformed(ValidationProblem("content_type", "Content-Type must be application/json"))


@dataclass
class PublicRestApp:
    """The assembled ASGI app and the parts the process manages around it."""

    asgi: PublicEdge
    litestar: Litestar
    metrics: PublicRestMetrics
    readiness: Readiness
    limiter: RateLimiter
    auth: AuthServiceClient

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.asgi(scope, receive, send)


def build_app(
    *,
    anti_abuse: PublicAntiAbuseSettings,
    auth_upstream_timeout: timedelta,
    read_timeout: timedelta,
    auth_client: AuthServiceClient | None = None,
    readiness: Readiness | None = None,
    browser: BrowserHandler | None = None,
    classifier: PublicTrafficClassifier | None = None,
    limiter: RateLimiter | None = None,
    metrics: PublicRestMetrics | None = None,
    tracker: FailureTracker | None = None,
    trace_requests: bool = True,
    tracer: Tracer | None = None,
) -> PublicRestApp:
    auth = auth_client or UnavailableAuthServiceClient()
    caller = AuthCaller(auth, auth_upstream_timeout)
    readiness = readiness or Readiness(None)
    limiter = limiter or InMemoryRateLimiter()
    metrics = metrics or PublicRestMetrics()
    if isinstance(limiter, InMemoryRateLimiter):
        metrics.track_limiter(limiter)
    tracker = tracker or FailureTracker(
        on_event=lambda cls, signal: metrics.abuse_events.labels(cls, signal).inc()
    )
    policy = PublicPolicy(anti_abuse, limiter)

    @get(HEALTHZ_PATH, sync_to_thread=False)
    def healthz() -> Response[bytes]:
        context = current_context()
        if context is not None:
            context.result = "ok"
        return Response(content=_HEALTHY, media_type=JSON_CONTENT_TYPE)

    @get(READYZ_PATH)
    async def readyz() -> Response[bytes]:
        if not await readiness.ready():
            raise PublicError.of(Reject.BACKEND_UNAVAILABLE, reason="not_ready")
        context = current_context()
        if context is not None:
            context.result = "ok"
        return Response(content=_READY, media_type=JSON_CONTENT_TYPE)

    @post(SEND_EMAIL_CODE_PATH, status_code=200)
    async def send_email_code(request: Request[Any, Any, Any]) -> Response[bytes]:
        _check_content_type(request)
        try:
            command = parse_send_email_code(await request.body())
        except ValidationProblem as problem:
            raise _malformed(problem) from None
        decision = policy.check_send_identity(command.identity)
        if not decision.allowed:
            raise PublicError.rate_limited(decision.retry_after, reason="identity_rate_limited")
        language = resolve_preferred_language(request.headers.get("accept-language"))
        challenge_id = await caller.call(
            "send_email_code", auth.send_email_code(command.email, language)
        )
        return _json({"challenge_id": challenge_id})

    @post(CONFIRM_EMAIL_CODE_PATH, status_code=200)
    async def confirm_email_code(request: Request[Any, Any, Any]) -> Response[bytes]:
        _check_content_type(request)
        try:
            command = parse_confirm_email_code(await request.body())
        except ValidationProblem as problem:
            raise _malformed(problem) from None
        decision = policy.check_confirm_identity(command.identity)
        if not decision.allowed:
            raise PublicError.rate_limited(decision.retry_after, reason="identity_rate_limited")
        device_session_id = await caller.call(
            "confirm_email_code",
            auth.confirm_email_code(
                command.challenge_id, command.code, command.client_public_key, command.time_zone
            ),
        )
        return _json({"device_session_id": device_session_id})

    litestar = Litestar(
        route_handlers=[healthz, readyz, send_email_code, confirm_email_code],
        exception_handlers=exception_handlers(),
        debug=False,
        openapi_config=None,
        logging_config=None,
    )
    edge = PublicEdge(
        cast("ASGIApp", litestar),
        policy=policy,
        classifier=classifier or DefaultPublicTrafficClassifier(),
        browser=browser or NotConfiguredBrowserHandler(),
        metrics=metrics,
        tracker=tracker,
        read_timeout=read_timeout.total_seconds(),
        trace_requests=trace_requests,
        tracer=tracer,
    )
    return PublicRestApp(
        asgi=edge,
        litestar=litestar,
        metrics=metrics,
        readiness=readiness,
        limiter=limiter,
        auth=auth,
    )


def build_app_from_settings(
    settings: PublicRestSettings,
    *,
    auth_client: AuthServiceClient | None = None,
    readiness: Readiness | None = None,
    browser: BrowserHandler | None = None,
    metrics: PublicRestMetrics | None = None,
) -> PublicRestApp:
    return build_app(
        anti_abuse=settings.anti_abuse,
        auth_upstream_timeout=settings.http.auth_upstream_timeout,
        read_timeout=settings.http.read_timeout,
        auth_client=auth_client,
        readiness=readiness,
        browser=browser,
        metrics=metrics,
        # Spans are only worth their cost when something exports them.
        trace_requests=settings.telemetry.traces_exporter != "none",
    )
