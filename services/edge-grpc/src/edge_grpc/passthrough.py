"""The passthrough downstream: a verified payload, unchanged, to a route's HTTP target.

Request: ``POST <route url>`` with the FlatBuffers payload as the body
(``Content-Type: application/x-flatbuffers``) and the internal authenticated
context as headers (X-User-Id, X-Device-Session-Id, X-Message-Type,
X-Request-Id, X-Trace-Id when present), signed with the route's HMAC secret
(docs/internal-auth.md), bounded by the route's timeout.

Answer: a 2xx whose body is the response payload (returned unchanged) and
whose ``X-Galaxy-Result-Code`` header is the result code. 5xx, 408 and 429,
a refused connection or a timeout are "unavailable"; any other answer
breaks the contract (INTERNAL), and so does a body over 4 MiB.
"""

from __future__ import annotations

import asyncio
import re
from typing import Final

import httpx

from edgecore.backend.routes import MAX_ANSWER_BYTES, answers_unavailable, context_headers
from edgecore.downstream import (
    AuthenticatedCommand,
    DownstreamContractError,
    DownstreamResult,
    DownstreamUnavailableError,
)
from edgecore.errors import EdgeError, Reject
from edgecore.internal_auth import HEADER_REQUEST_ID, HmacRequestSigner
from edgecore.routes import PassthroughRoute

__all__ = [
    "CONTENT_TYPE",
    "RESULT_CODE_HEADER",
    "PassthroughClient",
    "new_passthrough_http_client",
]

CONTENT_TYPE: Final = "application/x-flatbuffers"
RESULT_CODE_HEADER: Final = "X-Galaxy-Result-Code"
_RESULT_CODE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def new_passthrough_http_client(*, client_id: str, max_connections: int = 100) -> httpx.AsyncClient:
    """One pool shared by every route: swapping tables never closes a connection in use."""
    return httpx.AsyncClient(
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        headers={"User-Agent": f"galaxy-edge-gateway/{client_id}"},
        trust_env=False,
        follow_redirects=False,
    )


class PassthroughClient:
    """``DownstreamClient`` for one route of one table version."""

    __slots__ = ("_auth", "_http", "route")

    def __init__(self, route: PassthroughRoute, http: httpx.AsyncClient, *, key_id: str) -> None:
        self.route = route
        self._http = http
        self._auth = HmacRequestSigner(secret=route.hmac_secret, key_id=key_id)

    async def execute(self, command: AuthenticatedCommand) -> DownstreamResult:
        route = self.route
        if route.max_payload_bytes is not None and len(command.payload) > route.max_payload_bytes:
            raise EdgeError(Reject.REQUEST_TOO_LARGE)
        headers = {
            **context_headers(command),
            HEADER_REQUEST_ID: command.request_id,
            "Content-Type": CONTENT_TYPE,
        }
        seconds = route.timeout.total_seconds()
        try:
            async with asyncio.timeout(seconds):
                status, result_code, body = await self._post(command.payload, headers, seconds)
        except (TimeoutError, httpx.TimeoutException):
            raise DownstreamUnavailableError("route target did not answer in time") from None
        except httpx.HTTPError as exc:
            raise DownstreamUnavailableError(
                f"route target unreachable: {type(exc).__name__}"
            ) from None
        if answers_unavailable(status):
            raise DownstreamUnavailableError(f"route target answered {status}")
        if not 200 <= status < 300:
            raise DownstreamContractError(f"route target answered {status}")
        if result_code is None or not _RESULT_CODE.fullmatch(result_code):
            raise DownstreamContractError(f"route target answer lacks a valid {RESULT_CODE_HEADER}")
        return DownstreamResult(result_code, body)

    async def _post(
        self, payload: bytes, headers: dict[str, str], seconds: float
    ) -> tuple[int, str | None, bytes]:
        request = self._http.build_request(
            "POST", self.route.url, content=payload, headers=headers, timeout=seconds
        )
        response = await self._http.send(request, auth=self._auth, stream=True)
        try:
            if response.status_code >= 300:
                return response.status_code, None, b""
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
                raise DownstreamContractError("route target answer is too large")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise DownstreamContractError("route target answer is too large")
                chunks.append(chunk)
            return response.status_code, response.headers.get(RESULT_CODE_HEADER), b"".join(chunks)
        finally:
            await response.aclose()
