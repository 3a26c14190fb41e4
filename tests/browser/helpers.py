"""What the browser tests share: budgets, Chromium's flags, and the console's page contract.

The console (``clients/typescript/console``) promises these elements: ``#email``,
``#send-code``, ``#code`` (prefilled with the dev login code), ``#confirm``,
``#login-state[data-state]`` (logged-out | code-sent | logged-in), ``#session-id``;
``#message-type`` (select), ``#body`` (JSON), ``#call``, ``#result`` (pretty JSON or the
error message, ``data-outcome`` pending | ok | business-error | gateway-error |
verification-error | error, ``data-result-code`` when verified); ``#events-start``,
``#events-state[data-state]`` (idle | connecting | open | reconnecting | closed) and
``#events li.event[data-event-type][data-verified="true"]`` with the payload as JSON text.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from playwright.sync_api import Locator, Page, expect

ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_CONSOLE_DIR: Final = ROOT / "clients" / "typescript" / "dist" / "console"
ARTIFACTS_DIR: Final = ROOT / "test-results" / "browser"

# One generous budget; every wait derives from it, and none is an assertion on time.
GENEROUS_S: Final = float(os.environ.get("EDGE_BROWSER_TIMEOUT_S", "60"))
STARTUP_TIMEOUT_S: Final = 3 * GENEROUS_S
STOP_TIMEOUT_S: Final = GENEROUS_S / 2
WAIT_MS: Final = GENEROUS_S * 1000
# pytest-timeout for one test: the module's system start-up plus a dozen waits.
TEST_TIMEOUT_S: Final = int(STARTUP_TIMEOUT_S + 10 * GENEROUS_S)

# /work/.library/env/machines/polyglot.md: what Chromium needs here (root, closed network).
# Playwright adds a fresh temporary --user-data-dir to every launch itself.
CHROMIUM_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

SERVICE: Final = "galaxy.gateway.v1.EdgeGateway"
EXECUTE_COMMAND_GLOB: Final = f"**/{SERVICE}/ExecuteCommand"

# Counts changes inside #result from now on, so a wait can tell a new result from the last.
_WATCH_RESULT_JS: Final = """() => {
  if (!window.__edgeResultWatch) {
    const watch = { n: 0 };
    const inResult = (node) => {
      const el = node && (node.nodeType === 1 ? node : node.parentElement);
      return !!(el && el.closest('#result'));
    };
    new MutationObserver((records) => {
      for (const r of records) {
        if (inResult(r.target) || [...r.addedNodes].some((n) => n.nodeType === 1
            && (n.id === 'result' || n.querySelector?.('#result')))) {
          watch.n += 1;
          return;
        }
      }
    }).observe(document.body, {
      attributes: true, childList: true, characterData: true, subtree: true,
    });
    window.__edgeResultWatch = watch;
  }
  return window.__edgeResultWatch.n;
}"""
_RESULT_SETTLED_JS: Final = """(before) => {
  const el = document.querySelector('#result');
  const outcome = el && el.getAttribute('data-outcome');
  return window.__edgeResultWatch.n > before && !!outcome
    && outcome !== 'pending' && outcome !== 'idle';
}"""


@dataclass
class ConsoleSystem:
    """A running `make run` system with the console, as its banner and config.json tell."""

    config: dict[str, str]
    config_path: Path
    run_dir: Path
    output: list[str]

    @property
    def console_url(self) -> str:
        return self.config["publicUrl"].rstrip("/") + "/"


def new_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@galaxy.test"


@dataclass(frozen=True)
class CallResult:
    outcome: str
    result_code: str | None
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class ConsolePage:
    """One console page, driven only through the elements of its contract."""

    def __init__(self, page: Page, config: dict[str, str]) -> None:
        self.page = page
        self.config = config

    @property
    def login_state(self) -> Locator:
        return self.page.locator("#login-state")

    @property
    def events_state(self) -> Locator:
        return self.page.locator("#events-state")

    @property
    def result(self) -> Locator:
        return self.page.locator("#result")

    def login(self, email: str) -> str:
        """Send a code to ``email``, confirm the prefilled dev code; the device session id."""
        expect(self.login_state).to_have_attribute("data-state", "logged-out")
        self.page.fill("#email", email)
        self.page.click("#send-code")
        expect(self.login_state).to_have_attribute("data-state", "code-sent")
        expect(self.page.locator("#code")).to_have_value(self.config["devLoginCode"])
        self.page.click("#confirm")
        expect(self.login_state).to_have_attribute("data-state", "logged-in")
        session = self.page.locator("#session-id")
        expect(session).not_to_be_empty()
        return session.inner_text().strip()

    def call(self, message_type: str, body: dict[str, Any]) -> CallResult:
        """Pick the message type, enter the body, press Call and wait for the settled result."""
        self.page.select_option("#message-type", message_type)
        self.page.fill("#body", json.dumps(body))
        before = self.page.evaluate(_WATCH_RESULT_JS)
        self.page.click("#call")
        self.page.wait_for_function(_RESULT_SETTLED_JS, arg=before)
        return CallResult(
            outcome=self.result.get_attribute("data-outcome") or "",
            result_code=self.result.get_attribute("data-result-code"),
            text=self.result.inner_text(),
        )

    def call_ok(self, message_type: str, body: dict[str, Any]) -> Any:
        result = self.call(message_type, body)
        assert result.outcome == "ok", f"{message_type}: {result}"
        assert result.result_code, f"{message_type}: verified, but no data-result-code"
        return result.json()

    def start_events(self) -> None:
        self.page.click("#events-start")
        expect(self.events_state).to_have_attribute("data-state", "open")

    def events(self, event_type: str) -> Locator:
        """The verified events of one type shown so far."""
        return self.page.locator(
            f'#events li.event[data-event-type="{event_type}"][data-verified="true"]'
        )
