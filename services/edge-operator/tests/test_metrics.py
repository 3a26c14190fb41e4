"""The operator's /metrics families, fed by real reconciles against a real Redis."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as redis

from edge_operator.handlers import IndexedSecrets
from edge_operator.metrics import OperatorMetrics
from edge_operator.reconciler import Reconciler
from edge_operator.resources import RouteObject
from edge_operator.testing import route_body, secret_body, secret_index
from edgecore.routes import RouteTablePublisher
from edgecore.routes.sealing import new_route_table_key
from edgecore.telemetry import MetricsRegistry

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    await conn.aclose()


def reconciler(client: redis.Redis, metrics: OperatorMetrics) -> Reconciler:
    prefix = f"m:{uuid.uuid4().hex}"
    publisher = RouteTablePublisher(
        client, new_route_table_key(), snapshot_key=f"{prefix}:t", stream=f"{prefix}:e"
    )
    return Reconciler(publisher, host_template="{service}", observer=metrics.observe,
                      publish_timeout=timedelta(seconds=2))  # fmt: skip


def sample(metrics: OperatorMetrics, line_start: str) -> float:
    for line in metrics.registry.render().decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{line_start} not exported")


async def test_publishes_and_route_states_are_counted(client: redis.Redis) -> None:
    metrics = OperatorMetrics(MetricsRegistry())
    rec = reconciler(client, metrics)
    secrets = IndexedSecrets(secret_index(secret_body()))
    routes = [
        RouteObject.from_body(route_body("a", created="2026-11-01T10:00:00Z")),
        RouteObject.from_body(route_body("b", created="2026-11-01T11:00:00Z")),
        RouteObject.from_body(route_body("c", "user.account.get")),
    ]
    result = await rec.reconcile(routes, secrets)
    await rec.reconcile(routes, secrets)
    assert sample(metrics, 'gateway_route_table_publishes_total{outcome="published"}') == 1
    assert sample(metrics, 'gateway_route_table_publishes_total{outcome="unchanged"}') == 1
    assert sample(metrics, 'gateway_route_table_publishes_total{outcome="failed"}') == 0
    assert sample(metrics, "gateway_route_table_version") == result.table_version
    assert sample(metrics, 'gateway_routes{state="accepted"}') == 1
    assert sample(metrics, 'gateway_routes{state="conflicted"}') == 1
    assert sample(metrics, 'gateway_routes{state="invalid"}') == 1


async def test_a_failed_publish_is_counted() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    metrics = OperatorMetrics(MetricsRegistry())
    await reconciler(dead, metrics).reconcile(
        [RouteObject.from_body(route_body("a"))], IndexedSecrets(secret_index(secret_body()))
    )
    assert sample(metrics, 'gateway_route_table_publishes_total{outcome="failed"}') == 1
    assert sample(metrics, 'gateway_routes{state="accepted"}') == 1
    await dead.aclose()
