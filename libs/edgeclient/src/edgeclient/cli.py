"""``edgectl``: log in, call message types and follow events from a terminal.

Every response and event printed has been verified against the gateway's
response-signer public key. Errors are one line on stderr,
``edgectl: <what went wrong>``; the exit status is 1 for gateway, business,
verification and network errors, 2 for usage and configuration errors and
130 on Ctrl-C. The device seed is never printed.

``edgectl events`` prints one JSON line per event with its resume ``position``;
it reconnects by itself and resumes from the last position, so no event is
missed or repeated, and ``--resume-from POSITION`` starts after a saved one.
When the gateway's history no longer holds the events after the position it
exits 1 telling to refetch state and run again without ``--resume-from``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NoReturn

from edgeclient.client import DEFAULT_TIMEOUT, EdgeClient, Reconnect, parse_target
from edgeclient.envelope import VerifiedEvent
from edgeclient.errors import (
    EdgeClientError,
    EventHistoryGoneError,
    GatewayError,
    ProfileError,
    RequestEncodingError,
    UnknownMessageTypeError,
)
from edgeclient.jsonapi import decode_event
from edgeclient.keys import DeviceKey, parse_server_public_key
from edgeclient.profile import DEFAULT_PROFILE, Profile, ProfileStore
from edgeclient.public_auth import PublicAuthClient
from edgecore.event_positions import MAX_POSITION_BYTES

__all__ = ["main"]

PROG: Final = "edgectl"
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
SESSIONS_MESSAGE_TYPE: Final = "user.sessions.list"
_MAX_SESSION_PAGES: Final = 100

ENV_PROFILE: Final = "EDGECTL_PROFILE"
ENV_PUBLIC_URL: Final = "EDGECTL_PUBLIC_URL"
ENV_COMMAND_ADDR: Final = "EDGECTL_COMMAND_ADDR"
ENV_EVENTS_ADDR: Final = "EDGECTL_EVENTS_ADDR"
ENV_SERVER_KEY: Final = "EDGECTL_SERVER_KEY"


_prompt_open = threading.Event()
"""Set while the login prompt waits, so an error starts on a fresh line."""


class UsageError(Exception):
    """A problem with the command line or the configuration (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _common_options() -> _Parser:
    # SUPPRESS defaults let the options stand before or after the subcommand.
    common = _Parser(add_help=False)
    group = common.add_argument_group("connection options")
    s = argparse.SUPPRESS
    group.add_argument(
        "--profile", default=s, help=f"profile name (env {ENV_PROFILE}; default {DEFAULT_PROFILE})"
    )
    group.add_argument(
        "--public-url", default=s, help=f"public REST base URL (env {ENV_PUBLIC_URL})"
    )
    group.add_argument(
        "--command-addr",
        default=s,
        help=f"ExecuteCommand address host:port (env {ENV_COMMAND_ADDR})",
    )
    group.add_argument(
        "--events-addr",
        default=s,
        help=f"SubscribeEvents address (env {ENV_EVENTS_ADDR}; default: the command address)",
    )
    group.add_argument(
        "--server-key",
        default=s,
        help=f"gateway response-signer public key, base64/hex/PEM/@FILE (env {ENV_SERVER_KEY})",
    )
    group.add_argument(
        "--timeout", type=float, default=s, help=f"seconds per call (default {DEFAULT_TIMEOUT:g})"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = _Parser(
        prog=PROG,
        parents=[common],
        description="Galaxy Edge Gateway client: every response and event is verified.",
        epilog=f"Profiles live in $EDGECTL_HOME or ~/.config/edgectl ({PROG} profile shows one).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    login = commands.add_parser(
        "login", parents=[common], help="log in with an e-mail code and save the profile"
    )
    login.add_argument("email", metavar="EMAIL")
    login.add_argument("--code", help="the login code (default: ask on stdin)")
    login.add_argument("--time-zone", help="IANA time zone (default: the local one)")
    login.add_argument("--language", help="Accept-Language for the login mail, e.g. en or ru")

    call = commands.add_parser(
        "call", parents=[common], help="execute one message type with a JSON request"
    )
    call.add_argument("message_type", metavar="MESSAGE_TYPE", help="e.g. user.account.get")
    call.add_argument(
        "body", metavar="JSON", nargs="?", default="{}", help="request table as JSON ('-' = stdin)"
    )
    call.add_argument("--trace-id", help="optional correlation id")

    events = commands.add_parser(
        "events",
        parents=[common],
        help="print verified events as JSON lines",
        description="Print verified events as JSON lines, each with its resume position. "
        "Reconnects resume from the last position, so nothing is missed or repeated.",
    )
    events.add_argument(
        "--count", type=int, help="stop after N events (the bootstrap counts); default: follow"
    )
    events.add_argument(
        "--no-reconnect",
        action="store_true",
        help="end when the stream ends, instead of reopening it with backoff",
    )
    events.add_argument(
        "--resume-from",
        metavar="POSITION",
        help='start after this event position (the "position" of an event printed '
        "earlier): the events published since come first; default: from now",
    )

    sessions = commands.add_parser(
        "sessions", parents=[common], help="list the account's device sessions"
    )
    sessions.add_argument("--json", action="store_true", help="print JSON instead of a table")

    profile = commands.add_parser(
        "profile", parents=[common], help="show the profile (never the seed)"
    )
    profile.add_argument(
        "--save", action="store_true", help="store the given connection options in the profile"
    )
    return parser


@dataclass(frozen=True, slots=True)
class Context:
    store: ProfileStore
    name: str
    overrides: dict[str, str | None]
    timeout: float


def _option(args: argparse.Namespace, attr: str, env: str) -> str | None:
    value = getattr(args, attr, None)
    if value is None:
        value = os.environ.get(env) or None
    return value


def _normalize_server_key(value: str) -> str:
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).expanduser().read_text("utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read server key file {value[1:]}: {exc.strerror}") from None
    try:
        raw = parse_server_public_key(text)
    except ValueError as exc:
        raise UsageError(f"invalid server key: {exc}") from None
    return base64.b64encode(raw).decode("ascii")


def _context(args: argparse.Namespace) -> Context:
    name = getattr(args, "profile", None) or os.environ.get(ENV_PROFILE) or DEFAULT_PROFILE
    store = ProfileStore()
    store.check_name(name)
    public_url = _option(args, "public_url", ENV_PUBLIC_URL)
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        raise UsageError(f"public URL must start with http:// or https://: {public_url}")
    addresses: dict[str, str | None] = {}
    for attr, env in (("command_addr", ENV_COMMAND_ADDR), ("events_addr", ENV_EVENTS_ADDR)):
        value = _option(args, attr, env)
        if value is not None:
            try:
                parse_target(value)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        addresses[attr] = value
    server_key = _option(args, "server_key", ENV_SERVER_KEY)
    timeout = float(getattr(args, "timeout", DEFAULT_TIMEOUT))
    if timeout <= 0:
        raise UsageError("--timeout must be positive")
    return Context(
        store=store,
        name=name,
        overrides={
            "public_url": public_url,
            "server_public_key": _normalize_server_key(server_key) if server_key else None,
            **addresses,
        },
        timeout=timeout,
    )


def _effective_profile(ctx: Context) -> Profile:
    return ctx.store.load(ctx.name).updated(**ctx.overrides)


def _print_json(value: Any, *, indent: int | None = 2) -> None:
    print(json.dumps(value, indent=indent, ensure_ascii=False, default=str), flush=True)


def local_time_zone() -> str:
    """Best-effort IANA name of the local time zone, ``UTC`` when unknown."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and ("/" in tz or tz == "UTC") and not tz.startswith("/"):
        return tz
    with contextlib.suppress(OSError):
        target = os.readlink("/etc/localtime")
        marker = "zoneinfo/"
        if marker in target:
            return target.split(marker, 1)[1]
    with contextlib.suppress(OSError):
        name = Path("/etc/timezone").read_text("utf-8").strip()
        if name:
            return name
    return "UTC"


def _read_code(email: str) -> str:
    print(
        f"A login code was sent to {email}. Enter the code: ", end="", file=sys.stderr, flush=True
    )
    _prompt_open.set()
    line = sys.stdin.readline()
    _prompt_open.clear()
    code = line.strip()
    if not code:
        raise UsageError("no login code entered")
    return code


async def _read_code_async(email: str) -> str:
    """Read the code in a daemon thread, so Ctrl-C at the prompt exits at once.

    (``asyncio.to_thread`` would make interpreter shutdown wait for the blocked read.)
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def settle(code: str | None, error: BaseException | None) -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(code or "")

    def read() -> None:
        try:
            code = _read_code(email)
        except Exception as exc:
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, code, None)

    threading.Thread(target=read, name="edgectl-code-prompt", daemon=True).start()
    return await answer


async def cmd_login(args: argparse.Namespace, ctx: Context) -> int:
    existing = ctx.store.load_or_empty(ctx.name)
    profile = existing.updated(**ctx.overrides)
    if not profile.public_url:
        raise UsageError(f"no public REST URL: pass --public-url or set {ENV_PUBLIC_URL}")
    time_zone = args.time_zone or local_time_zone()
    key = DeviceKey.generate()
    async with PublicAuthClient(profile.public_url, timeout=ctx.timeout) as auth:
        challenge_id = await auth.send_email_code(args.email, args.language)
        code = args.code if args.code else await _read_code_async(args.email)
        device_session_id = await auth.confirm_email_code(
            challenge_id, code, key.public_key_b64, time_zone
        )
    # Saved only now: a failed login leaves the previous profile untouched.
    profile = profile.updated(
        device_seed=key.seed_b64(), device_session_id=device_session_id, email=args.email
    )
    path = ctx.store.save(ctx.name, profile)
    print(f"logged in as {args.email}: device session {device_session_id}")
    print(f"profile {ctx.name} saved to {path}")
    if not profile.server_public_key:
        print(
            f"{PROG}: note: no server public key yet; pass --server-key "
            f"(or set {ENV_SERVER_KEY}) to verify responses",
            file=sys.stderr,
        )
    return 0


def _json_body(text: str) -> dict[str, Any]:
    if text == "-":
        text = sys.stdin.read()
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"request is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(body, dict):
        raise UsageError("request JSON must be an object")
    return body


async def cmd_call(args: argparse.Namespace, ctx: Context) -> int:
    body = _json_body(args.body)
    profile = _effective_profile(ctx)
    async with EdgeClient.from_profile(profile, timeout=ctx.timeout) as client:
        result = await client.call_json(args.message_type, body, trace_id=args.trace_id)
    _print_json(result)
    return 0


async def cmd_events(args: argparse.Namespace, ctx: Context) -> int:
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")
    resume: str | None = args.resume_from
    if resume is not None:
        if not resume.strip():
            raise UsageError("--resume-from needs a position")
        if len(resume.encode("utf-8")) > MAX_POSITION_BYTES:
            raise UsageError(f"--resume-from is longer than {MAX_POSITION_BYTES} bytes")
    profile = _effective_profile(ctx)

    def reconnecting(step: Reconnect) -> None:
        why = str(step.cause) if step.cause is not None else "the gateway ended the stream"
        where = f" from position {step.resume_position}" if step.resume_position else ""
        print(
            f"{PROG}: events: {why}; reconnecting in {step.delay:.1f} s{where}",
            file=sys.stderr,
            flush=True,
        )

    async with EdgeClient.from_profile(profile, timeout=ctx.timeout) as client:
        events = (
            client.subscribe(resume_position=resume)
            if args.no_reconnect
            else client.follow(resume_position=resume, on_reconnect=reconnecting)
        )
        await _print_events(events, args.count)
    return 0


async def _print_events(events: AsyncGenerator[VerifiedEvent, None], count: int | None) -> None:
    seen = 0
    async with contextlib.aclosing(events) as stream:
        async for event in stream:
            line: dict[str, Any] = {
                "event_type": event.event_type,
                "event_id": event.event_id,
                "timestamp_ms": event.timestamp_ms,
            }
            if event.request_id:
                line["request_id"] = event.request_id
            if event.trace_id:
                line["trace_id"] = event.trace_id
            if event.position:
                line["position"] = event.position
            line["payload"] = decode_event(event)
            _print_json(line, indent=None)
            seen += 1
            if count is not None and seen >= count:
                break


def _ms(value: Any) -> str:
    if not isinstance(value, int) or value <= 0:
        return "-"
    return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _client_label(client: Any) -> str:
    if not isinstance(client, dict):
        return "-"
    app = " ".join(str(client[k]) for k in ("app_name", "app_version") if client.get(k))
    parts = [app] + [str(client[k]) for k in ("platform", "device_name") if client.get(k)]
    return ", ".join(p for p in parts if p) or "-"


def format_sessions(sessions: Sequence[dict[str, Any]]) -> str:
    header = ("", "DEVICE SESSION", "STATUS", "CREATED", "LAST SEEN", "REVOKED", "CLIENT")
    rows = [header]
    for s in sessions:
        rows.append(
            (
                "*" if s.get("is_current") else "",
                str(s.get("device_session_id") or "-"),
                str(s.get("status", "-")).lower(),
                _ms(s.get("created_at_ms")),
                _ms(s.get("last_seen_at_ms")),
                _ms(s.get("revoked_at_ms")),
                _client_label(s.get("client")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


async def cmd_sessions(args: argparse.Namespace, ctx: Context) -> int:
    profile = _effective_profile(ctx)
    sessions: list[dict[str, Any]] = []
    token = ""
    async with EdgeClient.from_profile(profile, timeout=ctx.timeout) as client:
        for _ in range(_MAX_SESSION_PAGES):
            body: dict[str, Any] = {"page_token": token} if token else {}
            page = await client.call_json(SESSIONS_MESSAGE_TYPE, body)
            sessions.extend(s for s in page.get("sessions", []) if isinstance(s, dict))
            token = str(page.get("next_page_token") or "")
            if not token:
                break
    if args.json:
        _print_json({"sessions": sessions})
    else:
        print(format_sessions(sessions), flush=True)
    return 0


async def cmd_profile(args: argparse.Namespace, ctx: Context) -> int:
    if args.save:
        profile = ctx.store.load_or_empty(ctx.name).updated(**ctx.overrides)
        path = ctx.store.save(ctx.name, profile)
        print(f"{PROG}: saved profile {ctx.name} ({path})", file=sys.stderr)
    else:
        profile = _effective_profile(ctx)
        path = ctx.store.path(ctx.name)
    _print_json({"profile": ctx.name, "path": str(path), **profile.redacted()})
    return 0


_COMMANDS: Final[dict[str, Callable[[argparse.Namespace, Context], Coroutine[Any, Any, int]]]] = {
    "login": cmd_login,
    "call": cmd_call,
    "events": cmd_events,
    "sessions": cmd_sessions,
    "profile": cmd_profile,
}


async def _run(args: argparse.Namespace) -> int:
    ctx = _context(args)
    return await _COMMANDS[args.command](args, ctx)


def _fail(message: str, status: int) -> int:
    text = " ".join(str(message).split()) or "failed"
    if _prompt_open.is_set():
        print(file=sys.stderr)
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)
    return status


def _status_of(exc: BaseException) -> int:
    """Print the one-line report of a failure and return the exit status."""
    if isinstance(exc, KeyboardInterrupt):
        return _fail("interrupted", EXIT_INTERRUPTED)
    if isinstance(exc, UsageError | ProfileError | UnknownMessageTypeError | RequestEncodingError):
        return _fail(str(exc), EXIT_USAGE)
    if isinstance(exc, EventHistoryGoneError):
        after = f"position {exc.resume_position}" if exc.resume_position else "the position"
        return _fail(
            f"the gateway's event history no longer holds the events after {after} ({exc}): "
            f"refetch state and run `{PROG} events` again without --resume-from",
            EXIT_FAILURE,
        )
    if (
        isinstance(exc, GatewayError)
        and exc.code_name == "UNAUTHENTICATED"
        and (exc.message == "unknown device session")
    ):
        # Typically a gateway restarted with fresh state (make run): the profile is stale.
        return _fail(f"{exc} (this profile's session is gone: run `edgectl login`)", EXIT_FAILURE)
    if isinstance(exc, EdgeClientError):
        return _fail(str(exc), EXIT_FAILURE)
    return _fail(f"unexpected error: {type(exc).__name__}: {exc}", EXIT_FAILURE)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edgectl``; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        status = asyncio.run(_run(args))
    except SystemExit as exc:  # --help
        status = exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:
        # The reader went away (e.g. `edgectl events | head`): stop quietly.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 0
    except (Exception, KeyboardInterrupt) as exc:  # never a traceback
        status = _status_of(exc)
    return status
