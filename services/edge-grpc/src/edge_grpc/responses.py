"""Signing unary responses (ResponseSigner): request_id kept, fresh timestamp, hash, Ed25519.

The signing input is ``edgecore.signing.response_signing_input`` (domain
``galaxy-response-v1``, then protocol_version, request_id, timestamp_ms,
result_code, payload_hash), signed by the key loaded from
``GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Final

from edgecore.catalog import PROTOCOL_VERSION
from edgecore.downstream import DownstreamResult
from edgecore.pipeline import wall_clock_ms
from edgecore.signing import Signer, response_signing_input
from galaxy.gateway.v1 import edge_gateway_pb2 as pb

__all__ = ["ResponseSigner"]

_sha256: Final = hashlib.sha256


class ResponseSigner:
    __slots__ = ("_clock_ms", "_response", "_sign")

    def __init__(self, signer: Signer, *, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self._sign = signer.sign
        self._clock_ms = clock_ms
        self._response: Any = pb.ExecuteCommandResponse

    def sign(self, request_id: str, result: DownstreamResult) -> Any:
        """The signed ``ExecuteCommandResponse`` answering ``request_id``."""
        payload = result.payload
        digest = _sha256(payload).digest()
        timestamp_ms = self._clock_ms()
        result_code = result.result_code
        signature = self._sign(
            response_signing_input(
                protocol_version=PROTOCOL_VERSION,
                request_id=request_id,
                timestamp_ms=timestamp_ms,
                result_code=result_code,
                payload_hash=digest,
            )
        )
        return self._response(
            protocol_version=PROTOCOL_VERSION,
            request_id=request_id,
            timestamp_ms=timestamp_ms,
            result_code=result_code,
            payload_bytes=payload,
            payload_hash=digest,
            signature=signature,
        )
