"""The browser console against `make run`'s system, in a real headless Chromium.

Two users play the README's opening through the console (login, a private game, an
application pushed to the owner as a verified event); a response forged in flight is
rejected by the browser SDK; and the page really is the unmodified connect-web client
talking cross-origin to edge-grpc and push-hub, each on its own port.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Response, Route, expect

from galaxy.gateway.v1.edge_gateway_pb2 import ExecuteCommandResponse

from .helpers import (
    EXECUTE_COMMAND_GLOB,
    SERVICE,
    TEST_TIMEOUT_S,
    ConsolePage,
    ConsoleSystem,
    new_email,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(TEST_TIMEOUT_S)]

OpenConsole = Callable[[], ConsolePage]


def test_login_create_game_and_receive_pushed_event(open_console: OpenConsole) -> None:
    alice = open_console()
    alice.login(new_email("alice"))
    alice.start_events()
    expect(alice.events("gateway.server_time").first).to_be_attached()

    created = alice.call_ok("lobby.game.create", {"name": "Andromeda", "visibility": "Private"})
    game_id = created["game"]["game_id"]
    assert isinstance(game_id, str)
    assert game_id
    alice.call_ok("lobby.game.open-enrollment", {"game_id": game_id})

    bob = open_console()  # a second browser context: another device, another user
    bob.login(new_email("bob"))
    bob.call_ok("lobby.application.submit", {"game_id": game_id, "race_name": "Zorgons"})

    submitted = alice.events("lobby.application.submitted")
    expect(submitted).to_have_count(1)
    expect(submitted).to_contain_text(game_id)


def _forge(body: bytes, content_type: str) -> bytes:
    """The same response with one byte of its signature flipped."""
    if content_type.startswith("application/proto"):  # Connect unary: the bare message
        return _flip_signature_byte(body)
    if content_type.startswith(("application/connect+proto", "application/grpc-web")):
        length = int.from_bytes(body[1:5], "big")  # one enveloped message, then the rest
        message = _flip_signature_byte(body[5 : 5 + length])
        return body[:1] + len(message).to_bytes(4, "big") + message + body[5 + length :]
    raise AssertionError(f"unexpected ExecuteCommand response content-type {content_type!r}")


def _flip_signature_byte(raw: bytes) -> bytes:
    response = ExecuteCommandResponse.FromString(raw)
    assert len(response.signature) == 64, "an ExecuteCommand response without a signature"
    signature = bytearray(response.signature)
    signature[10] ^= 0x01
    response.signature = bytes(signature)
    forged = response.SerializeToString()
    assert forged != raw
    return forged


def test_forged_response_is_rejected(open_console: OpenConsole) -> None:
    console = open_console()
    console.login(new_email("mallory-target"))
    forged: list[str] = []

    def forge(route: Route) -> None:
        if route.request.method != "POST":  # a CORS preflight goes through as it is
            route.continue_()
            return
        real = route.fetch()
        assert real.status == 200, real.status
        headers = {
            name: value
            for name, value in real.headers.items()
            if name.lower() not in ("content-length", "content-encoding")
        }
        content_type = headers.get("content-type", "")
        route.fulfill(status=real.status, headers=headers, body=_forge(real.body(), content_type))
        forged.append(content_type)

    console.page.route(EXECUTE_COMMAND_GLOB, forge)
    result = console.call("user.account.get", {})
    assert forged, "the ExecuteCommand response was not intercepted"
    assert result.outcome == "verification-error", result
    assert not result.result_code, result


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def test_connect_web_talks_to_both_ports_cross_origin(
    open_console: OpenConsole, console_system: ConsoleSystem
) -> None:
    config = console_system.config
    page_origin = _origin(config["publicUrl"])
    command_origin = _origin(config["commandUrl"])
    events_origin = _origin(config["eventsUrl"])
    assert page_origin != command_origin, "the console and edge-grpc share an origin: no CORS"
    assert page_origin != events_origin, "the console and push-hub share an origin: no CORS"
    assert command_origin[2] != events_origin[2]

    console = open_console()
    console.login(new_email("carol"))
    origin = "{}://{}:{}".format(*page_origin)

    def is_post(method: str) -> Callable[[Response], bool]:
        path = f"/{SERVICE}/{method}"
        return lambda r: r.request.method == "POST" and urlsplit(r.url).path == path

    with console.page.expect_response(is_post("SubscribeEvents")) as events_info:
        console.start_events()
    with console.page.expect_response(is_post("ExecuteCommand")) as command_info:
        console.call_ok("user.account.get", {})

    for response, expected_origin, streaming in (
        (command_info.value, command_origin, False),
        (events_info.value, events_origin, True),
    ):
        assert _origin(response.url) == expected_origin, response.url
        assert response.status == 200, response.url
        assert response.header_value("access-control-allow-origin") == origin
        headers = response.request.all_headers()
        assert headers.get("origin") == origin
        # The unmodified @connectrpc/connect-web client speaks Connect with binary protobuf.
        assert headers.get("connect-protocol-version") == "1", headers
        content_type = headers.get("content-type", "")
        allowed = ("application/connect+proto",) if streaming else ("application/proto",)
        assert content_type in allowed, headers


def test_device_key_and_session_survive_a_reload(open_console: OpenConsole) -> None:
    """The non-extractable WebCrypto key is kept in IndexedDB: after a reload the same
    device session signs again, and the key is still WebCrypto (never exported)."""
    console = open_console()
    session_id = console.login(new_email("dora"))
    key_kind = console.page.locator("#key-kind")
    expect(key_kind).to_contain_text("WebCrypto, non-extractable")
    public_key = key_kind.inner_text()

    console.page.reload()
    expect(console.login_state).to_have_attribute("data-state", "logged-in")
    expect(console.page.locator("#session-id")).to_have_text(session_id)
    expect(key_kind).to_have_text(public_key)
    account = console.call_ok("user.account.get", {})
    assert account["account"]["user_id"], account
