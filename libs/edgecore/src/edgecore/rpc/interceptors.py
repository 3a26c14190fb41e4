"""Interceptors every authenticated RPC runs through, whatever its protocol.

``CatalogErrors`` is the first interceptor, so its ``on_end`` sees the final
error of every call, including those the library raised before the handler
ran (a body over the size limit, an undecodable message, an unknown
compression). It rewrites them into the catalog, so a client on any protocol
gets the spec's code and message and never the library's or Python's wording.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from edgecore.errors import Reject
from edgecore.rpc.status import CatalogError, reject_error

__all__ = ["CatalogErrors", "catalog_error", "client_disconnected"]

_log = logging.getLogger("edgecore.rpc")

# Library errors by code -> the catalog reject a client sees instead. Codes not
# listed keep their code and the library's message: they describe the call
# itself (a deadline the client set, a cancellation), never request data.
_LIBRARY_REJECTS: Final = {
    Code.RESOURCE_EXHAUSTED: Reject.REQUEST_TOO_LARGE,
    Code.INVALID_ARGUMENT: Reject.MALFORMED_REQUEST,
    # An unknown request compression: the body cannot be read, so it is malformed.
    Code.UNIMPLEMENTED: Reject.MALFORMED_REQUEST,
    Code.INTERNAL: Reject.INTERNAL_ERROR,
    Code.UNKNOWN: Reject.INTERNAL_ERROR,
}


# The library's INTERNAL for a request it cannot parse (a compressed frame without an
# encoding, bytes after the end of a stream): the client's fault, so malformed here.
_LIBRARY_FRAMING_ERRORS: Final = ("protocol error", "corrupt")


def client_disconnected(error: BaseException) -> bool:
    """pyvoy's error for a write to a client that has gone (its class is only importable
    inside Envoy, hence the name). Not a failure: the server drops it silently."""
    return type(error).__name__ == "ClientDisconnectedError"


def catalog_error(error: Exception) -> ConnectError:
    """``error`` as the client must see it."""
    if isinstance(error, CatalogError):
        return error
    if isinstance(error, ConnectError):
        if error.code is Code.INTERNAL and error.message.startswith(_LIBRARY_FRAMING_ERRORS):
            return reject_error(Reject.MALFORMED_REQUEST)
        reject = _LIBRARY_REJECTS.get(error.code)
        return error if reject is None else reject_error(reject)
    _log.error("RPC failed unexpectedly", extra={"error": type(error).__name__})
    return reject_error(Reject.INTERNAL_ERROR)


class CatalogErrors:
    """A metadata interceptor: the last word on every call's error."""

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        return None

    async def on_end(
        self, token: None, ctx: RequestContext[Any, Any], error: Exception | None, /
    ) -> None:
        if error is None or isinstance(error, CatalogError) or client_disconnected(error):
            return  # a gone client gets no answer; pyvoy ignores its own disconnect error
        raise catalog_error(error)
