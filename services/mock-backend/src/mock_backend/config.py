"""Configuration of the mock backend, from ``MOCK_BACKEND_*`` environment variables.

Same rules as the gateway's services (docs/configuration.md): ``load_config``
collects every problem before failing, one line each, ``VARIABLE: problem``;
values are never echoed (the Redis URL can carry a password). Addresses are
``host:port``, ``:port`` (all interfaces) or ``[v6]:port``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_ADDR",
    "DEFAULT_EVENTS_KEY_PREFIX",
    "DEFAULT_SESSION_EVENTS_STREAM",
    "ConfigError",
    "MockBackendConfig",
    "load_config",
]

DEFAULT_ADDR: Final = "127.0.0.1:8090"
DEFAULT_SESSION_EVENTS_STREAM: Final = "gateway:session_events"
DEFAULT_EVENTS_KEY_PREFIX: Final = "gateway:events:"

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})
_CODE: Final = re.compile(r"[0-9]{6}")
_STREAM: Final = re.compile(r"[A-Za-z0-9:_.\-]{1,200}")
_REDIS_SCHEMES: Final = frozenset({"redis", "rediss", "unix"})


class ConfigError(Exception):
    """One or more configuration problems; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class MockBackendConfig:
    host: str
    port: int
    redis_url: str
    hmac_secret_path: Path
    session_events_stream: str = DEFAULT_SESSION_EVENTS_STREAM
    events_key_prefix: str = DEFAULT_EVENTS_KEY_PREFIX
    fixed_login_code: str | None = None
    dev_endpoints: bool = False

    def __repr__(self) -> str:  # the Redis URL may carry a password
        return (
            f"MockBackendConfig(addr={self.host}:{self.port}, "
            f"dev_endpoints={self.dev_endpoints}, "
            f"fixed_login_code={'set' if self.fixed_login_code else 'unset'})"
        )


def _parse_addr(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or len(port_text) > 5:
        raise ValueError("must be host:port, :port or [v6]:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("an IPv6 host must be in brackets ([v6]:port)")
    host = host or "0.0.0.0"  # noqa: S104 - ":port" means all interfaces, by convention
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError("port must be between 1 and 65535")
    return host, port


def _check_redis_url(value: str) -> None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in _REDIS_SCHEMES:
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("must name a host (redis://:password@host:port/db)")


def load_config(env: Mapping[str, str] | None = None) -> MockBackendConfig:
    env = os.environ if env is None else env
    problems: list[str] = []

    addr = env.get("MOCK_BACKEND_ADDR", "").strip() or DEFAULT_ADDR
    host, port = "", 0
    try:
        host, port = _parse_addr(addr)
    except ValueError as exc:
        problems.append(f"MOCK_BACKEND_ADDR: {exc}")

    redis_url = env.get("MOCK_BACKEND_REDIS_URL", "").strip()
    if not redis_url:
        problems.append("MOCK_BACKEND_REDIS_URL: is required (redis://:password@host:port/db)")
    else:
        try:
            _check_redis_url(redis_url)
        except ValueError as exc:
            problems.append(f"MOCK_BACKEND_REDIS_URL: {exc}")

    secret_path = env.get("MOCK_BACKEND_HMAC_SECRET_PATH", "").strip()
    if not secret_path:
        problems.append("MOCK_BACKEND_HMAC_SECRET_PATH: is required (a file holding the secret)")

    streams: dict[str, str] = {}
    for name, default in (
        ("MOCK_BACKEND_SESSION_EVENTS_STREAM", DEFAULT_SESSION_EVENTS_STREAM),
        ("MOCK_BACKEND_EVENTS_KEY_PREFIX", DEFAULT_EVENTS_KEY_PREFIX),
    ):
        value = env.get(name, "").strip() or default
        if not _STREAM.fullmatch(value):
            problems.append(f"{name}: must be 1-200 of the characters A-Za-z0-9:_.-")
        streams[name] = value
    if streams["MOCK_BACKEND_SESSION_EVENTS_STREAM"] == streams["MOCK_BACKEND_EVENTS_KEY_PREFIX"]:
        problems.append(
            "MOCK_BACKEND_EVENTS_KEY_PREFIX: must differ from MOCK_BACKEND_SESSION_EVENTS_STREAM"
        )

    code = env.get("MOCK_BACKEND_FIXED_LOGIN_CODE", "").strip() or None
    if code is not None and not _CODE.fullmatch(code):
        problems.append("MOCK_BACKEND_FIXED_LOGIN_CODE: must be exactly 6 digits when set")

    dev_text = env.get("MOCK_BACKEND_DEV_ENDPOINTS", "").strip().lower()
    if dev_text not in _TRUE | _FALSE:
        problems.append("MOCK_BACKEND_DEV_ENDPOINTS: must be 1 or 0")

    if problems:
        raise ConfigError(problems)
    return MockBackendConfig(
        host=host,
        port=port,
        redis_url=redis_url,
        hmac_secret_path=Path(secret_path),
        session_events_stream=streams["MOCK_BACKEND_SESSION_EVENTS_STREAM"],
        events_key_prefix=streams["MOCK_BACKEND_EVENTS_KEY_PREFIX"],
        fixed_login_code=code,
        dev_endpoints=dev_text in _TRUE,
    )
