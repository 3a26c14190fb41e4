"""The HTTP layer: the backend contract as a Litestar app, wrapped in HMAC verification.

Routes (docs/mock-backend.md):

* ``POST /api/v1/public/auth/send-email-code`` and ``.../confirm-email-code``
  (unsigned);
* ``GET /api/v1/internal/sessions/{device_session_id}`` (HMAC-signed);
* the 18 ``POST /api/v1/user/...`` message-type routes (HMAC-signed, need
  ``X-User-Id``);
* ``/api/v1/dev/*`` when enabled (unsigned), and ``GET /healthz``.

Request bodies are checked strictly; bad input is 400 ``invalid_argument``
with the field named, never a 500. After a successful call the store's
outbox is published to Redis; when that fails the answer is 503
``service_unavailable`` (the store change is *not* rolled back).

Logging: one line per request with method, path (no query string), status
and duration. Bodies, e-mail addresses, codes, challenge ids and public keys
are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler

from edgecore.backend.routes import (
    BACKEND_ROUTES,
    CONFIRM_EMAIL_CODE_PATH,
    HEADER_DEVICE_SESSION_ID,
    HEADER_MESSAGE_TYPE,
    HEADER_TRACE_ID,
    HEADER_USER_ID,
    SEND_EMAIL_CODE_PATH,
    SESSION_LOOKUP_PATH,
    BackendRoute,
)
from edgecore.fbjson import FbJsonError, FlatBuffersJsonCodec
from edgecore.internal_auth import HmacVerifierMiddleware, NonceStore
from mock_backend.errors import BackendError, invalid_argument
from mock_backend.publish import OutboxPublisher, PublishError
from mock_backend.store import Caller, Result, Store

__all__ = ["MAX_BODY_BYTES", "MAX_LATENCY_MS", "AppState", "build_app", "build_litestar"]

MAX_BODY_BYTES: Final = 1024 * 1024
MAX_LATENCY_MS: Final = 60_000
_MAX_HEADER_ID: Final = 256
_MAX_TRACE_ID: Final = 128

logger = logging.getLogger("mock_backend")

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


@dataclass(slots=True)
class AppState:
    """Everything the handlers share. ``lock`` serialises store changes and their publishing,
    so the streams carry events in the order the store made them."""

    store: Store
    publisher: OutboxPublisher
    codec: FlatBuffersJsonCodec
    dev_endpoints: bool = False
    latency_ms: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def delay(self) -> None:
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)


# --- helpers ------------------------------------------------------------------


def _error(exc: BackendError) -> Response[Any]:
    return Response(content=exc.to_json(), status_code=exc.status)


def _unavailable() -> Response[Any]:
    return _error(BackendError(503, "service_unavailable", "service is unavailable"))


def _reject_constant(text: str) -> Any:
    raise ValueError(f"{text} is not allowed")


def _parse_json(body: bytes, *, empty_is_object: bool) -> dict[str, Any]:
    if not body.strip():
        if empty_is_object:
            return {}
        raise invalid_argument("body", "must be a JSON object")
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise invalid_argument("body", "is not valid JSON") from None
    if not isinstance(value, dict):
        raise invalid_argument("body", "must be a JSON object")
    return value


def _parse_fields(body: bytes, fields: Mapping[str, type]) -> dict[str, Any]:
    """A flat JSON object with only ``fields`` (each of its type, or null = absent)."""
    value = _parse_json(body, empty_is_object=False)
    for key, item in value.items():
        expected = fields.get(key)
        if expected is None:
            raise invalid_argument(key, "unknown field")
        if item is None:
            continue
        if expected is int and (isinstance(item, bool) or not isinstance(item, int)):
            raise invalid_argument(key, "must be an integer")
        if expected is str and not isinstance(item, str):
            raise invalid_argument(key, "must be a string")
    return {k: v for k, v in value.items() if v is not None}


def _parse_table(codec: FlatBuffersJsonCodec, table: str, body: bytes) -> dict[str, Any]:
    """Check ``body`` against a FlatBuffers table's JSON mapping and normalise it
    (a round trip through the codec: defaults filled in, nulls dropped)."""
    value = _parse_json(body, empty_is_object=True)
    try:
        return codec.decode(table, codec.encode(table, value))
    except FbJsonError as exc:
        text = str(exc)
        rest = text[len(table) :] if text.startswith(table) else ": " + text
        if rest.startswith("."):
            raise invalid_argument(*rest[1:].split(": ", 1)) from None
        raise invalid_argument("body", rest.removeprefix(": ")) from None


def _header_id(request: Request[Any, Any, Any], name: str, limit: int) -> str | None:
    value = request.headers.get(name, "").strip()
    if not value or len(value) > limit or not value.isascii() or not value.isprintable():
        return None
    return value


# --- handlers -----------------------------------------------------------------


def _routes(state: AppState) -> list[HTTPRouteHandler]:
    async def run(operation: Callable[[], Result], trace_id: str | None = None) -> Response[Any]:
        async with state.lock:
            try:
                result = operation()
            except BackendError as exc:
                return _error(exc)
            if not result.outbox.empty:
                try:
                    await state.publisher.publish(result.outbox, trace_id=trace_id)
                except PublishError as exc:
                    logger.error("outbox publish failed: %s", exc)
                    return _unavailable()
        return Response(content=result.body, status_code=200)

    def user_handler(route: BackendRoute) -> HTTPRouteHandler:
        async def handler(request: Request[Any, Any, Any]) -> Response[Any]:
            await state.delay()
            user_id = _header_id(request, HEADER_USER_ID, _MAX_HEADER_ID)
            if user_id is None:
                return _error(
                    BackendError(401, "unauthenticated", f"{HEADER_USER_ID} header is required")
                )
            message_type = request.headers.get(HEADER_MESSAGE_TYPE)
            if message_type is not None and message_type != route.message_type:
                return _error(invalid_argument(HEADER_MESSAGE_TYPE, "does not match the route"))
            try:
                req = _parse_table(state.codec, route.request_table, await request.body())
            except BackendError as exc:
                return _error(exc)
            caller = Caller(
                user_id=user_id,
                device_session_id=_header_id(request, HEADER_DEVICE_SESSION_ID, _MAX_HEADER_ID),
            )
            trace_id = _header_id(request, HEADER_TRACE_ID, _MAX_TRACE_ID)
            return await run(lambda: state.store.execute(route.message_type, caller, req), trace_id)

        return post(route.path, name=route.message_type)(handler)

    @post(SEND_EMAIL_CODE_PATH, name="send-email-code")
    async def send_email_code(request: Request[Any, Any, Any]) -> Response[Any]:
        await state.delay()
        try:
            req = _parse_fields(await request.body(), {"email": str, "preferred_language": str})
        except BackendError as exc:
            return _error(exc)
        return await run(lambda: state.store.send_email_code(req))

    @post(CONFIRM_EMAIL_CODE_PATH, name="confirm-email-code")
    async def confirm_email_code(request: Request[Any, Any, Any]) -> Response[Any]:
        await state.delay()
        try:
            req = _parse_fields(
                await request.body(),
                {"challenge_id": str, "code": str, "client_public_key": str, "time_zone": str},
            )
        except BackendError as exc:
            return _error(exc)
        user_agent = request.headers.get("user-agent", "")
        metadata = {"user_agent": user_agent} if user_agent.isprintable() and user_agent else {}
        return await run(lambda: state.store.confirm_email_code(req, client_metadata=metadata))

    @get(SESSION_LOOKUP_PATH.replace("}", ":str}"), name="session-lookup")
    async def session_lookup(request: Request[Any, Any, Any]) -> Response[Any]:
        await state.delay()
        try:
            record = state.store.session_record(request.path_params["device_session_id"])
        except BackendError as exc:
            return _error(exc)
        return Response(content=record.to_json_dict(), status_code=200)

    @get("/healthz", name="healthz")
    async def healthz() -> Response[Any]:
        return Response(content={"status": "ok"}, status_code=200)

    handlers: list[HTTPRouteHandler] = [
        send_email_code,
        confirm_email_code,
        session_lookup,
        healthz,
    ]
    handlers += [user_handler(route) for route in BACKEND_ROUTES.values()]
    if state.dev_endpoints:
        handlers += _dev_routes(state, run)
    return handlers


def _dev_routes(
    state: AppState, run: Callable[[Callable[[], Result]], Awaitable[Response[Any]]]
) -> list[HTTPRouteHandler]:
    @get("/api/v1/dev/login-code", name="dev-login-code")
    async def login_code(request: Request[Any, Any, Any]) -> Response[Any]:
        email = request.query_params.get("email", "").strip()
        if not email:
            return _error(invalid_argument("email", "query parameter is required"))
        try:
            return Response(content=state.store.dev_login_code(email), status_code=200)
        except BackendError as exc:
            return _error(exc)

    @post("/api/v1/dev/invites", name="dev-invites")
    async def create_invite(request: Request[Any, Any, Any]) -> Response[Any]:
        try:
            req = _parse_fields(
                await request.body(),
                {"game_id": str, "inviter_user_id": str, "invitee_email": str},
            )
        except BackendError as exc:
            return _error(exc)
        return await run(lambda: state.store.dev_create_invite(req))

    @post("/api/v1/dev/games/{game_id:str}/advance-turn", name="dev-advance-turn")
    async def advance_turn(request: Request[Any, Any, Any]) -> Response[Any]:
        game_id = request.path_params["game_id"]
        return await run(lambda: state.store.dev_advance_turn(game_id))

    @post("/api/v1/dev/applications/{application_id:str}/approve", name="dev-approve")
    async def approve(request: Request[Any, Any, Any]) -> Response[Any]:
        application_id = request.path_params["application_id"]
        return await run(lambda: state.store.dev_decide_application(application_id, approve=True))

    @post("/api/v1/dev/applications/{application_id:str}/reject", name="dev-reject")
    async def reject(request: Request[Any, Any, Any]) -> Response[Any]:
        application_id = request.path_params["application_id"]
        body = await request.body()
        try:
            req = _parse_fields(body, {"reason": str}) if body.strip() else {}
        except BackendError as exc:
            return _error(exc)
        reason = str(req.get("reason") or "").strip()[:500] or None
        return await run(
            lambda: state.store.dev_decide_application(application_id, approve=False, reason=reason)
        )

    @post("/api/v1/dev/latency", name="dev-latency")
    async def latency(request: Request[Any, Any, Any]) -> Response[Any]:
        try:
            req = _parse_fields(await request.body(), {"ms": int})
            ms = req.get("ms")
            if ms is None or not 0 <= ms <= MAX_LATENCY_MS:
                raise invalid_argument("ms", f"must be an integer from 0 to {MAX_LATENCY_MS}")
        except BackendError as exc:
            return _error(exc)
        state.latency_ms = ms
        logger.info("dev: added latency is now %d ms", ms)
        return Response(content={"ms": ms}, status_code=200)

    return [login_code, create_invite, advance_turn, approve, reject, latency]


# --- error shapes for framework-level failures ---------------------------------

_HTTP_CODES: Final = {
    400: ("invalid_argument", "body: request is malformed"),
    404: ("not_found", "route not found"),
    405: ("method_not_allowed", "method is not allowed"),
    413: ("request_too_large", "request body is too large"),
}


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    code, message = _HTTP_CODES.get(exc.status_code, ("invalid_request", "request is invalid"))
    if exc.status_code >= 500:
        code, message = "internal_error", "internal error"
    headers = {"Allow": exc.headers["Allow"]} if exc.headers and "Allow" in exc.headers else None
    return Response(
        content={"error": {"code": code, "message": message}},
        status_code=exc.status_code,
        headers=headers,
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # The exception text may quote request data: log its type only.
    logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return Response(
        content={"error": {"code": "internal_error", "message": "internal error"}},
        status_code=500,
    )


def build_litestar(
    state: AppState,
    *,
    on_startup: list[Callable[[], Awaitable[None]]] | None = None,
    on_shutdown: list[Callable[[], Awaitable[None]]] | None = None,
) -> Litestar:
    return Litestar(
        route_handlers=_routes(state),
        exception_handlers={HTTPException: _http_exception, Exception: _unexpected},
        on_startup=on_startup or [],
        on_shutdown=on_shutdown or [],
        logging_config=None,
        openapi_config=None,
        request_max_body_size=MAX_BODY_BYTES,
        debug=False,
    )


class _AccessLog:
    """One log line per HTTP request: method, path (never the query), status, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message.get("type") == "http.response.start":
                status = int(message.get("status", 0))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            logger.info(
                "%s %s %d %.1fms",
                str(scope.get("method", "-"))[:16],
                str(scope.get("path", ""))[:256],
                status,
                (time.perf_counter() - started) * 1000,
            )


def build_app(
    state: AppState,
    *,
    hmac_secret: bytes,
    nonce_store: NonceStore,
    on_startup: list[Callable[[], Awaitable[None]]] | None = None,
    on_shutdown: list[Callable[[], Awaitable[None]]] | None = None,
) -> ASGIApp:
    """The full ASGI app: access log -> HMAC verifier (internal + user routes) -> Litestar."""
    app = build_litestar(state, on_startup=on_startup, on_shutdown=on_shutdown)
    verified = HmacVerifierMiddleware(
        app, secret=hmac_secret, nonce_store=nonce_store, max_body_bytes=MAX_BODY_BYTES
    )
    return _AccessLog(verified)
