"""The authenticated ingress pipeline (steps 1-9) and its consumer-side interfaces."""

from edgecore.pipeline.envelope import Envelope, validate_envelope
from edgecore.pipeline.peer import (
    UNKNOWN_PEER,
    PeerIpCache,
    peer_ip_from_address,
)
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
    "PeerIpCache",
    "PolicyHook",
    "ReplayStore",
    "VerificationPipeline",
    "VerifiedRequest",
    "peer_ip_from_address",
    "validate_envelope",
    "wall_clock_ms",
]
