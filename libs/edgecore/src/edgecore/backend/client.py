"""The one gateway -> backend HTTP adapter (httpx's API on aiohttp's connection pool).

Every call is bounded by the configured timeout and signed by the
internal-route protection (``auth``). Failures are sorted into three kinds
that callers map onto the edge contract:

* ``BackendUnavailableError``: connect errors, timeouts, 5xx without a usable
  error body, and anything else that says "the backend is not there";
* ``BackendApiError``: a 4xx/5xx with a well-formed ``{"error": {code, message}}``
  body (business errors, auth errors);
* ``BackendContractError``: an answer that breaks the contract (not JSON, wrong
  shape) - an internal error, never shown to clients in detail.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final
from urllib.parse import quote

import httpx
from httpx_aiohttp import AiohttpTransport

from edgecore.backend.routes import (
    CONFIRM_EMAIL_CODE_PATH,
    MAX_ANSWER_BYTES,
    SEND_EMAIL_CODE_PATH,
    SESSION_LOOKUP_PATH,
    answers_unavailable,
)
from edgecore.config.sections import BackendSettings
from edgecore.internal_auth import HmacRequestSigner, load_hmac_secret
from edgecore.sessions import SessionRecord, SessionRecordError

__all__ = [
    "BackendApiError",
    "BackendClient",
    "BackendContractError",
    "BackendUnavailableError",
    "build_backend_client",
]

_CODE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
# A backend that refuses a large body (413) answers before the upload instead of
# closing mid-upload, which the gateway could only report as unavailable.
_EXPECT_CONTINUE_ABOVE: Final = 64 * 1024


class BackendUnavailableError(Exception):
    """The backend could not be reached or did not answer in time."""


class BackendContractError(Exception):
    """The backend answered outside its contract."""


@dataclass(frozen=True, slots=True)
class BackendApiError(Exception):
    """A structured error answer: ``{"error": {"code", "message"}}`` with a 4xx/5xx status."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"backend error {self.status} {self.code}"


class BackendClient:
    def __init__(
        self,
        *,
        base_url: str,
        timeout: timedelta,
        auth: httpx.Auth | None = None,
        client_id: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout.total_seconds()),
            auth=auth,
            # aiohttp under httpx's API: httpcore's pool cost about 2.9x the CPU per
            # command (bench/backend_client_bench.py, docs/backend-adapter.md).
            transport=transport or AiohttpTransport(limits=limits, trust_env=False),
            headers={"User-Agent": f"galaxy-edge-gateway/{client_id or 'unknown'}"},
            trust_env=False,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get_session(self, device_session_id: str) -> SessionRecord | None:
        """The session record, or None when the backend does not know the id."""
        path = SESSION_LOOKUP_PATH.format(device_session_id=quote(device_session_id, safe=""))
        try:
            data = await self._request("GET", path)
        except BackendApiError as exc:
            if exc.status == 404:
                return None
            raise BackendUnavailableError(f"session lookup failed with {exc.status}") from None
        try:
            record = SessionRecord.from_json_dict(data)
        except SessionRecordError as exc:
            raise BackendContractError(str(exc)) from None
        if record.device_session_id != device_session_id:
            raise BackendContractError("session lookup answered for another device_session_id")
        return record

    async def send_email_code(self, email: str, preferred_language: str) -> str:
        data = await self._request(
            "POST",
            SEND_EMAIL_CODE_PATH,
            body={"email": email, "preferred_language": preferred_language},
        )
        return _required_str(data, "challenge_id")

    async def confirm_email_code(
        self, challenge_id: str, code: str, client_public_key: str, time_zone: str
    ) -> str:
        data = await self._request(
            "POST",
            CONFIRM_EMAIL_CODE_PATH,
            body={
                "challenge_id": challenge_id,
                "code": code,
                "client_public_key": client_public_key,
                "time_zone": time_zone,
            },
        )
        return _required_str(data, "device_session_id")

    async def post_json(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str],
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """POST a JSON body; return the 2xx JSON object or raise one of the module's errors."""
        return await self._request("POST", path, body=body, headers=headers, request_id=request_id)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        all_headers = {"X-Request-Id": request_id or str(uuid.uuid4()), **(headers or {})}
        content = None
        if body is not None:
            # UTF-8, not \u escapes: escaping tripled accented text (a 700 KB payload
            # became 2.1 MB of JSON, past the backend's body limit).
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            all_headers["Content-Type"] = "application/json"
            if len(content) > _EXPECT_CONTINUE_ABOVE:
                all_headers["Expect"] = "100-continue"
        try:
            response = await self._client.request(
                method, path, content=content, headers=all_headers
            )
        except httpx.HTTPError as exc:
            raise _unavailable(exc) from None
        return _parse(response)


def _unavailable(exc: httpx.HTTPError) -> BackendUnavailableError:
    cause = exc.__cause__
    # httpx-aiohttp reports a refused connection as ConnectTimeout: tell them apart.
    timed_out = isinstance(exc, httpx.TimeoutException) and (
        cause is None or isinstance(cause, TimeoutError)
    )
    if timed_out:
        return BackendUnavailableError("backend did not answer in time")
    return BackendUnavailableError(f"backend unreachable: {type(cause or exc).__name__}")


def _parse(response: httpx.Response) -> dict[str, Any]:
    if len(response.content) > MAX_ANSWER_BYTES:
        raise BackendContractError("backend answer is too large")
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_success:
        if not isinstance(data, dict):
            raise BackendContractError("backend answer is not a JSON object")
        return data
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and 400 <= response.status_code <= 599:
        code, message = error.get("code"), error.get("message")
        if isinstance(code, str) and _CODE.fullmatch(code) and isinstance(message, str):
            raise BackendApiError(response.status_code, code, message.strip())
    if answers_unavailable(response.status_code):
        raise BackendUnavailableError(f"backend answered {response.status_code}")
    raise BackendContractError(f"backend answered {response.status_code} without an error body")


def _required_str(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise BackendContractError(f"backend answer lacks {name!r}")
    return value


def build_backend_client(settings: BackendSettings) -> BackendClient | None:
    """The configured backend client, or None when GATEWAY_BACKEND_HTTP_URL is unset.

    Raises ``HmacSecretError`` (start-up must fail) when the secret file is unusable.
    """
    if settings.http_url is None or settings.hmac_secret_path is None:
        return None
    secret = load_hmac_secret(settings.hmac_secret_path)
    return BackendClient(
        base_url=settings.http_url,
        timeout=settings.http_timeout,
        auth=HmacRequestSigner(secret=secret, key_id=settings.gateway_client_id),
        client_id=settings.gateway_client_id,
    )
