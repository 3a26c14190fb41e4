"""Runs the README's "Try it" walkthrough, line by line, with the real edgectl."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import Gateway

pytestmark = pytest.mark.integration

README = Path(__file__).parents[2] / "README.md"


def walkthrough_lines() -> list[str]:
    text = README.read_text("utf-8")
    block = text.split("<!-- walkthrough:start -->", 1)[1].split("<!-- walkthrough:end -->", 1)[0]
    return [
        line.strip() for line in block.splitlines() if line.strip().startswith("uv run edgectl")
    ]


def test_readme_walkthrough_runs_as_written(gateway: Gateway, tmp_path: Path) -> None:
    lines = walkthrough_lines()
    assert len(lines) >= 10
    suffix = os.urandom(3).hex()
    env = {
        **os.environ,
        "EDGECTL_HOME": str(tmp_path / "edgectl"),
        "EDGECTL_PUBLIC_URL": gateway.public_url,
        "EDGECTL_COMMAND_ADDR": gateway.command_addr,
        "EDGECTL_EVENTS_ADDR": gateway.events_addr,
        "EDGECTL_SERVER_KEY": gateway.system.server_public_key,
    }
    bindings: dict[str, str] = {}
    background: list[subprocess.Popen[str]] = []
    first_lines: list[str] = []
    for line in lines:
        command, _, comment = line.partition("#")
        argv = shlex.split(command)[2:]  # drop "uv run": the venv's edgectl is on PATH here
        # Fresh addresses per run: the walkthrough's e-mails are for a fresh `make run`.
        argv = [a.replace("@example.com", f"+{suffix}@example.com") for a in argv]
        argv = [
            re.sub(r"[A-Z]+_GAME", lambda m: bindings.get(m.group(0), m.group(0)), a) for a in argv
        ]
        full = [sys.executable, "-m", "edgeclient", *argv[1:]]
        if "background" in comment:
            background.append(
                subprocess.Popen(
                    full, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            )
            continue
        done = subprocess.run(
            full, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        for name in re.findall(r"sets ([A-Z]+_GAME)", comment):
            bindings[name] = json.loads(done.stdout)["game"]["game_id"]
        gateway.secrets.add(*(a for a in argv if "@" in a))
    assert set(bindings) == {"PRIVATE_GAME", "PUBLIC_GAME"}
    for process in background:
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        rows = [*first_lines, *out.splitlines()]
        events = [json.loads(row) for row in rows if row.strip()]
        assert [e["event_type"] for e in events] == [
            "gateway.server_time",
            "lobby.application.submitted",
        ]
