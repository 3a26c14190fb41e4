"""Catalog rejects -> Connect errors, which connectrpc renders per protocol.

One ``ConnectError`` is written as a Connect error (HTTP status from the
Connect protocol, JSON body with ``code`` and ``message``), as gRPC-Web
``grpc-status``/``grpc-message`` in the body's trailer frame, or as gRPC
trailers. The code is the gRPC code of the same name (Connect spells
CANCELLED ``canceled``) and the message is the catalog's, verbatim.
"""

from __future__ import annotations

from typing import Any, Final

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from edgecore.errors import EdgeError, GrpcCode, Reject

__all__ = [
    "CONNECT_CODES",
    "RETRY_AFTER_HEADER",
    "CatalogError",
    "connect_error",
    "reject_error",
]

RETRY_AFTER_HEADER: Final = "retry-after"

CONNECT_CODES: Final[dict[GrpcCode, Code]] = {
    code: Code.CANCELED if code is GrpcCode.CANCELLED else Code[code.name]
    for code in GrpcCode
    if code is not GrpcCode.OK
}


class CatalogError(ConnectError):
    """A ``ConnectError`` made from the catalog: it reaches the client unchanged.

    Any other ``ConnectError`` comes from the library (its own wording) and is
    rewritten into the catalog by ``edgecore.rpc.interceptors.CatalogErrors``.
    """


def connect_error(
    error: EdgeError, ctx: RequestContext[Any, Any] | None = None, *, stream: bool = False
) -> CatalogError:
    """The error that carries ``error``'s catalog code and message on every protocol.

    With the call's ``ctx``, a rate-limit reject also answers ``retry-after``
    (whole seconds) in the response headers: connectrpc puts them in the HTTP
    headers of a Connect error, and in the trailers-only status of gRPC and
    gRPC-Web, so every protocol's client can read it. A server stream
    (``stream=True``) sends its headers before its status, and grpcio does not
    always report headers that arrive together with the trailers, so there the
    value rides in the trailers too.
    """
    if ctx is not None and error.retry_after is not None:
        ctx.response_headers[RETRY_AFTER_HEADER] = str(error.retry_after)
        if stream:
            ctx.response_trailers[RETRY_AFTER_HEADER] = str(error.retry_after)
    return CatalogError(CONNECT_CODES[error.grpc_code], error.message)


def reject_error(reject: Reject) -> CatalogError:
    return connect_error(EdgeError(reject))
