"""Public REST errors: ``{"error": {"code", "message"}}`` with the catalog's codes.

``PublicError`` is what the edge and the handlers raise; ``exception_handlers``
replaces every default Litestar handler (validation, 404, 405, 413, 500, ...)
so nothing but this shape, and never a stack trace or an internal message,
reaches a client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from litestar import Request, Response
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException

from edgecore.errors import EdgeError, Reject
from public_rest.context import current_context

__all__ = [
    "JSON_CONTENT_TYPE",
    "PublicError",
    "default_code_for_status",
    "default_message_for_status",
    "error_body",
    "exception_handlers",
]

JSON_CONTENT_TYPE: Final = "application/json"
_log = logging.getLogger("public_rest.errors")

_UNAVAILABLE: Final = (
    Reject.BACKEND_UNAVAILABLE.spec.rest_code,
    Reject.BACKEND_UNAVAILABLE.spec.public_message,
)
# Fallbacks for statuses the catalog does not name (and for blank upstream fields).
_DEFAULT_CODES: Final[Mapping[int, tuple[str, str]]] = {
    400: (Reject.MALFORMED_REQUEST.spec.rest_code, Reject.MALFORMED_REQUEST.spec.public_message),
    401: ("unauthenticated", "request is not authenticated"),
    403: (Reject.POLICY_DENIED.spec.rest_code, Reject.POLICY_DENIED.spec.public_message),
    404: (Reject.ROUTE_NOT_FOUND.spec.rest_code, Reject.ROUTE_NOT_FOUND.spec.public_message),
    405: (Reject.METHOD_NOT_ALLOWED.spec.rest_code, Reject.METHOD_NOT_ALLOWED.spec.public_message),
    409: ("conflict", "request conflicts with the current state"),
    410: ("gone", "resource is no longer available"),
    413: (Reject.REQUEST_TOO_LARGE.spec.rest_code, Reject.REQUEST_TOO_LARGE.spec.public_message),
    429: (Reject.RATE_LIMITED.spec.rest_code, Reject.RATE_LIMITED.spec.public_message),
    500: (Reject.INTERNAL_ERROR.spec.rest_code, Reject.INTERNAL_ERROR.spec.public_message),
    502: _UNAVAILABLE,
    503: _UNAVAILABLE,
    504: _UNAVAILABLE,
}


def default_code_for_status(status: int) -> str:
    if status in _DEFAULT_CODES:
        return _DEFAULT_CODES[status][0]
    return _DEFAULT_CODES[400 if status < 500 else 500][0]


def default_message_for_status(status: int) -> str:
    if status in _DEFAULT_CODES:
        return _DEFAULT_CODES[status][1]
    return "request failed" if status < 500 else _DEFAULT_CODES[500][1]


def error_body(code: str, message: str) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message}}, ensure_ascii=False, separators=(",", ":")
    ).encode()


class PublicError(Exception):
    """An error answer: status, code, message, extra headers, and the metrics reason."""

    __slots__ = ("code", "headers", "message", "reason", "status")

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        reason: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        self.headers = dict(headers or {})
        super().__init__(f"{status} {code}")

    @classmethod
    def of(
        cls,
        reject: Reject,
        message: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> PublicError:
        spec = reject.spec
        return cls(
            spec.http_status,
            spec.rest_code,
            message or spec.public_message,
            reason=reason or spec.reason,
            headers=headers,
        )

    @classmethod
    def malformed(cls, message: str) -> PublicError:
        return cls.of(Reject.MALFORMED_REQUEST, message)

    @classmethod
    def rate_limited(cls, retry_after: int, *, reason: str = "rate_limited") -> PublicError:
        return cls.of(
            Reject.RATE_LIMITED, headers={"Retry-After": str(max(1, retry_after))}, reason=reason
        )

    @property
    def body(self) -> bytes:
        return error_body(self.code, self.message)

    def to_response(self) -> Response[bytes]:
        context = current_context()
        if context is not None:
            context.result = self.reason
        return Response(
            content=self.body,
            status_code=self.status,
            media_type=JSON_CONTENT_TYPE,
            headers=self.headers,
        )


def _public_error(_: Request[Any, Any, Any], exc: PublicError) -> Response[bytes]:
    return exc.to_response()


def _edge_error(_: Request[Any, Any, Any], exc: EdgeError) -> Response[bytes]:
    spec = exc.reject.spec
    message = exc.message if exc.reject is Reject.MALFORMED_REQUEST else spec.public_message
    return PublicError(spec.http_status, spec.rest_code, message, reason=spec.reason).to_response()


def _not_found(_: Request[Any, Any, Any], __: NotFoundException) -> Response[bytes]:
    return PublicError.of(Reject.ROUTE_NOT_FOUND).to_response()


def _method_not_allowed(
    _: Request[Any, Any, Any], exc: MethodNotAllowedException
) -> Response[bytes]:
    allow = (exc.headers or {}).get("allow") or (exc.headers or {}).get("Allow") or ""
    return PublicError.of(
        Reject.METHOD_NOT_ALLOWED, headers={"Allow": allow} if allow else None
    ).to_response()


def _http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    # Litestar's own 4xx (validation, body size, ...): the status stays, the text is ours.
    status = exc.status_code if 400 <= exc.status_code <= 499 else 500
    if status == 400:
        return PublicError.of(Reject.MALFORMED_REQUEST).to_response()
    if status == 413:
        return PublicError.of(Reject.REQUEST_TOO_LARGE).to_response()
    if status == 500:
        _log.error("unhandled framework error", extra={"exc_kind": type(exc).__name__})
        return PublicError.of(Reject.INTERNAL_ERROR).to_response()
    reason = "rejected" if status < 500 else "internal_error"
    return PublicError(
        status,
        default_code_for_status(status),
        default_message_for_status(status),
        reason=reason,
    ).to_response()


def _internal_error(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # The exception type only: its message may carry request data.
    _log.error("unhandled error", extra={"exc_kind": type(exc).__name__})
    return PublicError.of(Reject.INTERNAL_ERROR).to_response()


def exception_handlers() -> dict[type[Exception] | int, Any]:
    return {
        PublicError: _public_error,
        EdgeError: _edge_error,
        NotFoundException: _not_found,
        MethodNotAllowedException: _method_not_allowed,
        HTTPException: _http_exception,
        Exception: _internal_error,
    }
