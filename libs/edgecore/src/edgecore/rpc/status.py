"""Catalog rejects -> Connect errors, which connectrpc renders per protocol.

One ``ConnectError`` is written as a Connect error (HTTP status from the
Connect protocol, JSON body with ``code`` and ``message``), as gRPC-Web
``grpc-status``/``grpc-message`` in the body's trailer frame, or as gRPC
trailers. The code is the gRPC code of the same name (Connect spells
CANCELLED ``canceled``) and the message is the catalog's, verbatim.
"""

from __future__ import annotations

from typing import Final

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from edgecore.errors import EdgeError, GrpcCode, Reject

__all__ = ["CONNECT_CODES", "CatalogError", "connect_error", "reject_error"]

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


def connect_error(error: EdgeError) -> CatalogError:
    """The error that carries ``error``'s catalog code and message on every protocol."""
    return CatalogError(CONNECT_CODES[error.grpc_code], error.message)


def reject_error(reject: Reject) -> CatalogError:
    return connect_error(EdgeError(reject))
