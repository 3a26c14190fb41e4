"""Validation, conflicts and verdicts, without Kubernetes or Redis."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from edge_operator.compile import Reason, VerdictState, compile_routes
from edge_operator.handlers import IndexedSecrets
from edge_operator.resources import RouteObject, RouteRef
from edge_operator.testing import SECRET, route_body, route_index, secret_body, secret_index

TEMPLATE = "{service}.{namespace}.svc.cluster.local"


def compile_bodies(*bodies: dict[str, Any], secrets: tuple[dict[str, Any], ...] | None = None):  # type: ignore[no-untyped-def]
    objects = [obj for store in route_index(*bodies).values() for obj in store]
    source = IndexedSecrets(secret_index(*(secrets if secrets is not None else (secret_body(),))))
    return compile_routes(objects, source, host_template=TEMPLATE)


def test_a_valid_route_compiles_to_its_passthrough_route() -> None:
    result = compile_bodies(route_body("move", maxPayloadBytes=2048))
    verdict = result.verdicts[RouteRef("games", "move")]
    assert verdict.state is VerdictState.ACCEPTED and verdict.reason is Reason.PUBLISHED
    route = verdict.route
    assert route is not None
    assert route.url == "http://arena.games.svc.cluster.local:8080/commands/move"
    assert (route.timeout, route.hmac_secret, route.max_payload_bytes) == (
        timedelta(seconds=2), SECRET, 2048,
    )  # fmt: skip
    assert route.source == "games/move"
    assert result.accepted == [route]


def test_defaults_timeout_5s_and_https_scheme() -> None:
    body = route_body("move")
    del body["spec"]["timeout"]
    body["spec"]["target"]["scheme"] = "https"
    [route] = compile_bodies(body).accepted
    assert route.timeout == timedelta(seconds=5)
    assert route.url.startswith("https://arena.games.svc.cluster.local:8080/")


@pytest.mark.parametrize(
    ("spec", "reason", "message"),
    [
        ({"messageType": "user.account.get"}, Reason.RESERVED_MESSAGE_TYPE, "reserved"),
        ({"messageType": "lobby.mine"}, Reason.RESERVED_MESSAGE_TYPE, "reserved"),
        ({"messageType": "gateway.subscribe_events"}, Reason.RESERVED_MESSAGE_TYPE, "reserved"),
        ({"messageType": "-leading.dash"}, Reason.INVALID_MESSAGE_TYPE, "spec.messageType"),
        ({"messageType": "x" * 129}, Reason.INVALID_MESSAGE_TYPE, "spec.messageType"),
        ({"messageType": 7}, Reason.INVALID_MESSAGE_TYPE, "spec.messageType"),
        ({"target": {"service": "Arena", "port": 80, "path": "/"}}, Reason.INVALID_TARGET, "DNS-1035"),
        ({"target": {"service": "a", "port": 0, "path": "/"}}, Reason.INVALID_TARGET, "port"),
        ({"target": {"service": "a", "port": True, "path": "/"}}, Reason.INVALID_TARGET, "port"),
        ({"target": {"service": "a", "port": 80, "path": "x"}}, Reason.INVALID_TARGET, "path"),
        ({"target": {"service": "a", "port": 80, "path": "/a?b"}}, Reason.INVALID_TARGET, "path"),
        ({"target": {"service": "a", "port": 80, "path": "/", "scheme": "ftp"}}, Reason.INVALID_TARGET, "scheme"),
        ({"target": "http://evil"}, Reason.INVALID_TARGET, "object"),
        ({"timeout": "forever"}, Reason.INVALID_TIMEOUT, "Go duration"),
        ({"timeout": "0s"}, Reason.INVALID_TIMEOUT, "at most 5m"),
        ({"timeout": "6m"}, Reason.INVALID_TIMEOUT, "at most 5m"),
        ({"maxPayloadBytes": 0}, Reason.INVALID_MAX_PAYLOAD_BYTES, "maxPayloadBytes"),
        ({"maxPayloadBytes": "1k"}, Reason.INVALID_MAX_PAYLOAD_BYTES, "maxPayloadBytes"),
        ({"hmacSecretRef": {"name": "arena-route"}}, Reason.INVALID_SPEC, "name and a key"),
        ({"hmacSecretRef": {"name": "missing", "key": "hmac"}}, Reason.SECRET_NOT_FOUND, "not found"),
        ({"hmacSecretRef": {"name": "arena-route", "key": "other"}}, Reason.SECRET_KEY_NOT_FOUND, "no key other"),
    ],
)  # fmt: skip
def test_every_invalid_reason(spec: dict[str, Any], reason: Reason, message: str) -> None:
    result = compile_bodies(route_body("move", **spec))
    verdict = result.verdicts[RouteRef("games", "move")]
    assert verdict.state is VerdictState.INVALID
    assert verdict.reason is reason
    assert message in verdict.message
    assert result.accepted == []


def test_a_short_secret_is_invalid() -> None:
    result = compile_bodies(route_body("move"), secrets=(secret_body(hmac=b"short"),))
    verdict = result.verdicts[RouteRef("games", "move")]
    assert (verdict.state, verdict.reason) == (VerdictState.INVALID, Reason.SECRET_TOO_SHORT)
    assert "short" not in verdict.message.replace("at least", "")


def test_a_secret_in_another_namespace_is_not_found() -> None:
    result = compile_bodies(route_body("move"), secrets=(secret_body(namespace="other"),))
    assert result.verdicts[RouteRef("games", "move")].reason is Reason.SECRET_NOT_FOUND


def test_the_older_route_wins_a_conflict() -> None:
    older = route_body("older", created="2026-11-01T10:00:00Z")
    newer = route_body("newer", created="2026-11-01T10:00:05Z")
    result = compile_bodies(newer, older)
    assert result.verdicts[RouteRef("games", "older")].state is VerdictState.ACCEPTED
    lost = result.verdicts[RouteRef("games", "newer")]
    assert (lost.state, lost.reason, lost.holder) == (
        VerdictState.CONFLICTED, Reason.MESSAGE_TYPE_CLAIMED, RouteRef("games", "older"),
    )  # fmt: skip
    assert "games/older" in lost.message
    assert [r.source for r in result.accepted] == ["games/older"]


def test_same_age_ties_break_by_namespace_then_name() -> None:
    a = route_body("a", namespace="zz")
    b = route_body("b", namespace="aa")
    result = compile_bodies(
        a, b, secrets=(secret_body(namespace="zz"), secret_body(namespace="aa"))
    )
    assert result.verdicts[RouteRef("aa", "b")].state is VerdictState.ACCEPTED
    assert result.verdicts[RouteRef("zz", "a")].state is VerdictState.CONFLICTED


def test_invalid_routes_claim_nothing() -> None:
    broken_older = route_body("broken", created="2026-11-01T09:00:00Z", timeout="nope")
    valid_newer = route_body("valid", created="2026-11-01T10:00:00Z")
    result = compile_bodies(broken_older, valid_newer)
    assert result.verdicts[RouteRef("games", "valid")].state is VerdictState.ACCEPTED


def test_deleting_routes_are_left_out_and_release_their_type() -> None:
    older = route_body("older", created="2026-11-01T10:00:00Z", deleting=True)
    newer = route_body("newer", created="2026-11-01T10:00:05Z")
    result = compile_bodies(older, newer)
    assert RouteRef("games", "older") not in result.verdicts
    assert result.verdicts[RouteRef("games", "newer")].state is VerdictState.ACCEPTED


def test_the_host_template_decides_where_targets_live() -> None:
    objects = [RouteObject.from_body(route_body("move"))]
    secrets = IndexedSecrets(secret_index(secret_body()))
    [route] = compile_routes(objects, secrets, host_template="127.0.0.1").accepted
    assert route.url == "http://127.0.0.1:8080/commands/move"


def test_a_body_without_spec_is_invalid_not_a_crash() -> None:
    obj = RouteObject.from_body({"metadata": {"name": "x", "namespace": "games"}})
    result = compile_routes([obj], IndexedSecrets({}), host_template=TEMPLATE)
    assert result.verdicts[RouteRef("games", "x")].state is VerdictState.INVALID
