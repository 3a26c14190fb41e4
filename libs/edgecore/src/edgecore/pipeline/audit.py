"""Counting and audit-logging authenticated requests, shared by edge-grpc and push-hub.

``message_type`` is attacker-controlled, so as a metric label it is kept only
when the caller says it is a known type; anything else is ``other`` (label
cardinality stays bounded). Audit lines carry the reject reason, the
request id, the message type and the peer IP; never payloads, hashes,
signatures or keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edgecore.errors import EdgeError
from edgecore.pipeline.envelope import Envelope
from edgecore.telemetry.metrics import MetricsRegistry

__all__ = ["AuthenticatedTelemetry"]

_audit = logging.getLogger("edgecore.audit")


class AuthenticatedTelemetry:
    def __init__(self, metrics: MetricsRegistry, *, is_known_type: Callable[[str], bool]) -> None:
        self._is_known = is_known_type
        self.requests = metrics.counter(
            "gateway.authenticated_grpc.requests",
            "Authenticated requests by RPC, message type, result code and reject reason.",
            ["rpc", "message_type", "result_code", "reject_reason"],
        )
        self.duration = metrics.histogram(
            "gateway.authenticated_grpc.duration",
            "Authenticated request handling time.",
            ["rpc", "message_type", "result_code"],
        )

    def label(self, message_type: str) -> str:
        return message_type if self._is_known(message_type) else "other"

    def accepted(self, rpc: str, message_type: str, result_code: str, seconds: float) -> None:
        label = self.label(message_type)
        self.requests.labels(rpc, label, result_code, "").inc()
        self.duration.labels(rpc, label, result_code).observe(seconds)

    def rejected(
        self, rpc: str, envelope: Envelope | None, error: EdgeError, peer_ip: str, seconds: float
    ) -> None:
        message_type = envelope.message_type if envelope is not None else ""
        label = self.label(message_type)
        code = error.grpc_code.name
        self.requests.labels(rpc, label, code, error.reason).inc()
        self.duration.labels(rpc, label, code).observe(seconds)
        _audit.warning(
            "authenticated request rejected",
            extra={
                "event": "security.reject",
                "rpc": rpc,
                "reject_reason": error.reason,
                "grpc_code": code,
                "message_type": label,
                "request_id": envelope.request_id[:128] if envelope is not None else "",
                "peer_ip": peer_ip,
            },
        )
