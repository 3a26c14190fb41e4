"""Client of the unauthenticated public REST surface (the e-mail code login)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Final, Self

import httpx

from edgeclient.errors import PublicApiError, parse_retry_after
from edgecore.backend.routes import CONFIRM_EMAIL_CODE_PATH, SEND_EMAIL_CODE_PATH

__all__ = ["PublicAuthClient"]

DEFAULT_TIMEOUT: Final = 10.0


class PublicAuthClient:
    """``send-email-code`` and ``confirm-email-code`` over an ``httpx.AsyncClient``.

    Use as an async context manager, or pass your own ``http`` client (which
    then stays yours to close). Every failure raises :class:`PublicApiError`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"public URL must start with http:// or https://: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def send_email_code(self, email: str, accept_language: str | None = None) -> str:
        """Ask for a login code to be mailed; returns the ``challenge_id``."""
        headers = {"Accept-Language": accept_language} if accept_language else {}
        body = await self._post(SEND_EMAIL_CODE_PATH, {"email": email}, headers)
        return _required_string(body, "challenge_id")

    async def confirm_email_code(
        self, challenge_id: str, code: str, client_public_key_b64: str, time_zone: str
    ) -> str:
        """Exchange the mailed code for a device session; returns ``device_session_id``."""
        body = await self._post(
            CONFIRM_EMAIL_CODE_PATH,
            {
                "challenge_id": challenge_id,
                "code": code,
                "client_public_key": client_public_key_b64,
                "time_zone": time_zone,
            },
            {},
        )
        return _required_string(body, "device_session_id")

    async def _post(
        self, path: str, payload: dict[str, str], headers: dict[str, str]
    ) -> dict[str, Any]:
        try:
            response = await self._http.post(self.base_url + path, json=payload, headers=headers)
        except httpx.TimeoutException:
            raise PublicApiError(0, "timeout", f"{self.base_url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise PublicApiError(
                0, "unreachable", f"cannot reach {self.base_url}: {str(exc) or type(exc).__name__}"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            if not isinstance(body, dict):
                raise PublicApiError(
                    response.status_code, "invalid_response", "answer is not a JSON object"
                )
            return body
        raise _error_from(
            response.status_code,
            response.reason_phrase,
            body,
            parse_retry_after(response.headers.get("retry-after")),
        )


def _required_string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise PublicApiError(200, "invalid_response", f"answer has no {key}")
    return value


def _error_from(status: int, reason: str, body: object, retry_after: int | None) -> PublicApiError:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        if isinstance(code, str) and code:
            text = message if isinstance(message, str) else ""
            return PublicApiError(status, code, text, retry_after)
    return PublicApiError(status, f"http_{status}", reason or "request failed", retry_after)
