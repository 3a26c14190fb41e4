"""The browser suite: `make run`'s system serving the built console, driven in Debian's Chromium.

* ``console_system`` (module): ``scripts/run_system.py --free-ports`` as a subprocess in its
  own process group, with its own run dir (never the developer's ``.run``); waits for the
  ``make run: console config <path>`` line, reads that config.json and always stops the
  system (SIGINT, then SIGKILL for the whole group).
* ``browser`` (module): Playwright's sync API launching the Chromium that
  ``scripts/chromium.sh`` prints (Playwright's own browser builds are never downloaded),
  with the launch flags this machine needs; every launch gets a fresh temporary profile.
* ``open_console`` (function): new browser contexts, one page each, at the console URL.
  When the test fails, each page's screenshot and console log (and the services' logs) go
  to ``test-results/browser/<test name>/`` under the repository root (git-ignored).

Without a built console (``clients/typescript/dist/console/index.html``) the suite skips,
unless ``EDGE_REQUIRE_BROWSER`` is set (not empty, not ``0``): then it fails. Build it with
``npm --prefix clients/typescript ci && npm --prefix clients/typescript run build``.
``EDGE_CONSOLE_DIR`` points the suite at another built console folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from .helpers import (
    ARTIFACTS_DIR,
    CHROMIUM_ARGS,
    DEFAULT_CONSOLE_DIR,
    GENEROUS_S,
    ROOT,
    STARTUP_TIMEOUT_S,
    STOP_TIMEOUT_S,
    WAIT_MS,
    ConsolePage,
    ConsoleSystem,
)

_CONFIG_LINE = "make run: console config "
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def _required() -> bool:
    return os.environ.get("EDGE_REQUIRE_BROWSER", "") not in ("", "0")


@pytest.fixture(scope="module")
def console_dir() -> Path:
    path = Path(os.environ.get("EDGE_CONSOLE_DIR") or DEFAULT_CONSOLE_DIR).resolve()
    if not (path / "index.html").is_file():
        reason = (
            f"the browser console is not built ({path / 'index.html'} is missing; "
            "build it: npm --prefix clients/typescript ci && "
            "npm --prefix clients/typescript run build)"
        )
        if _required():
            pytest.fail(f"{reason}, and EDGE_REQUIRE_BROWSER is set")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def console_system(
    console_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleSystem]:
    run_dir = tmp_path_factory.mktemp("console-run")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "MOCK_BACKEND_"))}
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "run_system.py"),
            "--free-ports",
            "--run-dir",
            str(run_dir),
            "--console-dir",
            str(console_dir),
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    config_line = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if line.startswith(_CONFIG_LINE):
                config_line.set()

    reader = threading.Thread(target=read, name="run_system-output", daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not config_line.wait(0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                reader.join(timeout=5)
                state = "exited" if process.poll() is not None else "timed out"
                pytest.fail(
                    f"run_system.py {state} before the console was up:\n" + "\n".join(output)
                )
        line = next(line for line in output if line.startswith(_CONFIG_LINE))
        config_path = Path(line.removeprefix(_CONFIG_LINE).strip())
        config = json.loads(config_path.read_text("utf-8"))
        yield ConsoleSystem(config, config_path, run_dir, output)
    finally:
        _stop(process)
        reader.join(timeout=5)


def _stop(process: subprocess.Popen[str]) -> None:
    """Ctrl-C for the runner (it stops its services), then SIGKILL for anything left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def chromium_path(console_dir: Path) -> str:
    done = subprocess.run(
        [str(ROOT / "scripts" / "chromium.sh")],
        capture_output=True,
        text=True,
        timeout=20 * GENEROUS_S,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        pytest.fail(f"scripts/chromium.sh found no Chromium:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    # Module scope: the sync API's own event loop is gone before async test modules run.
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(item: pytest.Item) -> bool:
    reports = item.stash.get(_REPORTS, {})
    return any(report.failed for report in reports.values())


@dataclass
class _Opened:
    context: BrowserContext
    page: Page
    log: list[str] = field(default_factory=list)


def artifacts_dir(item: pytest.Item) -> Path:
    return ARTIFACTS_DIR / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.name)


@pytest.fixture
def open_console(
    request: pytest.FixtureRequest, browser: Browser, console_system: ConsoleSystem
) -> Iterator[Callable[[], ConsolePage]]:
    """Opens the console in a fresh browser context (its own storage: another device)."""
    opened: list[_Opened] = []
    out = artifacts_dir(request.node)
    shutil.rmtree(out, ignore_errors=True)

    def open_one() -> ConsolePage:
        context = browser.new_context()
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        entry = _Opened(context, page)

        def on_console(message: ConsoleMessage) -> None:
            entry.log.append(f"[{message.type}] {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: entry.log.append(f"[pageerror] {error}"))
        opened.append(entry)
        page.goto(console_system.console_url)
        return ConsolePage(page, console_system.config)

    yield open_one
    try:
        if _failed(request.node):
            _save_artifacts(out, opened, console_system)
    finally:
        for entry in opened:
            with contextlib.suppress(Exception):
                entry.context.close()


def _save_artifacts(out: Path, opened: list[_Opened], system: ConsoleSystem) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for number, entry in enumerate(opened, start=1):
        with contextlib.suppress(Exception):
            entry.page.screenshot(path=out / f"page-{number}.png", full_page=True)
        (out / f"page-{number}-console.log").write_text("\n".join(entry.log) + "\n", "utf-8")
    (out / "run_system.log").write_text("\n".join(system.output) + "\n", "utf-8")
    for log in sorted((system.run_dir / "logs").glob("*.log")):
        with contextlib.suppress(OSError):
            shutil.copyfile(log, out / log.name)
    sys.stderr.write(f"\nbrowser artifacts: {out}\n")
