"""Kubernetes object bodies as the API server returns them: for tests and the e2e suite."""

from __future__ import annotations

import base64
from typing import Any

from edge_operator.resources import RouteObject, SecretObject

SECRET = b"route-secret-" + b"x" * 32


def route_body(
    name: str,
    message_type: str = "arena.move",
    *,
    namespace: str = "games",
    created: str = "2026-11-01T10:00:00Z",
    generation: int = 1,
    deleting: bool = False,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "gateway.galaxy.dev/v1alpha1",
        "kind": "GatewayRoute",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "generation": generation,
            "creationTimestamp": created,
        },
        "spec": {
            "messageType": message_type,
            "target": {"service": "arena", "port": 8080, "path": "/commands/move"},
            "timeout": "2s",
            "hmacSecretRef": {"name": "arena-route", "key": "hmac"},
            **spec,
        },
    }
    if deleting:
        body["metadata"]["deletionTimestamp"] = "2026-11-02T10:00:00Z"
    if status is not None:
        body["status"] = status
    return body


def secret_body(
    name: str = "arena-route", *, namespace: str = "games", **data: bytes
) -> dict[str, Any]:
    values = data or {"hmac": SECRET}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"gateway.galaxy.dev/route-secret": "true"}},
        "data": {k: base64.b64encode(v).decode() for k, v in values.items()},
    }  # fmt: skip


def route_index(*bodies: dict[str, Any]) -> dict[tuple[str, str], list[RouteObject]]:
    """What kopf's index holds: key -> store of values."""
    index: dict[tuple[str, str], list[RouteObject]] = {}
    for body in bodies:
        obj = RouteObject.from_body(body)
        index[(obj.ref.namespace, obj.ref.name)] = [obj]
    return index


def secret_index(*bodies: dict[str, Any]) -> dict[tuple[str, str], list[SecretObject]]:
    index: dict[tuple[str, str], list[SecretObject]] = {}
    for body in bodies:
        secret = SecretObject.from_body(body)
        index[(secret.namespace, secret.name)] = [secret]
    return index
