"""The route table's strict form and its seal, without I/O."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest

from edgecore.routes import (
    PassthroughRoute,
    RouteTable,
    RouteTableFormatError,
    RouteTableKeyError,
    RouteTableSealError,
    load_route_table_key,
)
from edgecore.routes.sealing import RouteTableKey, new_route_table_key

SECRET = b"s" * 32


def route(message_type: str = "arena.move", **overrides: object) -> PassthroughRoute:
    fields: dict[str, object] = {
        "message_type": message_type,
        "url": "http://arena.games.svc.cluster.local:8080/commands",
        "timeout": timedelta(seconds=2),
        "hmac_secret": SECRET,
        "max_payload_bytes": 4096,
        "source": "games/arena-move",
    }
    fields.update(overrides)
    return PassthroughRoute(**fields)  # type: ignore[arg-type]


def test_document_round_trip() -> None:
    table = RouteTable.build(7, [route("b.two"), route("a.one", max_payload_bytes=None)])
    assert list(table.routes) == ["a.one", "b.two"]
    assert RouteTable.from_document(json.loads(json.dumps(table.to_document()))) == table


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"message_type": "user.account.get"}, "reserved"),
        ({"message_type": "lobby.games.list"}, "reserved"),
        ({"message_type": "gateway.subscribe_events"}, "reserved"),
        ({"message_type": ".bad"}, "malformed"),
        ({"url": "ftp://h:1/x"}, "http(s) scheme"),
        ({"url": "http://h/x"}, "port"),
        ({"url": "http://u:p@h:1/x"}, "credentials"),
        ({"url": "http://h:1/x?q=1"}, "query"),
        ({"timeout": timedelta(0)}, "timeout"),
        ({"timeout": timedelta(minutes=6)}, "timeout"),
        ({"hmac_secret": b"short"}, "32 bytes"),
        ({"max_payload_bytes": 0}, "max_payload_bytes"),
    ],
)
def test_a_route_refuses_what_it_cannot_serve(overrides: dict[str, object], problem: str) -> None:
    message_type = str(overrides.pop("message_type", "arena.move"))
    with pytest.raises(
        RouteTableFormatError, match=problem.replace("(", r"\(").replace(")", r"\)")
    ):
        route(message_type, **overrides)


def test_two_routes_cannot_claim_one_type() -> None:
    with pytest.raises(RouteTableFormatError, match="two routes"):
        RouteTable.build(1, [route(), route()])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format="other"),
        lambda d: d.update(extra=1),
        lambda d: d.update(version="1"),
        lambda d: d.update(routes={}),
        lambda d: d["routes"][0].update(timeout_ms=True),
        lambda d: d["routes"][0].update(hmac_secret="%%%"),
        lambda d: d["routes"][0].pop("source"),
    ],
)
def test_decoding_is_strict(mutate: object) -> None:
    document = RouteTable.build(3, [route()]).to_document()
    mutate(document)  # type: ignore[operator]
    with pytest.raises(RouteTableFormatError):
        RouteTable.from_document(document)


def test_the_secret_never_shows_in_repr() -> None:
    assert "sss" not in repr(route())
    assert "sss" not in repr(RouteTable.build(1, [route()]))


def test_seal_round_trip_and_hides_the_secret() -> None:
    key = new_route_table_key()
    table = RouteTable.build(9, [route()])
    sealed = key.seal(table)
    assert key.open(sealed) == table
    assert base64.b64encode(SECRET).decode() not in sealed
    assert b"arena.move" not in base64.b64decode(sealed)


def test_a_table_does_not_open_with_another_key_or_after_tampering() -> None:
    key = new_route_table_key()
    sealed = bytearray(base64.b64decode(key.seal(RouteTable.build(1, [route()]))))
    with pytest.raises(RouteTableSealError, match="wrong key or tampered"):
        new_route_table_key().open(base64.b64encode(sealed))
    sealed[-1] ^= 1
    with pytest.raises(RouteTableSealError, match="wrong key or tampered"):
        key.open(base64.b64encode(sealed))
    with pytest.raises(RouteTableSealError):
        key.open("not base64!")


def test_digest_covers_routes_not_version_and_depends_on_the_key() -> None:
    key = RouteTableKey(b"k" * 32)
    one = key.digest(RouteTable.build(1, [route()]))
    assert one == key.digest(RouteTable.build(2, [route()]))
    assert one != key.digest(RouteTable.build(1, [route(hmac_secret=b"t" * 32)]))
    assert one != key.digest(RouteTable.build(1, [route(timeout=timedelta(seconds=3))]))
    assert one != RouteTableKey(b"j" * 32).digest(RouteTable.build(1, [route()]))


def test_key_file(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text(base64.b64encode(b"x" * 32).decode() + "\n")
    assert load_route_table_key(good).key == b"x" * 32
    short = tmp_path / "short"
    short.write_text(base64.b64encode(b"x" * 16).decode())
    with pytest.raises(RouteTableKeyError, match="32 base64-encoded bytes"):
        load_route_table_key(short)
    garbage = tmp_path / "garbage"
    garbage.write_text("not base64 at all")
    with pytest.raises(RouteTableKeyError, match="not base64"):
        load_route_table_key(garbage)
    with pytest.raises(RouteTableKeyError, match="does not exist"):
        load_route_table_key(tmp_path / "missing")
