"""Device keys, server-key parsing and profile storage."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from edgeclient import DeviceKey, Profile, ProfileError, ProfileStore, parse_server_public_key
from edgeclient.client import parse_target

SERVER_KEY_HEX = "65519d64a19f2ab9e5c0fbf5bcc964036f44948cf5acca956c025547cf3f93f5"
SERVER_KEY = bytes.fromhex(SERVER_KEY_HEX)


def _spki_pem(raw: bytes) -> str:
    der = bytes.fromhex("302a300506032b6570032100") + raw
    return (
        "-----BEGIN PUBLIC KEY-----\n"
        + base64.b64encode(der).decode()
        + "\n-----END PUBLIC KEY-----\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(SERVER_KEY).decode(),
        base64.urlsafe_b64encode(SERVER_KEY).decode(),
        SERVER_KEY_HEX,
        SERVER_KEY_HEX.upper(),
        f"  {base64.b64encode(SERVER_KEY).decode()}\n",
        _spki_pem(SERVER_KEY),
    ],
    ids=["base64", "base64url", "hex", "HEX", "whitespace", "pem"],
)
def test_server_key_forms(text: str) -> None:
    assert parse_server_public_key(text) == SERVER_KEY


@pytest.mark.parametrize(
    "text",
    ["", "abc", base64.b64encode(b"x" * 31).decode(), "zz" * 32, _spki_pem(b"x" * 31)],
    ids=["empty", "garbage", "31-bytes", "bad-hex", "short-pem"],
)
def test_bad_server_keys(text: str) -> None:
    with pytest.raises(ValueError, match="server public key"):
        parse_server_public_key(text)


def test_device_key_round_trip_and_redaction() -> None:
    key = DeviceKey.generate()
    again = DeviceKey.from_seed_b64(key.seed_b64())
    assert again.public_key == key.public_key
    assert len(base64.b64decode(key.public_key_b64)) == 32
    assert key.seed_b64() not in repr(key)
    with pytest.raises(ValueError, match="32 bytes"):
        DeviceKey.from_seed_b64(base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="base64"):
        DeviceKey.from_seed_b64("not base64!")


def test_profile_store_is_private_and_atomic(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = ProfileStore(home)
    key = DeviceKey.generate()
    profile = Profile(
        device_seed=key.seed_b64(),
        device_session_id="ds-1",
        email="ann@example.com",
        server_public_key=base64.b64encode(SERVER_KEY).decode(),
        public_url="http://127.0.0.1:8080",
        command_addr="127.0.0.1:9090",
        events_addr="127.0.0.1:9091",
    )
    path = store.save("work", profile)
    assert path == home / "work.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert store.load("work") == profile
    assert json.loads(path.read_text())["format"] == 1
    assert [p.name for p in home.iterdir()] == ["work.json"]  # no temporary file left

    assert profile.server_key_bytes() == SERVER_KEY
    assert profile.device_key().public_key == key.public_key
    shown = profile.redacted()
    assert "device_seed" not in shown
    assert shown["device_public_key"] == key.public_key_b64

    updated = profile.updated(command_addr="other:1", events_addr=None)
    assert (updated.command_addr, updated.events_addr) == ("other:1", "127.0.0.1:9091")


def test_profile_errors(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path)
    with pytest.raises(ProfileError, match="run `edgectl login` first"):
        store.load("missing")
    for bad in ("", "../x", ".hidden", "a/b", "x" * 65):
        with pytest.raises(ProfileError, match="invalid profile name"):
            store.path(bad)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ProfileError, match="not valid JSON"):
        store.load("broken")
    (tmp_path / "typed.json").write_text('{"email": 3}')
    with pytest.raises(ProfileError, match="'email' is not a string"):
        store.load("typed")
    with pytest.raises(ProfileError, match="no server public key"):
        Profile().server_key_bytes()
    with pytest.raises(ProfileError, match="no device key"):
        Profile().device_key()


def test_default_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGECTL_HOME", str(tmp_path / "h"))
    assert ProfileStore().home == tmp_path / "h"
    monkeypatch.delenv("EDGECTL_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert ProfileStore().home == tmp_path / "xdg" / "edgectl"


@pytest.mark.parametrize(
    ("address", "target", "tls"),
    [
        ("127.0.0.1:9090", "127.0.0.1:9090", False),
        ("grpc://edge:9090", "edge:9090", False),
        ("http://edge:9090/", "edge:9090", False),
        ("grpcs://edge.example.com:443", "edge.example.com:443", True),
        ("https://edge.example.com", "edge.example.com", True),
    ],
)
def test_parse_target(address: str, target: str, tls: bool) -> None:
    assert parse_target(address) == (target, tls)


@pytest.mark.parametrize("address", ["", "grpc://", "http://edge:1/path"])
def test_parse_target_rejects(address: str) -> None:
    with pytest.raises(ValueError, match="invalid gRPC address"):
        parse_target(address)
