"""The backend REST contract of the 18 self-service message types (contracts/backend.openapi.yaml).

Every ``user.*`` / ``lobby.*`` message type is one ``POST`` route under
``/api/v1/user/``: the path is the message type without its ``user.``
prefix, dots turned into slashes (``user.account.get`` ->
``/api/v1/user/account/get``, ``lobby.game.open-enrollment`` ->
``/api/v1/user/lobby/game/open-enrollment``). The JSON request body is the
request table in the FlatBuffers JSON mapping (docs/flatbuffers.md), the 200
answer is the response table in the same mapping, and a business error is a
4xx ``{"error": {"code", "message"}}``. One uniform shape keeps the gateway's
transcoding generic: it never needs per-route code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from edgecore.catalog import MESSAGE_TYPES, request_table_name, response_table_name
from edgecore.downstream import AuthenticatedCommand

__all__ = [
    "BACKEND_ROUTES",
    "CONFIRM_EMAIL_CODE_PATH",
    "HEADER_DEVICE_SESSION_ID",
    "HEADER_MESSAGE_TYPE",
    "HEADER_TRACE_ID",
    "HEADER_USER_ID",
    "MAX_ANSWER_BYTES",
    "SEND_EMAIL_CODE_PATH",
    "SESSION_LOOKUP_PATH",
    "BackendRoute",
    "answers_unavailable",
    "context_headers",
    "route_path",
]

SEND_EMAIL_CODE_PATH: Final = "/api/v1/public/auth/send-email-code"
CONFIRM_EMAIL_CODE_PATH: Final = "/api/v1/public/auth/confirm-email-code"
SESSION_LOOKUP_PATH: Final = "/api/v1/internal/sessions/{device_session_id}"

# The authenticated context travels as headers beside the HMAC headers.
HEADER_USER_ID: Final = "X-User-Id"
HEADER_DEVICE_SESSION_ID: Final = "X-Device-Session-Id"
HEADER_MESSAGE_TYPE: Final = "X-Message-Type"
HEADER_TRACE_ID: Final = "X-Trace-Id"
# The largest answer read from an internal HTTP downstream (the backend, a passthrough route).
MAX_ANSWER_BYTES: Final = 4 << 20


def context_headers(command: AuthenticatedCommand) -> dict[str, str]:
    """The authenticated context of ``command`` as headers (X-Trace-Id only when sent).

    One shape for every internal HTTP downstream: the backend and passthrough routes.
    """
    headers = {
        HEADER_USER_ID: command.user_id,
        HEADER_DEVICE_SESSION_ID: command.device_session_id,
        HEADER_MESSAGE_TYPE: command.message_type,
    }
    if command.trace_id:
        headers[HEADER_TRACE_ID] = command.trace_id
    return headers


def answers_unavailable(status: int) -> bool:
    """An HTTP status that means "not now" (UNAVAILABLE), rather than a broken contract."""
    return status >= 500 or status in (408, 429)


@dataclass(frozen=True, slots=True)
class BackendRoute:
    message_type: str
    path: str
    request_table: str
    response_table: str


def route_path(message_type: str) -> str:
    return "/api/v1/user/" + message_type.removeprefix("user.").replace(".", "/")


def _qualified(message_type: str, table: str) -> str:
    namespace = message_type.split(".", 1)[0]
    return table if "." in table else f"{namespace}.{table}"


BACKEND_ROUTES: Final[Mapping[str, BackendRoute]] = MappingProxyType(
    {
        mt: BackendRoute(
            message_type=mt,
            path=route_path(mt),
            request_table=_qualified(mt, request_table_name(mt)),
            response_table=_qualified(mt, response_table_name(mt)),
        )
        for mt in MESSAGE_TYPES
    }
)
