"""Named client profiles: the device key, the device session and where the gateway is.

A profile is one JSON file ``<home>/<name>.json`` with mode 0600 inside a
0700 directory. ``home`` is ``$EDGECTL_HOME`` or ``~/.config/edgectl``.
Writes are atomic (temporary file + rename), so a failed login never
destroys the profile it would have replaced.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

from edgeclient.errors import ProfileError
from edgeclient.keys import DeviceKey

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILE_FORMAT",
    "Profile",
    "ProfileStore",
    "default_home",
]

DEFAULT_PROFILE: Final = "default"
PROFILE_FORMAT: Final = 1
_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")


def default_home() -> Path:
    """``$EDGECTL_HOME``, else ``$XDG_CONFIG_HOME/edgectl``, else ``~/.config/edgectl``."""
    env = os.environ.get("EDGECTL_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "edgectl"


@dataclass(frozen=True, slots=True)
class Profile:
    """What one login leaves behind. ``device_seed`` is secret: never print it."""

    device_seed: str = ""
    """Standard base64 of the 32-byte Ed25519 seed of the device key."""
    device_session_id: str = ""
    email: str = ""
    server_public_key: str = ""
    """Standard base64 of the gateway's raw 32-byte response-signer public key."""
    public_url: str = ""
    """Base URL of the public REST surface, e.g. ``http://127.0.0.1:8080``."""
    command_addr: str = ""
    """gRPC address serving ExecuteCommand (edge-grpc)."""
    events_addr: str = ""
    """gRPC address serving SubscribeEvents (push-hub); empty = ``command_addr``."""

    def device_key(self) -> DeviceKey:
        if not self.device_seed:
            raise ProfileError("the profile has no device key: run `edgectl login` first")
        try:
            return DeviceKey.from_seed_b64(self.device_seed)
        except ValueError as exc:
            raise ProfileError(f"the profile's device key is unusable: {exc}") from None

    def server_key_bytes(self) -> bytes:
        if not self.server_public_key:
            raise ProfileError("no server public key: pass --server-key or set EDGECTL_SERVER_KEY")
        try:
            raw = base64.b64decode(self.server_public_key, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ProfileError("the profile's server public key is not base64 of 32 bytes")
        return raw

    def redacted(self) -> dict[str, Any]:
        """The profile as a dict without the seed (the public key instead), safe to print."""
        data = asdict(self)
        seed = data.pop("device_seed")
        try:
            data["device_public_key"] = self.device_key().public_key_b64 if seed else ""
        except ProfileError:
            data["device_public_key"] = "<unusable device seed>"
        return data

    def to_json(self) -> dict[str, Any]:
        return {"format": PROFILE_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: object) -> Profile:
        if not isinstance(data, dict):
            raise ProfileError("profile file is not a JSON object")
        if data.get("format", PROFILE_FORMAT) != PROFILE_FORMAT:
            raise ProfileError(f"unsupported profile format {data.get('format')!r}")
        values: dict[str, str] = {}
        for field in fields(cls):
            value = data.get(field.name, "")
            if not isinstance(value, str):
                raise ProfileError(f"profile field {field.name!r} is not a string")
            values[field.name] = value
        return cls(**values)

    def updated(self, **changes: str | None) -> Profile:
        """A copy with every non-None change applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


class ProfileStore:
    """The directory of named profiles."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home if home is not None else default_home()

    @staticmethod
    def check_name(name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ProfileError(
                f"invalid profile name {name!r}: use letters, digits, '.', '_' or '-'"
            )
        return name

    def path(self, name: str) -> Path:
        return self.home / f"{self.check_name(name)}.json"

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def load(self, name: str) -> Profile:
        path = self.path(name)
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            raise ProfileError(
                f"no profile {name!r} in {self.home}: run `edgectl login` first"
            ) from None
        except OSError as exc:
            raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProfileError(f"profile {path} is not valid JSON: {exc.msg}") from None
        return Profile.from_json(data)

    def load_or_empty(self, name: str) -> Profile:
        return self.load(name) if self.exists(name) else Profile()

    def save(self, name: str, profile: Profile) -> Path:
        """Write the profile atomically with mode 0600 (its directory 0700)."""
        path = self.path(name)
        try:
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.home)
        except OSError as exc:
            raise ProfileError(f"cannot write profile in {self.home}: {exc.strerror}") from None
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(profile.to_json(), handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise ProfileError(f"cannot write profile {path}: {exc.strerror}") from None
        return path
