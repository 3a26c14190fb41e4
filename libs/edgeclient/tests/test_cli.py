"""``edgectl`` as a real subprocess against the stand-in gateway and public REST server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from edgeclient import DeviceKey, Profile, ProfileStore
from edgeclient.testing import (
    HISTORY_GONE,
    ReceivedCommand,
    Reject,
    StandInGateway,
    StandInPublicRest,
    business_error,
    ok,
)
from edgecore.fbjson import default_codec
from edgecore.payloads import decode_subscribe_options

pytestmark = pytest.mark.integration

ACCOUNT = {"account": {"user_id": "u-1", "email": "ann@example.com", "display_name": "Ann"}}
SESSIONS_PAGE_1 = {
    "sessions": [
        {
            "device_session_id": "ds-current",
            "status": "Active",
            "created_at_ms": 1767225600000,
            "last_seen_at_ms": 1767229200000,
            "client": {"app_name": "edgectl", "app_version": "0.1", "platform": "linux"},
            "is_current": True,
        }
    ],
    "next_page_token": "page-2",
}
SESSIONS_PAGE_2 = {
    "sessions": [
        {
            "device_session_id": "ds-old-phone",
            "status": "Revoked",
            "created_at_ms": 1764547200000,
            "revoked_at_ms": 1767139200000,
            "client": {"platform": "ios", "device_name": "Ann's phone"},
        }
    ]
}


def _edgectl_command() -> list[str]:
    script = Path(sys.executable).with_name("edgectl")
    if script.exists():
        return [str(script)]
    found = shutil.which("edgectl")
    return [found] if found else [sys.executable, "-m", "edgeclient"]


EDGECTL = _edgectl_command()


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def assert_one_line_error(self, status: int) -> str:
        assert self.status == status, (self.status, self.stdout, self.stderr)
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("edgectl: "), self.stderr
        assert "Traceback" not in self.stderr
        return lines[0]


@dataclass
class World:
    gateway: StandInGateway
    rest: StandInPublicRest
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_")}
        env["EDGECTL_HOME"] = str(self.home)
        env.update(extra)
        return env

    async def edgectl(self, *args: str, stdin: str = "", **env: str) -> Run:
        process = await asyncio.create_subprocess_exec(
            *EDGECTL,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(**env),
        )
        async with asyncio.timeout(60):
            out, err = await process.communicate(stdin.encode())
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())

    async def login(self, email: str = "ann@example.com", *extra: str) -> Run:
        run = await self.edgectl(
            "login",
            email,
            "--code",
            self.rest.code,
            "--time-zone",
            "Europe/Berlin",
            "--public-url",
            self.rest.url,
            "--command-addr",
            self.gateway.address,
            "--server-key",
            self.gateway.server_public_key_b64,
            *extra,
        )
        assert run.status == 0, run
        return run

    def seed_profile(self, name: str = "default", email: str = "ann@example.com") -> None:
        """What a successful login leaves behind, written in-process (saves a subprocess)."""
        key = DeviceKey.generate()
        session = f"ds-{name}"
        self.gateway.register_session(session, key.public_key)
        ProfileStore(self.home).save(
            name,
            Profile(
                device_seed=key.seed_b64(),
                device_session_id=session,
                email=email,
                server_public_key=self.gateway.server_public_key_b64,
                public_url=self.rest.url,
                command_addr=self.gateway.address,
            ),
        )

    def profile(self, name: str = "default") -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.home / f"{name}.json").read_text())
        return data


def _sessions_page(cmd: ReceivedCommand) -> tuple[str, bytes]:
    codec = default_codec()
    request = codec.decode("user.SessionsListRequest", cmd.payload)
    page = SESSIONS_PAGE_2 if request.get("page_token") == "page-2" else SESSIONS_PAGE_1
    return ok(codec.encode("user.SessionsListResponse", page))


@pytest.fixture
async def gateway() -> AsyncIterator[StandInGateway]:
    async with StandInGateway() as gw:
        codec = default_codec()
        gw.handlers["user.account.get"] = lambda cmd: ok(
            codec.encode("user.AccountGetResponse", ACCOUNT)
        )
        gw.handlers["user.sessions.list"] = _sessions_page
        gw.handlers["lobby.invite.redeem"] = lambda cmd: business_error(
            "invite_not_found", "invite does not exist"
        )
        yield gw


@pytest.fixture
def world(gateway: StandInGateway, tmp_path: Path) -> Iterator[World]:
    with StandInPublicRest(gateway, code="424242") as rest:
        yield World(gateway, rest, tmp_path / "edgectl-home")


async def test_login_with_code_saves_a_private_profile(world: World) -> None:
    run = await world.login("ann@example.com", "--language", "ru")
    assert "logged in as ann@example.com" in run.stdout
    assert run.stderr == ""
    path = world.home / "default.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    profile = world.profile()
    [confirmed] = world.rest.confirmed
    assert profile["device_session_id"] == confirmed["device_session_id"]
    assert profile["email"] == "ann@example.com"
    assert profile["server_public_key"] == world.gateway.server_public_key_b64
    assert profile["public_url"] == world.rest.url
    assert profile["command_addr"] == world.gateway.address
    key = DeviceKey.from_seed_b64(profile["device_seed"])
    assert key.public_key_b64 == confirmed["client_public_key"]
    assert confirmed["time_zone"] == "Europe/Berlin"
    assert world.rest.sent == [("ann@example.com", "ru")]
    assert profile["device_seed"] not in run.stdout + run.stderr


async def test_login_reads_the_code_from_stdin(world: World) -> None:
    run = await world.edgectl(
        "login",
        "bob@example.com",
        stdin="424242\n",
        EDGECTL_PUBLIC_URL=world.rest.url,
        EDGECTL_COMMAND_ADDR=world.gateway.address,
        EDGECTL_SERVER_KEY=world.gateway.server_public_key_b64,
    )
    assert run.status == 0, run
    assert "Enter the code" in run.stderr
    assert world.profile()["email"] == "bob@example.com"


async def test_failed_login_keeps_the_previous_profile(world: World) -> None:
    await world.login()
    before = world.profile()
    run = await world.edgectl("login", "ann@example.com", "--code", "000000")
    line = run.assert_one_line_error(1)
    assert line == (
        "edgectl: public API error (HTTP 400) invalid_code: the code is wrong or has expired"
    )
    assert world.profile() == before


async def test_call_prints_the_verified_response(world: World) -> None:
    await world.login()  # end to end: the profile login wrote signs the call
    run = await world.edgectl("call", "user.account.get", "{}")
    assert run.status == 0, run
    assert run.json()["account"]["display_name"] == "Ann"
    [received] = world.gateway.received
    assert received.device_session_id == world.profile()["device_session_id"]


async def test_call_reads_json_from_stdin(world: World) -> None:
    world.seed_profile()
    run = await world.edgectl("call", "user.account.get", "-", stdin="{}")
    assert run.status == 0, run
    assert run.json()["account"]["user_id"] == "u-1"


async def test_events_prints_json_lines(world: World) -> None:
    invite = default_codec().encode(
        "notification.LobbyInviteReceivedEvent", {"invite_id": "inv-1", "game_name": "Andromeda"}
    )
    world.gateway.initial_events.append(("lobby.invite.received", invite))
    world.seed_profile()
    run = await world.edgectl("events", "--count", "2")
    assert run.status == 0, run
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["event_type"] for line in lines] == [
        "gateway.server_time",
        "lobby.invite.received",
    ]
    bootstrap, invite_line = lines
    [opening] = world.gateway.received
    assert bootstrap["event_id"] == opening.request_id
    assert bootstrap["position"] == world.gateway.head_position
    assert "position" not in invite_line  # not in the history (a stand-in extra)
    assert set(bootstrap["payload"]) == {"server_time_ms"}
    assert isinstance(bootstrap["timestamp_ms"], int)
    assert invite_line["payload"]["invite_id"] == "inv-1"
    assert invite_line["payload"]["game_name"] == "Andromeda"


async def test_sessions_prints_a_table_of_every_page(world: World) -> None:
    world.seed_profile()
    run = await world.edgectl("sessions")
    assert run.status == 0, run
    header, current, old = run.stdout.splitlines()
    assert header.split() == [
        "DEVICE",
        "SESSION",
        "STATUS",
        "CREATED",
        "LAST",
        "SEEN",
        "REVOKED",
        "CLIENT",
    ]
    assert current.startswith("*")
    assert "ds-current" in current
    assert "active" in current
    assert "2026-01-01 00:00:00Z" in current
    assert "edgectl 0.1, linux" in current
    assert "ds-old-phone" in old
    assert "revoked" in old
    assert "ios, Ann's phone" in old
    pages = [
        default_codec().decode("user.SessionsListRequest", c.payload)
        for c in world.gateway.received
    ]
    assert pages == [{"page_size": 0}, {"page_size": 0, "page_token": "page-2"}]

    as_json = await world.edgectl("sessions", "--json")
    assert [s["device_session_id"] for s in as_json.json()["sessions"]] == [
        "ds-current",
        "ds-old-phone",
    ]


async def test_two_profiles_side_by_side(world: World) -> None:
    await world.login("ann@example.com", "--profile", "ann")
    await world.login("bob@example.com", "--profile", "bob")
    assert world.profile("ann")["device_session_id"] != world.profile("bob")["device_session_id"]
    for name in ("ann", "bob"):
        run = await world.edgectl("--profile", name, "call", "user.account.get")
        assert run.status == 0, run
    sessions = [c.device_session_id for c in world.gateway.received]
    assert sessions == [
        world.profile("ann")["device_session_id"],
        world.profile("bob")["device_session_id"],
    ]


async def test_profile_never_shows_the_seed(world: World) -> None:
    world.seed_profile()
    run = await world.edgectl("profile")
    assert run.status == 0, run
    shown = run.json()
    assert "device_seed" not in shown
    assert world.profile()["device_seed"] not in run.stdout
    seed_key = DeviceKey.from_seed_b64(world.profile()["device_seed"])
    assert shown["device_public_key"] == seed_key.public_key_b64


async def test_profile_save_stores_a_server_key_from_a_pem_file(world: World) -> None:
    world.seed_profile()
    wrong = DeviceKey.generate().public_key_b64
    run = await world.edgectl("profile", "--server-key", wrong, "--save")
    assert run.status == 0, run
    assert world.profile()["server_public_key"] == wrong
    assert "signature is not valid" in (
        await world.edgectl("call", "user.account.get")
    ).assert_one_line_error(1)

    der = bytes.fromhex("302a300506032b6570032100") + world.gateway.server_public_key
    pem = world.home / "gateway-signer.pub.pem"
    pem.write_text(
        "-----BEGIN PUBLIC KEY-----\n"
        + base64.b64encode(der).decode()
        + "\n-----END PUBLIC KEY-----\n"
    )
    run = await world.edgectl("profile", "--save", "--server-key", f"@{pem}")
    assert run.status == 0, run
    assert run.json()["server_public_key"] == world.gateway.server_public_key_b64
    assert (await world.edgectl("call", "user.account.get")).status == 0


async def test_business_error_is_one_line_exit_1(world: World) -> None:
    world.seed_profile()
    run = await world.edgectl("call", "lobby.invite.redeem", '{"invite_id": "inv-404"}')
    line = run.assert_one_line_error(1)
    assert line == "edgectl: business error invite_not_found: invite does not exist"


async def test_a_stale_profile_is_told_to_log_in_again(world: World) -> None:
    world.seed_profile()
    world.gateway.sessions.clear()  # what a restarted dev gateway (make run) knows of it
    run = await world.edgectl("call", "user.account.get")
    assert run.assert_one_line_error(1) == (
        "edgectl: gateway error UNAUTHENTICATED: unknown device session "
        "(this profile's session is gone: run `edgectl login`)"
    )


async def test_gateway_error_is_one_line_exit_1(world: World) -> None:
    world.seed_profile()
    world.gateway.revoked.add(world.profile()["device_session_id"])
    run = await world.edgectl("call", "user.account.get")
    line = run.assert_one_line_error(1)
    assert line == "edgectl: gateway error FAILED_PRECONDITION: device session is revoked"

    def unavailable(cmd: ReceivedCommand) -> tuple[str, bytes]:
        raise Reject(grpc.StatusCode.UNAVAILABLE, "downstream service is unavailable")

    world.gateway.revoked.clear()
    world.gateway.handlers["user.account.get"] = unavailable
    run = await world.edgectl("call", "user.account.get")
    assert run.assert_one_line_error(1) == (
        "edgectl: gateway error UNAVAILABLE: downstream service is unavailable"
    )


async def test_stream_revoked_is_one_line_exit_1(world: World) -> None:
    world.seed_profile()
    process = asyncio.create_task(world.edgectl("events"))
    await world.gateway.wait_for_streams(1, seconds=30)
    await world.gateway.close_streams(
        grpc.StatusCode.FAILED_PRECONDITION, "device session is revoked"
    )
    run = await process
    assert run.assert_one_line_error(1) == (
        "edgectl: gateway error FAILED_PRECONDITION: device session is revoked"
    )
    assert len(run.stdout.splitlines()) == 1  # the bootstrap was printed first


async def _opened(world: World, count: int, seconds: float = 30.0) -> None:
    """Wait until the gateway has accepted ``count`` SubscribeEvents opens in all."""
    async with asyncio.timeout(seconds):
        while len(world.gateway.received) < count or world.gateway.active_streams < 1:
            await asyncio.sleep(0.02)


async def test_events_reopen_after_a_draining_gateway_and_end_on_revocation(
    world: World,
) -> None:
    world.seed_profile()
    process = asyncio.create_task(world.edgectl("events"))
    await _opened(world, 1)
    await world.gateway.close_streams(grpc.StatusCode.UNAVAILABLE, "gateway is shutting down")
    await _opened(world, 2)  # a second, freshly signed open
    await world.gateway.close_streams(
        grpc.StatusCode.FAILED_PRECONDITION, "device session is revoked"
    )
    run = await process
    assert run.status == 1, run
    notes = run.stderr.splitlines()
    assert len(notes) == 2, run.stderr
    assert notes[0].startswith(
        "edgectl: events: gateway error UNAVAILABLE: gateway is shutting down; reconnecting in "
    )
    assert notes[1] == "edgectl: gateway error FAILED_PRECONDITION: device session is revoked"
    opens = world.gateway.received
    assert len({o.request_id for o in opens}) == 2
    bootstraps = [json.loads(line) for line in run.stdout.splitlines()]
    assert [b["event_id"] for b in bootstraps] == [o.request_id for o in opens]
    # The second stream resumed where the first one stopped.
    first_position = bootstraps[0]["position"]
    assert notes[0].endswith(f" s from position {first_position}")
    assert [decode_subscribe_options(o.payload) for o in opens] == [None, first_position]
    assert bootstraps[1]["position"] == first_position


async def test_events_resume_from_a_saved_position(world: World) -> None:
    gateway = world.gateway
    for n in range(1, 4):
        await gateway.publish("lobby.future.kind", bytes([n]), event_id=f"e{n}")
    saved = gateway.history[0].position
    world.seed_profile()
    run = await world.edgectl("events", "--resume-from", saved, "--count", "3")
    assert run.status == 0, run
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(line["event_type"], line.get("event_id")) for line in lines[1:]] == [
        ("lobby.future.kind", "e2"),
        ("lobby.future.kind", "e3"),
    ]
    assert [line["position"] for line in lines] == [
        saved,
        gateway.history[1].position,
        gateway.history[2].position,
    ]
    assert [decode_subscribe_options(o.payload) for o in gateway.received] == [saved]


async def test_events_from_a_position_the_history_lost(world: World) -> None:
    gateway = world.gateway
    await gateway.publish("lobby.future.kind", b"")
    saved = gateway.head_position
    await gateway.publish("lobby.future.kind", b"")
    gateway.forget_history()
    world.seed_profile()
    for extra in ((), ("--no-reconnect",)):
        run = await world.edgectl("events", "--resume-from", saved, *extra)
        assert run.assert_one_line_error(1) == (
            "edgectl: the gateway's event history no longer holds the events after position "
            f"{saved} (gateway error OUT_OF_RANGE: resume position is older than the event "
            "history): refetch state and run `edgectl events` again without --resume-from"
        )
        assert run.stdout == ""
    assert len(gateway.received) == 2  # once each: never retried


async def test_events_end_when_a_live_stream_finds_its_history_gone(world: World) -> None:
    world.seed_profile()
    process = asyncio.create_task(world.edgectl("events"))
    await world.gateway.wait_for_streams(1, seconds=30)
    await world.gateway.publish("lobby.future.kind", b"\x07")
    await world.gateway.close_streams(*HISTORY_GONE)
    run = await process
    line = run.assert_one_line_error(1)
    last = json.loads(run.stdout.splitlines()[-1])
    assert last["payload"] == {"payload_hex": "07"}
    assert line.startswith(
        f"edgectl: the gateway's event history no longer holds the events after position "
        f"{last['position']} ("
    )
    assert line.endswith("run `edgectl events` again without --resume-from")
    assert len(world.gateway.received) == 1


async def test_events_from_a_malformed_position(world: World) -> None:
    world.seed_profile()
    run = await world.edgectl("events", "--resume-from", "yesterday")
    assert run.assert_one_line_error(1) == (
        "edgectl: gateway error INVALID_ARGUMENT: subscribe options are malformed"
    )
    assert len(world.gateway.received) == 1


async def test_events_no_reconnect_ends_with_the_stream(world: World) -> None:
    world.seed_profile()
    process = asyncio.create_task(world.edgectl("events", "--no-reconnect"))
    await _opened(world, 1)
    await world.gateway.close_streams(grpc.StatusCode.UNAVAILABLE, "gateway is shutting down")
    run = await process
    assert run.assert_one_line_error(1) == (
        "edgectl: gateway error UNAVAILABLE: gateway is shutting down"
    )
    assert len(world.gateway.received) == 1


async def test_interrupting_events_is_one_line_exit_130(world: World) -> None:
    world.seed_profile()
    process = await asyncio.create_subprocess_exec(
        *EDGECTL,
        "events",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=world.env(),
    )
    assert process.stdout is not None
    async with asyncio.timeout(30):
        first = await process.stdout.readline()  # the bootstrap is printed: now following
    assert json.loads(first)["event_type"] == "gateway.server_time"
    process.send_signal(signal.SIGINT)
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode is not None
    run = Run(process.returncode, out.decode(), err.decode())
    assert run.assert_one_line_error(130) == "edgectl: interrupted"
    assert run.stdout == ""


async def test_unverifiable_response_is_one_line_exit_1(world: World) -> None:
    world.seed_profile()

    def tamper(response: Any) -> None:
        response.result_code = "ok-but-forged"

    world.gateway.response_tamper = tamper
    run = await world.edgectl("call", "user.account.get")
    line = run.assert_one_line_error(1)
    assert line == (
        "edgectl: response failed verification: signature is not valid under the server public key"
    )
    assert run.stdout == ""

    world.gateway.response_tamper = None
    other_key = DeviceKey.generate().public_key_b64
    run = await world.edgectl("call", "user.account.get", "--server-key", other_key)
    assert "signature is not valid" in run.assert_one_line_error(1)


async def test_unreachable_gateway_is_one_line_exit_1(world: World) -> None:
    world.seed_profile()
    run = await world.edgectl("call", "user.account.get", "--command-addr", "127.0.0.1:1")
    assert run.assert_one_line_error(1).startswith("edgectl: gateway error UNAVAILABLE: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "edgectl: the following arguments are required: COMMAND"),
        (("frobnicate",), "edgectl: argument COMMAND: invalid choice: 'frobnicate'"),
        (("call", "user.account.get", "--bogus"), "edgectl: unrecognized arguments: --bogus"),
        (("call", "user.account.get", "{nope"), "edgectl: request is not valid JSON"),
        (("call", "user.account.get", "[]"), "edgectl: request JSON must be an object"),
        (("call", "user.nothing.here"), "edgectl: unknown message type 'user.nothing.here'"),
        (
            ("call", "user.account.get", '{"x": 1}'),
            "edgectl: request does not fit user.AccountGetRequest",
        ),
        (("events", "--count", "0"), "edgectl: --count must be at least 1"),
        (("events", "--resume-from", ""), "edgectl: --resume-from needs a position"),
        (("events", "--resume-from", "p" * 65), "edgectl: --resume-from is longer than 64"),
        (("call", "user.account.get", "--server-key", "abc"), "edgectl: invalid server key"),
        (("--profile", "../x", "call", "user.account.get"), "edgectl: invalid profile name"),
        (("--profile", "nobody", "call", "user.account.get"), "edgectl: no profile 'nobody'"),
    ],
)
async def test_usage_errors_are_one_line_exit_2(
    world: World, args: tuple[str, ...], message: str
) -> None:
    world.seed_profile()
    run = await world.edgectl(*args)
    assert run.assert_one_line_error(2).startswith(message)


async def test_login_without_public_url_is_a_usage_error(world: World) -> None:
    run = await world.edgectl("login", "ann@example.com", "--code", "1")
    assert run.assert_one_line_error(2) == (
        "edgectl: no public REST URL: pass --public-url or set EDGECTL_PUBLIC_URL"
    )


async def test_help_exits_0(world: World) -> None:
    run = await world.edgectl("--help")
    assert run.status == 0
    assert "login" in run.stdout
    assert "events" in run.stdout
