"""The public auth upstream: the ``AuthServiceClient`` port, its backend adapter, and
the call wrapper that bounds every call and projects every failure onto the contract.

* every call runs under ``GATEWAY_PUBLIC_AUTH_UPSTREAM_TIMEOUT``; when it expires the
  answer is ``503 service_unavailable``;
* ``AuthServiceError`` (a client-safe upstream error) is projected as its status,
  code and message after normalisation (``project_auth_error``); a projected 429
  carries the upstream's ``Retry-After`` or ``DEFAULT_UPSTREAM_RETRY_AFTER_SECONDS``;
* ``AuthServiceUnavailableError`` (upstream unreachable, or none wired) is 503;
* anything else fails closed as ``500 internal_error``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Protocol, TypeVar

from edgecore.backend.client import (
    BackendApiError,
    BackendClient,
    BackendUnavailableError,
    clamp_retry_after,
)
from edgecore.errors import Reject
from public_rest.errors import PublicError, default_code_for_status, default_message_for_status

__all__ = [
    "DEFAULT_UPSTREAM_RETRY_AFTER_SECONDS",
    "MAX_PROJECTED_MESSAGE_LENGTH",
    "AuthCaller",
    "AuthServiceClient",
    "AuthServiceError",
    "AuthServiceUnavailableError",
    "BackendAuthServiceClient",
    "UnavailableAuthServiceClient",
    "project_auth_error",
]

_log = logging.getLogger("public_rest.auth")
_CODE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")
MAX_PROJECTED_MESSAGE_LENGTH: Final = 512
# Retry-After of a projected 429 whose upstream gave none (or an invalid one): the
# contract requires the header on every 429, and a minute keeps a client that obeys
# it off the backend without locking a person out for long (docs/public-rest.md).
DEFAULT_UPSTREAM_RETRY_AFTER_SECONDS: Final = 60
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AuthServiceError(Exception):
    """A client-safe upstream error: projected to the caller after normalisation.

    ``retry_after``: the upstream's own Retry-After in whole seconds, if it sent a
    valid one (the backend adapter passes ``BackendApiError.retry_after`` on).
    """

    status: int
    code: str
    message: str
    retry_after: int | None = None

    def __str__(self) -> str:
        return f"auth service error {self.status}"


class AuthServiceUnavailableError(Exception):
    """The upstream is not there (unreachable, timed out, or not wired at all)."""


class AuthServiceClient(Protocol):
    """Consumer-side port of the Auth / Session Service's public commands."""

    async def send_email_code(self, email: str, preferred_language: str) -> str:
        """-> challenge_id"""
        ...

    async def confirm_email_code(
        self, challenge_id: str, code: str, client_public_key: str, time_zone: str
    ) -> str:
        """-> device_session_id"""
        ...


class UnavailableAuthServiceClient:
    """The default wiring without ``GATEWAY_BACKEND_HTTP_URL``: routes stay, answers are 503."""

    async def send_email_code(self, email: str, preferred_language: str) -> str:
        raise AuthServiceUnavailableError("no auth upstream is configured")

    async def confirm_email_code(
        self, challenge_id: str, code: str, client_public_key: str, time_zone: str
    ) -> str:
        raise AuthServiceUnavailableError("no auth upstream is configured")


class BackendAuthServiceClient:
    """``AuthServiceClient`` over the backend's ``/api/v1/public/auth/*`` routes."""

    def __init__(self, backend: BackendClient) -> None:
        self._backend = backend

    async def send_email_code(self, email: str, preferred_language: str) -> str:
        try:
            return await self._backend.send_email_code(email, preferred_language)
        except BackendApiError as exc:
            raise AuthServiceError(exc.status, exc.code, exc.message, exc.retry_after) from None
        except BackendUnavailableError as exc:
            raise AuthServiceUnavailableError(str(exc)) from None

    async def confirm_email_code(
        self, challenge_id: str, code: str, client_public_key: str, time_zone: str
    ) -> str:
        try:
            return await self._backend.confirm_email_code(
                challenge_id, code, client_public_key, time_zone
            )
        except BackendApiError as exc:
            raise AuthServiceError(exc.status, exc.code, exc.message, exc.retry_after) from None
        except BackendUnavailableError as exc:
            raise AuthServiceUnavailableError(str(exc)) from None

    async def aclose(self) -> None:
        await self._backend.aclose()


def project_auth_error(error: AuthServiceError) -> PublicError:
    """Normalise an upstream error into the public contract.

    * status outside 400-599 (not an error at all): the whole answer is
      untrustworthy, so ``500 internal_error`` with the catalog message;
    * code blank or not ``[a-z][a-z0-9_]{0,63}``: the default code of the status
      (400 invalid_request, 404 not_found, 429 rate_limited, 503
      service_unavailable, other 4xx invalid_request, other 5xx internal_error, ...);
    * message blank: the default message of the status; otherwise trimmed, control
      characters folded to a space, cut at ``MAX_PROJECTED_MESSAGE_LENGTH``;
    * 429: ``Retry-After`` is the upstream's value clamped to 1 s..1 h, or
      ``DEFAULT_UPSTREAM_RETRY_AFTER_SECONDS`` when it gave none (or a negative
      or non-integer one); no other status gets one.
    """
    status = error.status
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        return PublicError.of(Reject.INTERNAL_ERROR, reason="auth_service_invalid_error")
    code = error.code.strip() if isinstance(error.code, str) else ""
    if not _CODE.fullmatch(code):
        code = default_code_for_status(status)
    message = error.message if isinstance(error.message, str) else ""
    message = _CONTROL.sub(" ", message).strip()[:MAX_PROJECTED_MESSAGE_LENGTH].strip()
    if not message:
        message = default_message_for_status(status)
    headers = None
    if status == 429:
        headers = {"Retry-After": str(_retry_after_seconds(error.retry_after))}
    return PublicError(status, code, message, reason="auth_service_error", headers=headers)


def _retry_after_seconds(value: object) -> int:
    # The backend client validated and clamped it already; any other AuthServiceClient
    # is held to the same bounds here.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return DEFAULT_UPSTREAM_RETRY_AFTER_SECONDS
    return clamp_retry_after(value)


class AuthCaller:
    """Runs one upstream call under the auth timeout and maps its outcome."""

    def __init__(self, client: AuthServiceClient, timeout: timedelta) -> None:
        self.client = client
        self._timeout = timeout.total_seconds()

    async def call(self, operation: str, awaitable: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await awaitable
        except TimeoutError:
            _log.warning(
                "auth upstream timed out", extra={"operation": operation, "outcome": "timeout"}
            )
            raise PublicError.of(
                Reject.BACKEND_UNAVAILABLE, reason="auth_upstream_timeout"
            ) from None
        except AuthServiceError as exc:
            raise project_auth_error(exc) from None
        except AuthServiceUnavailableError:
            _log.warning(
                "auth upstream unavailable",
                extra={"operation": operation, "outcome": "unavailable"},
            )
            raise PublicError.of(
                Reject.BACKEND_UNAVAILABLE, reason="auth_upstream_unavailable"
            ) from None
        except PublicError:
            raise
        except Exception as exc:
            _log.error(
                "auth upstream failed",
                extra={"operation": operation, "outcome": "error", "exc_kind": type(exc).__name__},
            )
            raise PublicError.of(Reject.INTERNAL_ERROR, reason="auth_upstream_error") from None
