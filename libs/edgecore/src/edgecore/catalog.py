"""Wire catalogue: external message types, notification kinds and their FlatBuffers tables.

Naming rule (see docs/flatbuffers.md):

* a message type ``<namespace>.<part>...`` maps to the tables
  ``<namespace>.<Part>...Request`` and ``<namespace>.<Part>...Response``; the
  first dotted segment is the FlatBuffers namespace (``user`` or ``lobby``) and
  the rest is CamelCased after splitting on ``.``, ``_`` and ``-``
  (``lobby.game.open-enrollment`` -> ``GameOpenEnrollmentRequest``);
* a notification kind maps to the ``notification`` table named after the whole
  kind CamelCased the same way plus ``Event``
  (``lobby.race_name.registered`` -> ``LobbyRaceNameRegisteredEvent``).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "LOBBY_MESSAGE_TYPES",
    "MESSAGE_TYPES",
    "NOTIFICATION_KINDS",
    "PROTOCOL_VERSION",
    "SERVER_TIME_EVENT_TYPE",
    "SUBSCRIBE_EVENTS_MESSAGE_TYPE",
    "USER_MESSAGE_TYPES",
    "message_namespace",
    "notification_table_name",
    "request_table_name",
    "response_table_name",
]

PROTOCOL_VERSION: Final = "v1"
"""The only supported request envelope protocol_version literal."""

SUBSCRIBE_EVENTS_MESSAGE_TYPE: Final = "gateway.subscribe_events"
"""message_type of a SubscribeEvents opening request (the specification leaves it open)."""

SERVER_TIME_EVENT_TYPE: Final = "gateway.server_time"
"""event_type of the signed bootstrap event (payload: ``gateway.ServerTimeEvent``)."""

USER_MESSAGE_TYPES: Final[tuple[str, ...]] = (
    "user.account.get",
    "user.profile.update",
    "user.settings.update",
    "user.sessions.list",
    "user.sessions.revoke",
    "user.sessions.revoke_all",
    "user.games.command",
    "user.games.order",
    "user.games.report",
)

LOBBY_MESSAGE_TYPES: Final[tuple[str, ...]] = (
    "lobby.my.games.list",
    "lobby.my.applications.list",
    "lobby.my.invites.list",
    "lobby.public.games.list",
    "lobby.game.create",
    "lobby.game.open-enrollment",
    "lobby.application.submit",
    "lobby.invite.redeem",
    "lobby.invite.decline",
)

MESSAGE_TYPES: Final[tuple[str, ...]] = USER_MESSAGE_TYPES + LOBBY_MESSAGE_TYPES
"""All 18 routed external message types, user first, in catalogue order."""

NOTIFICATION_KINDS: Final[tuple[str, ...]] = (
    "lobby.invite.received",
    "lobby.invite.revoked",
    "lobby.application.submitted",
    "lobby.application.approved",
    "lobby.application.rejected",
    "lobby.membership.removed",
    "lobby.membership.blocked",
    "lobby.race_name.registered",
    "lobby.race_name.pending",
    "lobby.race_name.expired",
    "runtime.image_pull_failed",
    "runtime.container_start_failed",
    "runtime.start_config_invalid",
)
"""The closed v1 notification vocabulary (the runtime.* kinds target admins)."""

_WORD_SEPARATORS: Final = re.compile(r"[._-]")
_WORD: Final = re.compile(r"[a-z0-9]+")


def _camel(name: str) -> str:
    words = _WORD_SEPARATORS.split(name)
    if not all(_WORD.fullmatch(word) for word in words):
        raise ValueError(f"malformed catalogue name: {name!r}")
    return "".join(word[0].upper() + word[1:] for word in words)


def _split_dotted(name: str) -> tuple[str, str]:
    """Split ``<domain>.<rest>``; both parts are required."""
    domain, sep, rest = name.partition(".")
    if not sep or not _WORD.fullmatch(domain) or not rest:
        raise ValueError(f"malformed catalogue name: {name!r}")
    return domain, rest


def message_namespace(message_type: str) -> str:
    """FlatBuffers namespace of a message type's tables: its first dotted segment."""
    return _split_dotted(message_type)[0]


def request_table_name(message_type: str) -> str:
    """Unqualified request table name, e.g. ``user.account.get`` -> ``AccountGetRequest``."""
    return _camel(_split_dotted(message_type)[1]) + "Request"


def response_table_name(message_type: str) -> str:
    """Unqualified response table name, e.g. ``user.account.get`` -> ``AccountGetResponse``."""
    return _camel(_split_dotted(message_type)[1]) + "Response"


def notification_table_name(kind: str) -> str:
    """``notification`` table name of a kind, e.g. ``lobby.invite.received`` ->
    ``LobbyInviteReceivedEvent``."""
    _split_dotted(kind)
    return _camel(kind) + "Event"
