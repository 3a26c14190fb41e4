"""Configuration from MOCK_BACKEND_* and the entry point's exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from mock_backend.__main__ import main
from mock_backend.config import (
    DEFAULT_EVENTS_KEY_PREFIX,
    DEFAULT_SESSION_EVENTS_STREAM,
    ConfigError,
    load_config,
)

BASE = {
    "MOCK_BACKEND_REDIS_URL": "redis://:secret-pass@127.0.0.1:6390/0",
    "MOCK_BACKEND_HMAC_SECRET_PATH": "/run/secrets/hmac",
}


def test_defaults():
    config = load_config(BASE)
    assert (config.host, config.port) == ("127.0.0.1", 8090)
    assert config.session_events_stream == DEFAULT_SESSION_EVENTS_STREAM == "gateway:session_events"
    assert config.events_key_prefix == DEFAULT_EVENTS_KEY_PREFIX == "gateway:events:"
    assert config.fixed_login_code is None
    assert config.dev_endpoints is False
    assert config.hmac_secret_path == Path("/run/secrets/hmac")
    assert "secret-pass" not in repr(config)


def test_everything_set():
    config = load_config(
        {
            **BASE,
            "MOCK_BACKEND_ADDR": "[::1]:9000",
            "MOCK_BACKEND_SESSION_EVENTS_STREAM": "s",
            "MOCK_BACKEND_EVENTS_KEY_PREFIX": "c",
            "MOCK_BACKEND_FIXED_LOGIN_CODE": "123456",
            "MOCK_BACKEND_DEV_ENDPOINTS": "1",
        }
    )
    assert (config.host, config.port) == ("::1", 9000)
    assert (config.session_events_stream, config.events_key_prefix) == ("s", "c")
    assert config.fixed_login_code == "123456"
    assert config.dev_endpoints is True


def test_every_problem_is_reported_once():
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "MOCK_BACKEND_ADDR": "nowhere",
                "MOCK_BACKEND_FIXED_LOGIN_CODE": "12ab",
                "MOCK_BACKEND_DEV_ENDPOINTS": "maybe",
                "MOCK_BACKEND_SESSION_EVENTS_STREAM": "same",
                "MOCK_BACKEND_EVENTS_KEY_PREFIX": "same",
            }
        )
    problems = info.value.problems
    assert [p.split(": ")[0] for p in problems] == [
        "MOCK_BACKEND_ADDR",
        "MOCK_BACKEND_REDIS_URL",
        "MOCK_BACKEND_HMAC_SECRET_PATH",
        "MOCK_BACKEND_EVENTS_KEY_PREFIX",
        "MOCK_BACKEND_FIXED_LOGIN_CODE",
        "MOCK_BACKEND_DEV_ENDPOINTS",
    ]
    assert not any("nowhere" in p or "12ab" in p or "maybe" in p for p in problems)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379",
        "redis://:pw-123@",
        "redis://:pw-123@host:notaport/0",
        "not a url",
    ],
)
def test_bad_redis_url_does_not_echo_it(url):
    with pytest.raises(ConfigError) as info:
        load_config({**BASE, "MOCK_BACKEND_REDIS_URL": url})
    [problem] = info.value.problems
    assert problem.startswith("MOCK_BACKEND_REDIS_URL: ")
    assert url not in problem


@pytest.mark.parametrize("addr", ["127.0.0.1:0", "127.0.0.1:70000", "::1:8090", "host:", "8090"])
def test_bad_addr(addr):
    with pytest.raises(ConfigError) as info:
        load_config({**BASE, "MOCK_BACKEND_ADDR": addr})
    assert info.value.problems[0].startswith("MOCK_BACKEND_ADDR: ")


def test_port_only_addr_means_all_interfaces():
    config = load_config({**BASE, "MOCK_BACKEND_ADDR": ":9001"})
    assert (config.host, config.port) == ("0.0.0.0", 9001)


def test_main_exits_2_with_one_line_per_problem(monkeypatch, capsys):
    for name in [*BASE, "MOCK_BACKEND_ADDR", "MOCK_BACKEND_DEV_ENDPOINTS"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOCK_BACKEND_DEV_ENDPOINTS", "perhaps")
    assert main([]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "mock-backend: MOCK_BACKEND_REDIS_URL: is required (redis://:password@host:port/db)",
        "mock-backend: MOCK_BACKEND_HMAC_SECRET_PATH: is required (a file holding the secret)",
        "mock-backend: MOCK_BACKEND_DEV_ENDPOINTS: must be 1 or 0",
    ]


def test_main_exits_2_on_a_bad_secret_file(monkeypatch, capsys, tmp_path):
    short = tmp_path / "short"
    short.write_bytes(b"hunter2-secret\n")
    monkeypatch.setenv("MOCK_BACKEND_REDIS_URL", BASE["MOCK_BACKEND_REDIS_URL"])
    monkeypatch.setenv("MOCK_BACKEND_HMAC_SECRET_PATH", str(short))
    monkeypatch.delenv("MOCK_BACKEND_DEV_ENDPOINTS", raising=False)
    assert main([]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("mock-backend: MOCK_BACKEND_HMAC_SECRET_PATH: ")
    assert "is too short" in line
    assert "hunter2" not in line


def test_check_config(monkeypatch, capsys, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 40 + b"\n")
    monkeypatch.setenv("MOCK_BACKEND_REDIS_URL", BASE["MOCK_BACKEND_REDIS_URL"])
    monkeypatch.setenv("MOCK_BACKEND_HMAC_SECRET_PATH", str(secret))
    monkeypatch.delenv("MOCK_BACKEND_DEV_ENDPOINTS", raising=False)
    assert main(["--check-config"]) == 0
    assert "configuration OK" in capsys.readouterr().err
