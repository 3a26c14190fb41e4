"""The TypeScript SDK from Node (`@connectrpc/connect-node`) against `make run`'s system.

Runs the package's `examples/two-users.mjs` (the README walkthrough: two logins, a
private game, an application pushed to its owner) over Connect on HTTP/2 and
HTTP/1.1, native gRPC and gRPC-Web, with the SDK as built into `dist/`.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from .helpers import GENEROUS_S, ROOT, ConsoleSystem

pytestmark = pytest.mark.integration

PROTOCOLS = ("connect", "connect-http1", "grpc", "grpc-web")
EXAMPLE = ROOT / "clients" / "typescript" / "examples" / "two-users.mjs"


def test_two_users_walkthrough_on_every_protocol(console_system: ConsoleSystem) -> None:
    node = shutil.which("node")
    assert node, "node is not on PATH"
    done = subprocess.run(
        [node, str(EXAMPLE), str(console_system.config_path), *PROTOCOLS],
        cwd=EXAMPLE.parents[1],
        capture_output=True,
        text=True,
        timeout=GENEROUS_S * len(PROTOCOLS),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    steps = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    finished = {s["protocol"]: s["events"] for s in steps if s["step"] == "done"}
    assert finished == {
        p: ["gateway.server_time", "lobby.application.submitted"] for p in PROTOCOLS
    }
    games = {s["protocol"]: s["game_id"] for s in steps if s["step"] == "alice.game"}
    pushed = {
        s["protocol"]: s["body"]
        for s in steps
        if s["step"] == "alice.event" and s["event_type"] == "lobby.application.submitted"
    }
    for protocol in PROTOCOLS:
        assert games[protocol] in json.dumps(pushed[protocol]), (protocol, pushed[protocol])
