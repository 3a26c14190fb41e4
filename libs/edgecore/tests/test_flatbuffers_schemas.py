"""Contract tests for schema/*.fbs and the generated code in edgecore.fbs.

They check that the catalogue (edgecore.catalog) and the generated tables agree
1:1, and that payloads round-trip through the generated builders and readers.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

import flatbuffers
import pytest

from edgecore import catalog
from edgecore.catalog import (
    LOBBY_MESSAGE_TYPES,
    MESSAGE_TYPES,
    NOTIFICATION_KINDS,
    USER_MESSAGE_TYPES,
    message_namespace,
    notification_table_name,
    request_table_name,
    response_table_name,
)

FBS = "edgecore.fbs"


def _table_module(namespace: str, table: str) -> ModuleType:
    return importlib.import_module(f"{FBS}.{namespace}.{table}")


def _table_class(namespace: str, table: str) -> Any:
    module = _table_module(namespace, table)
    cls = getattr(module, table)
    # A generated table class, not an enum or a stray module: it has the
    # root accessor and the module has the matching builder entry points.
    assert callable(getattr(cls, "GetRootAs", None)), f"{namespace}.{table} is not a table"
    assert callable(getattr(module, f"{table}Start", None))
    assert callable(getattr(module, f"{table}End", None))
    return cls


def _namespace_tables(namespace: str) -> set[str]:
    package = importlib.import_module(f"{FBS}.{namespace}")
    return {info.name for info in pkgutil.iter_modules(package.__path__)}


def _finish(builder: flatbuffers.Builder, root: int) -> bytes:
    builder.Finish(root)
    return bytes(builder.Output())


# --- catalogue and naming rule ---------------------------------------------


def test_catalogue_sizes_and_uniqueness() -> None:
    assert len(USER_MESSAGE_TYPES) == 9
    assert len(LOBBY_MESSAGE_TYPES) == 9
    assert MESSAGE_TYPES == USER_MESSAGE_TYPES + LOBBY_MESSAGE_TYPES
    assert len(set(MESSAGE_TYPES)) == 18
    assert len(set(NOTIFICATION_KINDS)) == len(NOTIFICATION_KINDS) == 13
    assert all(t.startswith("user.") for t in USER_MESSAGE_TYPES)
    assert all(t.startswith("lobby.") for t in LOBBY_MESSAGE_TYPES)
    assert catalog.SERVER_TIME_EVENT_TYPE == "gateway.server_time"


@pytest.mark.parametrize(
    ("message_type", "namespace", "request_table", "response_table"),
    [
        ("user.account.get", "user", "AccountGetRequest", "AccountGetResponse"),
        ("user.games.report", "user", "GamesReportRequest", "GamesReportResponse"),
        (
            "user.sessions.revoke_all",
            "user",
            "SessionsRevokeAllRequest",
            "SessionsRevokeAllResponse",
        ),
        ("lobby.my.games.list", "lobby", "MyGamesListRequest", "MyGamesListResponse"),
        (
            "lobby.game.open-enrollment",
            "lobby",
            "GameOpenEnrollmentRequest",
            "GameOpenEnrollmentResponse",
        ),
    ],
)
def test_message_type_naming_rule(
    message_type: str, namespace: str, request_table: str, response_table: str
) -> None:
    assert message_namespace(message_type) == namespace
    assert request_table_name(message_type) == request_table
    assert response_table_name(message_type) == response_table


@pytest.mark.parametrize(
    ("kind", "table"),
    [
        ("lobby.invite.received", "LobbyInviteReceivedEvent"),
        ("lobby.race_name.registered", "LobbyRaceNameRegisteredEvent"),
        ("runtime.image_pull_failed", "RuntimeImagePullFailedEvent"),
    ],
)
def test_notification_naming_rule(kind: str, table: str) -> None:
    assert notification_table_name(kind) == table


@pytest.mark.parametrize("bad", ["", "user", "user.", ".account.get", "user..get", "User.x"])
def test_naming_rule_rejects_malformed_names(bad: str) -> None:
    with pytest.raises(ValueError):
        request_table_name(bad)
    with pytest.raises(ValueError):
        notification_table_name(bad)


# --- catalogue <-> generated tables ----------------------------------------


@pytest.mark.parametrize("kind", NOTIFICATION_KINDS)
def test_notification_kind_has_event_table(kind: str) -> None:
    _table_class("notification", notification_table_name(kind))


def test_notification_namespace_is_exactly_the_catalogue() -> None:
    expected = {notification_table_name(kind) for kind in NOTIFICATION_KINDS}
    assert _namespace_tables("notification") == expected


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_message_type_has_request_and_response_tables(message_type: str) -> None:
    namespace = message_namespace(message_type)
    _table_class(namespace, request_table_name(message_type))
    _table_class(namespace, response_table_name(message_type))


@pytest.mark.parametrize("namespace", ["user", "lobby"])
def test_every_request_response_table_is_catalogued(namespace: str) -> None:
    envelopes = {
        name for name in _namespace_tables(namespace) if name.endswith(("Request", "Response"))
    }
    expected = {
        name
        for message_type in MESSAGE_TYPES
        if message_namespace(message_type) == namespace
        for name in (request_table_name(message_type), response_table_name(message_type))
    }
    assert envelopes == expected


def test_generated_code_uses_package_qualified_imports() -> None:
    # flatc emits `from lobby.GameSummary import ...`; the generator rewrites it.
    module = _table_module("lobby", "MyGamesListResponse")
    assert module.GameSummary.__module__ == f"{FBS}.lobby.GameSummary"
    report = _table_module("user", "GamesReportResponse")
    assert report.Planet.__module__ == f"{FBS}.user.Planet"


# --- round trips --------------------------------------------------------------

SERVER_TIME_MS = 1_700_000_000_123

# gateway.ServerTimeEvent{server_time_ms: 1_700_000_000_123}, finished without
# a file identifier (what flatbuffers.Builder(0) produces):
SERVER_TIME_EVENT_BYTES = bytes.fromhex(
    "0c000000"  # uoffset to the root table (at 12)
    "0000"  # padding
    "0600"  # vtable @6: vtable size 6 bytes
    "0c00"  # table inline size 12 bytes
    "0400"  # field id 0 (server_time_ms) at table+4
    "06000000"  # table @12: soffset back to the vtable (12 - 6)
    "7b68e5cf8b010000"  # int64 LE 1_700_000_000_123
)


def test_server_time_event_raw_builder_matches_known_bytes() -> None:
    builder = flatbuffers.Builder(0)
    builder.StartObject(1)
    builder.PrependInt64Slot(0, SERVER_TIME_MS, 0)
    assert _finish(builder, builder.EndObject()) == SERVER_TIME_EVENT_BYTES


def test_server_time_event_generated_code_matches_known_bytes() -> None:
    module = _table_module("gateway", "ServerTimeEvent")
    builder = flatbuffers.Builder(0)
    module.ServerTimeEventStart(builder)
    module.ServerTimeEventAddServerTimeMs(builder, SERVER_TIME_MS)
    assert _finish(builder, module.ServerTimeEventEnd(builder)) == SERVER_TIME_EVENT_BYTES

    event = module.ServerTimeEvent.GetRootAs(SERVER_TIME_EVENT_BYTES, 0)
    assert event.ServerTimeMs() == SERVER_TIME_MS


def test_server_time_event_round_trip_negative_and_large() -> None:
    module = _table_module("gateway", "ServerTimeEvent")
    for value in (-1, 2**62 + 7):
        builder = flatbuffers.Builder(0)
        module.ServerTimeEventStart(builder)
        module.ServerTimeEventAddServerTimeMs(builder, value)
        data = _finish(builder, module.ServerTimeEventEnd(builder))
        assert module.ServerTimeEvent.GetRootAs(data, 0).ServerTimeMs() == value


def test_error_response_round_trip() -> None:
    module = _table_module("gateway", "ErrorResponse")
    builder = flatbuffers.Builder(0)
    code = builder.CreateString("not_found")
    message = builder.CreateString("game not found")
    module.ErrorResponseStart(builder)
    module.ErrorResponseAddCode(builder, code)
    module.ErrorResponseAddMessage(builder, message)
    data = _finish(builder, module.ErrorResponseEnd(builder))

    error = module.ErrorResponse.GetRootAs(data, 0)
    # flatc's Python readers return strings as UTF-8 bytes.
    assert error.Code() == b"not_found"
    assert error.Message() == b"game not found"

    empty = flatbuffers.Builder(0)
    module.ErrorResponseStart(empty)
    absent = module.ErrorResponse.GetRootAs(_finish(empty, module.ErrorResponseEnd(empty)), 0)
    assert absent.Code() is None
    assert absent.Message() is None


def test_games_report_response_with_all_planet_kinds() -> None:
    planet_mod = _table_module("user", "Planet")
    report_mod = _table_module("user", "GamesReportResponse")
    kind = _table_module("user", "PlanetKind").PlanetKind

    kinds = [kind.Local, kind.Other, kind.Uninhabited, kind.Unidentified]
    assert sorted(kinds) == [0, 1, 2, 3]
    planets_in = [
        # (number, name, kind, x, y, owner, population)
        (7, "Home", kind.Local, 10.5, 20.25, "Terrans", 1000.0),
        (12, "Kzin Prime", kind.Other, 150.0, 42.75, "Kzinti", 800.5),
        (3, "Rock", kind.Uninhabited, 0.0, 199.5, None, 0.0),
        (99, None, kind.Unidentified, 77.125, 3.5, None, 0.0),
    ]

    builder = flatbuffers.Builder(0)
    offsets = []
    for number, name, planet_kind, x, y, owner, population in planets_in:
        name_off = builder.CreateString(name) if name is not None else None
        owner_off = builder.CreateString(owner) if owner is not None else None
        planet_mod.PlanetStart(builder)
        planet_mod.PlanetAddNumber(builder, number)
        if name_off is not None:
            planet_mod.PlanetAddName(builder, name_off)
        planet_mod.PlanetAddKind(builder, planet_kind)
        planet_mod.PlanetAddX(builder, x)
        planet_mod.PlanetAddY(builder, y)
        if owner_off is not None:
            planet_mod.PlanetAddOwner(builder, owner_off)
        planet_mod.PlanetAddPopulation(builder, population)
        offsets.append(planet_mod.PlanetEnd(builder))
    report_mod.GamesReportResponseStartPlanetsVector(builder, len(offsets))
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    planets_vec = builder.EndVector()
    game_id = builder.CreateString("g-1")
    race = builder.CreateString("Terrans")
    report_mod.GamesReportResponseStart(builder)
    report_mod.GamesReportResponseAddGameId(builder, game_id)
    report_mod.GamesReportResponseAddTurn(builder, 5)
    report_mod.GamesReportResponseAddMapWidth(builder, 200.0)
    report_mod.GamesReportResponseAddMapHeight(builder, 150.5)
    report_mod.GamesReportResponseAddRaceName(builder, race)
    report_mod.GamesReportResponseAddPlanets(builder, planets_vec)
    data = _finish(builder, report_mod.GamesReportResponseEnd(builder))

    report = report_mod.GamesReportResponse.GetRootAs(data, 0)
    assert report.GameId() == b"g-1"
    assert report.Turn() == 5
    assert (report.MapWidth(), report.MapHeight()) == (200.0, 150.5)
    assert report.RaceName() == b"Terrans"
    assert report.PlanetsLength() == 4
    planets_out = []
    for i in range(report.PlanetsLength()):
        p = report.Planets(i)
        planets_out.append(
            (
                p.Number(),
                None if p.Name() is None else p.Name().decode(),
                p.Kind(),
                p.X(),
                p.Y(),
                None if p.Owner() is None else p.Owner().decode(),
                p.Population(),
            )
        )
    assert planets_out == planets_in
    assert {p[2] for p in planets_out} == set(kinds)


def test_my_games_list_response_carries_current_turn() -> None:
    summary_mod = _table_module("lobby", "GameSummary")
    list_mod = _table_module("lobby", "MyGamesListResponse")
    status = _table_module("lobby", "GameStatus").GameStatus
    visibility = _table_module("lobby", "GameVisibility").GameVisibility

    builder = flatbuffers.Builder(0)
    game_id = builder.CreateString("g-42")
    name = builder.CreateString("Andromeda")
    owner = builder.CreateString("u-1")
    summary_mod.GameSummaryStart(builder)
    summary_mod.GameSummaryAddGameId(builder, game_id)
    summary_mod.GameSummaryAddName(builder, name)
    summary_mod.GameSummaryAddOwnerUserId(builder, owner)
    summary_mod.GameSummaryAddStatus(builder, status.Running)
    summary_mod.GameSummaryAddVisibility(builder, visibility.Private)
    summary_mod.GameSummaryAddMinPlayers(builder, 2)
    summary_mod.GameSummaryAddMaxPlayers(builder, 8)
    summary_mod.GameSummaryAddPlayerCount(builder, 6)
    summary_mod.GameSummaryAddCurrentTurn(builder, 17)
    summary_mod.GameSummaryAddCreatedAtMs(builder, SERVER_TIME_MS)
    summary = summary_mod.GameSummaryEnd(builder)
    list_mod.MyGamesListResponseStartGamesVector(builder, 1)
    builder.PrependUOffsetTRelative(summary)
    games = builder.EndVector()
    token = builder.CreateString("page-2")
    list_mod.MyGamesListResponseStart(builder)
    list_mod.MyGamesListResponseAddGames(builder, games)
    list_mod.MyGamesListResponseAddNextPageToken(builder, token)
    data = _finish(builder, list_mod.MyGamesListResponseEnd(builder))

    response = list_mod.MyGamesListResponse.GetRootAs(data, 0)
    assert response.GamesLength() == 1
    assert response.NextPageToken() == b"page-2"
    game = response.Games(0)
    assert game.CurrentTurn() == 17
    assert game.GameId() == b"g-42"
    assert game.Name() == b"Andromeda"
    assert game.OwnerUserId() == b"u-1"
    assert game.Status() == status.Running
    assert game.Visibility() == visibility.Private
    assert (game.MinPlayers(), game.MaxPlayers(), game.PlayerCount()) == (2, 8, 6)
    assert game.CreatedAtMs() == SERVER_TIME_MS
