"""The kopf handlers, called as kopf calls them, publishing to a real Redis.

kopf's indexes are mappings of key -> store; the tests hand the handlers the
same shape. Kubernetes itself is not here (docs/routes.md says how the
operator is tested against a cluster); Redis is real.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import kopf
import pytest
import redis.asyncio as redis

from edge_operator.handlers import RouteHandlers
from edge_operator.reconciler import Reconciler
from edge_operator.testing import SECRET, route_body, route_index, secret_body, secret_index
from edgecore.routes import RouteTable, RouteTablePublisher, RouteTableReader
from edgecore.routes.sealing import RouteTableKey, new_route_table_key

pytestmark = pytest.mark.integration


@dataclass
class Operator:
    handlers: RouteHandlers
    reader: RouteTableReader
    client: redis.Redis
    stream: str
    routes: dict[tuple[str, str], list[Any]]
    secrets: dict[tuple[str, str], list[Any]]

    def index(self, *bodies: dict[str, Any]) -> None:
        self.routes.clear()
        self.routes.update(route_index(*bodies))

    async def table(self) -> RouteTable:
        table = await self.reader.load()
        assert table is not None
        return table

    async def notifications(self) -> int:
        return int(await self.client.xlen(self.stream))

    async def changed(self, body: dict[str, Any]) -> dict[str, Any]:
        patch = kopf.Patch()
        await self.handlers.on_route(
            body=body, patch=patch, gateway_routes=self.routes, route_secrets=self.secrets
        )
        return dict(patch.get("status") or {})

    async def resync(self, body: dict[str, Any]) -> dict[str, Any]:
        patch = kopf.Patch()
        await self.handlers.on_resync(
            body=body, patch=patch, gateway_routes=self.routes, route_secrets=self.secrets
        )
        return dict(patch.get("status") or {})


def make_operator(
    client: redis.Redis, key: RouteTableKey, template: str = "{service}.{namespace}.svc"
) -> Operator:
    prefix = f"op:{uuid.uuid4().hex}"
    publisher = RouteTablePublisher(
        client, key, snapshot_key=f"{prefix}:table", stream=f"{prefix}:events"
    )
    reconciler = Reconciler(publisher, host_template=template, publish_timeout=timedelta(seconds=2))
    return Operator(
        handlers=RouteHandlers(reconciler, retry_delay=timedelta(seconds=1)),
        reader=RouteTableReader(client, key, snapshot_key=f"{prefix}:table"),
        client=client,
        stream=f"{prefix}:events",
        routes={},
        secrets=secret_index(secret_body()),
    )


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    await conn.aclose()


@pytest.fixture
def op(client: redis.Redis) -> Operator:
    return make_operator(client, new_route_table_key())


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    [found] = [c for c in status["conditions"] if c["type"] == kind]
    return found


async def test_create_publishes_the_route_and_marks_it_accepted(op: Operator) -> None:
    body = route_body("move", generation=3)
    op.index(body)
    status = await op.changed(body)
    table = await op.table()
    assert list(table.routes) == ["arena.move"]
    route = table.routes["arena.move"]
    assert route.url == "http://arena.games.svc:8080/commands/move"
    assert route.hmac_secret == SECRET
    accepted = condition(status, "Accepted")
    assert (accepted["status"], accepted["reason"]) == ("True", "Published")
    assert f"route table version {table.version}" in accepted["message"]
    assert (condition(status, "Conflicted")["status"], condition(status, "Invalid")["status"]) == (
        "False", "False",
    )  # fmt: skip
    assert status["observedGeneration"] == 3 and status["tableVersion"] == table.version
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert "x" * 32 not in repr(status)


async def test_resume_after_a_restart_is_idempotent(op: Operator) -> None:
    body = route_body("move")
    op.index(body)
    status = await op.changed(body)
    version = (await op.table()).version
    # A restarted operator: a new reconciler over the same Redis, objects carry their status.
    restarted = make_operator(op.client, op.reader._key)  # type: ignore[attr-defined]
    restarted.reader, restarted.stream = op.reader, op.stream
    restarted.handlers = RouteHandlers(
        Reconciler(
            RouteTablePublisher(op.client, op.reader._key,  # type: ignore[attr-defined]
                                snapshot_key=op.reader._snapshot_key, stream=op.stream),  # type: ignore[attr-defined]
            host_template="{service}.{namespace}.svc", publish_timeout=timedelta(seconds=2),
        ),
        retry_delay=timedelta(seconds=1),
    )  # fmt: skip
    restarted.index(route_body("move", status=status))
    again = await restarted.changed(route_body("move", status=status))
    assert again == {}  # nothing to write: same status
    assert (await op.table()).version == version
    assert await op.notifications() == 1


async def test_the_newer_route_is_conflicted_and_the_table_keeps_the_older(op: Operator) -> None:
    older = route_body("older", created="2026-11-01T10:00:00Z")
    newer = route_body("newer", created="2026-11-01T11:00:00Z",
                       target={"service": "arena-v2", "port": 8080, "path": "/v2"})  # fmt: skip
    op.index(older)
    await op.changed(older)
    op.index(older, newer)
    status = await op.changed(newer)
    conflicted = condition(status, "Conflicted")
    assert (conflicted["status"], conflicted["reason"]) == ("True", "MessageTypeClaimed")
    assert "games/older" in conflicted["message"]
    accepted = condition(status, "Accepted")
    assert (accepted["status"], accepted["reason"]) == ("False", "MessageTypeClaimed")
    assert "tableVersion" in status
    assert (await op.table()).routes["arena.move"].source == "games/older"


async def test_deleting_the_winner_promotes_the_loser(op: Operator) -> None:
    older = route_body("older", created="2026-11-01T10:00:00Z")
    newer = route_body("newer", created="2026-11-01T11:00:00Z",
                       target={"service": "arena-v2", "port": 8080, "path": "/v2"})  # fmt: skip
    op.index(older, newer)
    await op.changed(older)
    lost = await op.changed(newer)
    deleting = route_body("older", created="2026-11-01T10:00:00Z", deleting=True)
    op.index(deleting, newer)
    await op.handlers.on_route_deleted(
        body=deleting, gateway_routes=op.routes, route_secrets=op.secrets
    )
    table = await op.table()
    assert table.routes["arena.move"].url == "http://arena-v2.games.svc:8080/v2"
    # The loser learns it on its next resync.
    status = await op.resync(route_body("newer", created="2026-11-01T11:00:00Z", status=lost))
    assert condition(status, "Accepted")["status"] == "True"
    assert condition(status, "Conflicted")["status"] == "False"


async def test_deleting_the_only_route_publishes_an_empty_table(op: Operator) -> None:
    body = route_body("move")
    op.index(body)
    await op.changed(body)
    deleting = route_body("move", deleting=True)
    op.index(deleting)
    await op.handlers.on_route_deleted(
        body=deleting, gateway_routes=op.routes, route_secrets=op.secrets
    )
    assert len(await op.table()) == 0


@pytest.mark.parametrize(
    ("spec", "secrets", "reason"),
    [
        ({"messageType": "user.account.get"}, None, "ReservedMessageType"),
        ({"messageType": "gateway.subscribe_events"}, None, "ReservedMessageType"),
        ({"timeout": "10m"}, None, "InvalidTimeout"),
        ({"maxPayloadBytes": -1}, None, "InvalidMaxPayloadBytes"),
        ({"target": {"service": "x_y", "port": 1, "path": "/"}}, None, "InvalidTarget"),
        ({"messageType": "bad type"}, None, "InvalidMessageType"),
        ({}, {}, "SecretNotFound"),
        ({"hmacSecretRef": {"name": "arena-route", "key": "nope"}}, None, "SecretKeyNotFound"),
        ({}, {"hmac": b"short"}, "SecretTooShort"),
    ],
)
async def test_an_invalid_route_is_reported_and_not_routed(
    op: Operator, spec: dict[str, Any], secrets: dict[str, bytes] | None, reason: str
) -> None:
    if secrets is not None:
        op.secrets.clear()
        if secrets:
            op.secrets.update(secret_index(secret_body(**secrets)))
    body = route_body("bad", **spec)
    op.index(body)
    status = await op.changed(body)
    invalid = condition(status, "Invalid")
    assert (invalid["status"], invalid["reason"]) == ("True", reason)
    assert condition(status, "Accepted")["status"] == "False"
    assert len(await op.table()) == 0


async def test_an_update_moves_the_route_and_records_the_generation(op: Operator) -> None:
    body = route_body("move", generation=1)
    op.index(body)
    first = await op.changed(body)
    updated = route_body("move", "arena.move.v2", generation=2, status=first)
    op.index(updated)
    status = await op.changed(updated)
    assert list((await op.table()).routes) == ["arena.move.v2"]
    assert status["observedGeneration"] == 2


async def test_a_rotated_secret_goes_live_without_touching_the_route(op: Operator) -> None:
    body = route_body("move")
    op.index(body)
    await op.changed(body)
    before = await op.table()
    op.secrets.clear()
    op.secrets.update(secret_index(secret_body(hmac=b"rotated-" + b"y" * 32)))
    await op.handlers.on_secret(gateway_routes=op.routes, route_secrets=op.secrets)
    after = await op.table()
    assert after.version > before.version
    assert after.routes["arena.move"].hmac_secret == b"rotated-" + b"y" * 32


async def test_a_secret_that_appears_later_makes_the_route_accepted(op: Operator) -> None:
    op.secrets.clear()
    body = route_body("move")
    op.index(body)
    status = await op.changed(body)
    assert condition(status, "Invalid")["reason"] == "SecretNotFound"
    op.secrets.update(secret_index(secret_body()))
    await op.handlers.on_secret(gateway_routes=op.routes, route_secrets=op.secrets)
    assert list((await op.table()).routes) == ["arena.move"]
    status = await op.resync(route_body("move", status=status))
    assert condition(status, "Accepted")["status"] == "True"


async def test_transition_times_move_only_when_a_status_changes(op: Operator) -> None:
    body = route_body("move")
    op.index(body)
    first = await op.changed(body)
    first["conditions"] = [
        {**c, "lastTransitionTime": "2020-01-01T00:00:00Z"} for c in first["conditions"]
    ]
    other = route_body("other", "arena.other")
    op.index(body, other)
    await op.changed(other)  # a new version: Accepted's message changes, its status does not
    status = await op.resync(route_body("move", status=first))
    assert condition(status, "Accepted")["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert condition(status, "Accepted")["message"] != condition(first, "Accepted")["message"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_down_is_a_temporary_error_and_pending_status() -> None:
    dead = redis.Redis(host="127.0.0.1", port=_closed_port(), socket_timeout=0.5,
                       socket_connect_timeout=0.5)  # fmt: skip
    op = make_operator(dead, new_route_table_key())
    body = route_body("move")
    op.index(body)
    patch = kopf.Patch()
    with pytest.raises(kopf.TemporaryError, match="route table not published: Redis"):
        await op.handlers.on_route(
            body=body, patch=patch, gateway_routes=op.routes, route_secrets=op.secrets
        )
    accepted = condition(dict(patch["status"]), "Accepted")
    assert (accepted["status"], accepted["reason"]) == ("Unknown", "PublishPending")
    deleting = route_body("move", deleting=True)
    op.index(deleting)
    # The finalizer stays until a table without the route is published.
    with pytest.raises(kopf.TemporaryError, match="without this route not published"):
        await op.handlers.on_route_deleted(
            body=deleting, gateway_routes=op.routes, route_secrets=op.secrets
        )
    await dead.aclose()


def test_indexes_copy_what_they_keep() -> None:
    body = route_body("move")
    [(key, obj)] = RouteHandlers.index_route(body).items()
    body["spec"]["messageType"] = "changed.later"
    assert key == ("games", "move") and obj.spec["messageType"] == "arena.move"
    [(skey, secret)] = RouteHandlers.index_secret(secret_body()).items()
    assert skey == ("games", "arena-route") and secret.data == {"hmac": SECRET}
    assert "x" * 32 not in repr(secret)


def test_handlers_register_with_kopf() -> None:
    registry = kopf.OperatorRegistry()
    reconciler = Reconciler(None, host_template="{service}", publish_timeout=timedelta(seconds=1))  # type: ignore[arg-type]
    RouteHandlers(reconciler, retry_delay=timedelta(seconds=1)).register(
        registry, resync_interval=timedelta(seconds=10)
    )
    changing = {(h.id, h.reason) for h in registry._changing.get_all_handlers()}  # type: ignore[attr-defined]
    assert {hid for hid, _ in changing} == {"route", "route-deleted"}
    indexing = {h.id for h in registry._indexing.get_all_handlers()}  # type: ignore[attr-defined]
    assert indexing == {"gateway_routes", "route_secrets"}
    selectors = {(s.group, s.version, s.any_name) for s in registry._changing.get_all_selectors()}  # type: ignore[attr-defined]
    assert selectors == {("gateway.galaxy.dev", "v1alpha1", "gatewayroutes")}
    secrets = [h for h in registry._indexing.get_all_handlers() if h.id == "route_secrets"]  # type: ignore[attr-defined]
    assert dict(secrets[0].labels) == {"gateway.galaxy.dev/route-secret": "true"}
    # Deletion holds a finalizer: "deleted" means "no longer routed".
    assert any(h.requires_finalizer for h in registry._changing.get_all_handlers())  # type: ignore[attr-defined]


async def test_handlers_return_nothing_for_kopf_to_store(op: Operator) -> None:
    """kopf writes a handler's return value into the object's status under its id."""
    body = route_body("move")
    op.index(body)
    kwargs = {"gateway_routes": op.routes, "route_secrets": op.secrets}
    assert await op.handlers.on_route(body=body, patch=kopf.Patch(), **kwargs) is None
    assert await op.handlers.on_resync(body=body, patch=kopf.Patch(), **kwargs) is None
    assert await op.handlers.on_secret(**kwargs) is None
