"""The authenticated ingress pipeline (steps 1-9) and its consumer-side interfaces."""

from edgecore.pipeline.envelope import Envelope, validate_envelope
from edgecore.pipeline.peer import UNKNOWN_PEER, peer_ip_from_grpc
from edgecore.pipeline.verifier import (
    AllowAllPolicy,
    PolicyHook,
    ReplayStore,
    VerificationPipeline,
    VerifiedRequest,
    wall_clock_ms,
)

__all__ = [
    "UNKNOWN_PEER",
    "AllowAllPolicy",
    "Envelope",
    "PolicyHook",
    "ReplayStore",
    "VerificationPipeline",
    "VerifiedRequest",
    "peer_ip_from_grpc",
    "validate_envelope",
    "wall_clock_ms",
]
