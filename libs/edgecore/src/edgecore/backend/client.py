"""The one gateway -> backend HTTP adapter (aiohttp's client, requests built once).

Every call is bounded by the configured timeout and signed by the
internal-route protection (``signer``). Failures are sorted into three kinds
that callers map onto the edge contract:

* ``BackendUnavailableError``: connect errors, timeouts, 5xx without a usable
  error body, and anything else that says "the backend is not there";
* ``BackendApiError``: a 4xx/5xx with a well-formed ``{"error": {code, message}}``
  body (business errors, auth errors), with the answer's ``Retry-After`` when it
  is valid delta-seconds;
* ``BackendContractError``: an answer that breaks the contract (not JSON, wrong
  shape) - an internal error, never shown to clients in detail.

Why aiohttp, driven directly: httpx on httpcore's pool cost 3.5 ms of CPU per
command and httpx's API on aiohttp's pool (httpx-aiohttp) still 1.1 ms, most of
it httpx's request, header and URL models. Here a request is a method, a
pre-parsed URL, one header dict and bytes that are signed as they are sent
(docs/edge-grpc.md has the figures).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

from edgecore.backend.routes import (
    CONFIRM_EMAIL_CODE_PATH,
    MAX_ANSWER_BYTES,
    SEND_EMAIL_CODE_PATH,
    SESSION_LOOKUP_PATH,
    answers_unavailable,
)
from edgecore.config.sections import BackendSettings
from edgecore.internal_auth import HmacRequestSigner, load_hmac_secret
from edgecore.internal_auth.canonical import HEADER_REQUEST_ID
from edgecore.sessions import SessionRecord, SessionRecordError

__all__ = [
    "BackendApiError",
    "BackendClient",
    "BackendContractError",
    "BackendUnavailableError",
    "MAX_RETRY_AFTER_SECONDS",
    "build_backend_client",
    "clamp_retry_after",
]

_JSON: Final = "application/json"
_CODE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Retry-After as delta-seconds (RFC 9110 10.2.3); the HTTP-date form is not used
# between the gateway and the backend and counts as absent.
_DELTA_SECONDS: Final = re.compile(r"[0-9]+")
# A backend's Retry-After is clamped into [1 s, 1 h]: callers pass it on to
# clients, and neither "retry at once" nor a day-long lock-out is a sane hint.
MAX_RETRY_AFTER_SECONDS: Final = 3600
# A backend that refuses a large body (413) answers before the upload instead of
# closing mid-upload, which the gateway could only report as unavailable.
_EXPECT_CONTINUE_ABOVE: Final = 64 * 1024
# JSON written as UTF-8, not \u escapes: escaping tripled accented text (a 700 KB
# payload became 2.1 MB of JSON, past the backend's body limit).
_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode


class BackendUnavailableError(Exception):
    """The backend could not be reached or did not answer in time."""


class BackendContractError(Exception):
    """The backend answered outside its contract."""


@dataclass(frozen=True, slots=True)
class BackendApiError(Exception):
    """A structured error answer: ``{"error": {"code", "message"}}`` with a 4xx/5xx status.

    ``retry_after`` is the answer's ``Retry-After`` in whole seconds, clamped to
    1..``MAX_RETRY_AFTER_SECONDS``, or None when the header is absent or invalid.
    """

    status: int
    code: str
    message: str
    retry_after: int | None = None

    def __str__(self) -> str:
        return f"backend error {self.status} {self.code}"


class BackendClient:
    """One keep-alive pool to the backend; create it inside the event loop that uses it."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout: timedelta,
        signer: HmacRequestSigner | None = None,
        client_id: str = "",
        max_connections: int = 100,
    ) -> None:
        base = URL(base_url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("the backend URL must be an absolute http(s) URL")
        self._origin = base.origin()
        self._prefix = base.raw_path.rstrip("/")
        self._signer = signer
        self._timeout = aiohttp.ClientTimeout(total=timeout.total_seconds())
        self._user_agent = f"galaxy-edge-gateway/{client_id or 'unknown'}"
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, tuple[URL, str]] = {}

    def _open(self) -> aiohttp.ClientSession:
        # Lazily, because aiohttp binds its pool to the running loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, limit_per_host=0, use_dns_cache=True
                ),
                timeout=self._timeout,
                # Nothing the backend sets may follow one user's request into another's.
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": self._user_agent},
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def get_session(self, device_session_id: str) -> SessionRecord | None:
        """The session record, or None when the backend does not know the id."""
        path = SESSION_LOOKUP_PATH.format(device_session_id=quote(device_session_id, safe=""))
        try:
            data = await self._request("GET", path, cache_url=False)
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

    def _url(self, path: str, *, cache: bool) -> tuple[URL, str]:
        """The request URL and its raw target (what the signature covers)."""
        known = self._urls.get(path)
        if known is None:
            target = self._prefix + path
            known = (self._origin.with_path(target, encoded=True), target)
            if cache:  # the fixed routes; a session id is not kept
                self._urls[path] = known
        return known

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        cache_url: bool = True,
    ) -> dict[str, Any]:
        url, target = self._url(path, cache=cache_url)
        all_headers = dict(headers) if headers else {}
        content = b""
        content_type = ""
        if body is not None:
            content = _encode_json(body)
            content_type = _JSON
            all_headers["Content-Type"] = _JSON
        request_id = request_id or str(uuid.uuid4())
        if self._signer is not None:
            all_headers.update(
                self._signer.headers_for(
                    method, target, content_type=content_type, body=content, request_id=request_id
                )
            )
        else:
            all_headers[HEADER_REQUEST_ID] = request_id
        try:
            async with self._open().request(
                method,
                url,
                data=content if body is not None else None,
                headers=all_headers,
                allow_redirects=False,
                expect100=len(content) > _EXPECT_CONTINUE_ABOVE,
            ) as response:
                status = response.status
                if (response.content_length or 0) > MAX_ANSWER_BYTES:
                    raise BackendContractError("backend answer is too large")
                raw = await _read_bounded(response.content)
                retry_after = response.headers.getall("Retry-After", ())
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise BackendUnavailableError("backend did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise BackendUnavailableError(f"backend unreachable: {type(exc).__name__}") from None
        return _parse(status, raw, retry_after)


async def _read_bounded(stream: aiohttp.StreamReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.readany():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise BackendContractError("backend answer is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_after(values: Sequence[str]) -> int | None:
    """One ``Retry-After`` in delta-seconds, clamped to 1..``MAX_RETRY_AFTER_SECONDS``.

    None when it is absent, repeated (ambiguous), an HTTP-date, negative or not
    a number.
    """
    if len(values) != 1:
        return None
    value = values[0].strip(" \t")
    if not _DELTA_SECONDS.fullmatch(value):
        return None
    digits = value.lstrip("0")
    if len(digits) > len(str(MAX_RETRY_AFTER_SECONDS)):  # past the bound: not converted at all
        return MAX_RETRY_AFTER_SECONDS
    return clamp_retry_after(int(digits or "0"))


def clamp_retry_after(seconds: int) -> int:
    """A Retry-After hint passed on to clients: at least 1 s, at most an hour."""
    return min(max(seconds, 1), MAX_RETRY_AFTER_SECONDS)


def _parse(status: int, raw: bytes, retry_after: Sequence[str] = ()) -> dict[str, Any]:
    try:
        data = _decode_json(raw)
    except msgspec.DecodeError:
        data = None
    if 200 <= status <= 299:
        if not isinstance(data, dict):
            raise BackendContractError("backend answer is not a JSON object")
        return data
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and 400 <= status <= 599:
        code, message = error.get("code"), error.get("message")
        if isinstance(code, str) and _CODE.fullmatch(code) and isinstance(message, str):
            raise BackendApiError(status, code, message.strip(), _retry_after(retry_after))
    if answers_unavailable(status):
        raise BackendUnavailableError(f"backend answered {status}")
    raise BackendContractError(f"backend answered {status} without an error body")


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
        signer=HmacRequestSigner(secret=secret, key_id=settings.gateway_client_id),
        client_id=settings.gateway_client_id,
    )
