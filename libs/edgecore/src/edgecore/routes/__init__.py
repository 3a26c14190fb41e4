"""Declarative passthrough routes: the versioned route table and how it travels.

The edge-operator compiles accepted ``GatewayRoute`` resources into one
``RouteTable``, seals it (``sealing``: the routes carry HMAC secrets) and
publishes it to Redis (``store``: a snapshot hash plus a notification on a
stream). edge-grpc reads the snapshot at start and on every notification.
docs/routes.md describes the format for implementers in any language.
"""

from edgecore.routes.sealing import (
    TABLE_KEY_BYTES,
    RouteTableKey,
    RouteTableKeyError,
    RouteTableSealError,
    load_route_table_key,
)
from edgecore.routes.store import (
    NOTIFICATION_VERSION,
    PublishOutcome,
    RouteTablePublisher,
    RouteTableReader,
    StoredTable,
)
from edgecore.routes.table import (
    RESERVED_PREFIXES,
    TABLE_FORMAT,
    PassthroughRoute,
    RouteTable,
    RouteTableFormatError,
    is_reserved_message_type,
)

__all__ = [
    "NOTIFICATION_VERSION",
    "RESERVED_PREFIXES",
    "TABLE_FORMAT",
    "TABLE_KEY_BYTES",
    "PassthroughRoute",
    "PublishOutcome",
    "RouteTable",
    "RouteTableFormatError",
    "RouteTableKey",
    "RouteTableKeyError",
    "RouteTablePublisher",
    "RouteTableReader",
    "RouteTableSealError",
    "StoredTable",
    "is_reserved_message_type",
    "load_route_table_key",
]
