"""The transcoding downstream for the 18 self-service message types.

Verified FlatBuffers request payload -> the backend's REST/JSON route ->
FlatBuffers response payload. A business error (a structured 4xx) becomes the
``result_code`` plus a ``gateway.ErrorResponse`` payload mirroring the
backend's code and message; anything that says the backend is not there
becomes ``DownstreamUnavailableError``; an answer outside the contract
becomes ``DownstreamContractError``.
"""

from __future__ import annotations

from collections.abc import Mapping

from edgecore.backend.client import (
    BackendApiError,
    BackendClient,
    BackendContractError,
    BackendUnavailableError,
)
from edgecore.backend.routes import BACKEND_ROUTES, BackendRoute, context_headers
from edgecore.downstream import (
    RESULT_OK,
    AuthenticatedCommand,
    DownstreamClient,
    DownstreamContractError,
    DownstreamResult,
    DownstreamUnavailableError,
)
from edgecore.errors import EdgeError, Reject
from edgecore.fbjson import FbJsonError, FlatBuffersJsonCodec
from edgecore.payloads import encode_error_response

__all__ = ["BackendCommandClient", "BackendRouter"]


class BackendCommandClient:
    """DownstreamClient for one backend route. ``backend=None`` fails closed as unavailable."""

    def __init__(
        self, route: BackendRoute, backend: BackendClient | None, codec: FlatBuffersJsonCodec
    ) -> None:
        self._route = route
        self._backend = backend
        self._codec = codec

    async def execute(self, command: AuthenticatedCommand) -> DownstreamResult:
        route = self._route
        try:
            body = self._codec.decode(route.request_table, command.payload)
        except FbJsonError:
            raise EdgeError(
                Reject.MALFORMED_REQUEST, f"payload_bytes is not a valid {route.request_table}"
            ) from None
        if self._backend is None:
            raise DownstreamUnavailableError("no backend is configured")
        try:
            answer = await self._backend.post_json(
                route.path, body, headers=context_headers(command), request_id=command.request_id
            )
        except BackendUnavailableError as exc:
            raise DownstreamUnavailableError(str(exc)) from None
        except BackendContractError as exc:
            raise DownstreamContractError(str(exc)) from None
        except BackendApiError as exc:
            if exc.status >= 500:
                raise DownstreamUnavailableError(str(exc)) from None
            return DownstreamResult(exc.code, encode_error_response(exc.code, exc.message))
        try:
            payload = self._codec.encode(route.response_table, answer)
        except FbJsonError as exc:
            raise DownstreamContractError(
                f"backend answer is not a valid {route.response_table}: {exc}"
            ) from None
        return DownstreamResult(RESULT_OK, payload)


class BackendRouter:
    """DownstreamRouter for the reserved ``user.*`` / ``lobby.*`` message types."""

    def __init__(self, backend: BackendClient | None, codec: FlatBuffersJsonCodec) -> None:
        self._clients: Mapping[str, DownstreamClient] = {
            mt: BackendCommandClient(route, backend, codec) for mt, route in BACKEND_ROUTES.items()
        }

    def resolve(self, message_type: str) -> DownstreamClient | None:
        return self._clients.get(message_type)
