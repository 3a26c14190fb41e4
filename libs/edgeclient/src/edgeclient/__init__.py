"""Client SDK of the Galaxy Edge Gateway, and the ``edgectl`` command line tool.

* :class:`PublicAuthClient`: the unauthenticated e-mail code login (REST/JSON).
* :class:`EdgeClient`: signed ExecuteCommand calls and the SubscribeEvents
  stream (gRPC); every response and event is verified before it is returned.
  ``follow()`` reconnects and resumes from each event's ``position`` so nothing
  is missed; :class:`EventHistoryGoneError` says the gateway can no longer
  replay from a position (refetch state, then follow without one).
* :mod:`edgeclient.jsonapi`: JSON <-> FlatBuffers payload helpers.
* :class:`ProfileStore` / :class:`Profile`: where edgectl keeps a login.

See docs/client-sdk.md.
"""

from __future__ import annotations

from edgeclient.client import EdgeClient
from edgeclient.envelope import (
    CommandResult,
    SignedRequest,
    VerifiedEvent,
    sign_request,
    verify_event,
    verify_response,
)
from edgeclient.errors import (
    BusinessError,
    EdgeClientError,
    EventHistoryGoneError,
    EventVerificationError,
    GatewayError,
    ProfileError,
    PublicApiError,
    RequestEncodingError,
    ResponseVerificationError,
    UnknownMessageTypeError,
    VerificationError,
)
from edgeclient.keys import DeviceKey, parse_server_public_key
from edgeclient.profile import Profile, ProfileStore
from edgeclient.public_auth import PublicAuthClient

__all__ = [
    "BusinessError",
    "CommandResult",
    "DeviceKey",
    "EdgeClient",
    "EdgeClientError",
    "EventHistoryGoneError",
    "EventVerificationError",
    "GatewayError",
    "Profile",
    "ProfileError",
    "ProfileStore",
    "PublicApiError",
    "PublicAuthClient",
    "RequestEncodingError",
    "ResponseVerificationError",
    "SignedRequest",
    "UnknownMessageTypeError",
    "VerificationError",
    "VerifiedEvent",
    "parse_server_public_key",
    "sign_request",
    "verify_event",
    "verify_response",
]
