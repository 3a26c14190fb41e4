"""Settings carry every specified variable with its default and fail loudly on bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest

from edgecore.config import (
    ConfigError,
    EdgeGrpcSettings,
    HostPort,
    PublicRestSettings,
    PushHubSettings,
    known_variables,
    load_settings,
    parse_go_duration,
)
from edgecore.config.values import parse_host_port

REQUIRED = {
    "GATEWAY_REDIS_MASTER_ADDR": "127.0.0.1:6379",
    "GATEWAY_REDIS_PASSWORD": "s3cret-redis-password",
    "GATEWAY_BACKEND_GATEWAY_CLIENT_ID": "gateway-1",
    "GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH": "/etc/gateway/signer.pem",
}

# Every variable the specification names, except the ones it removes.
SPEC_VARIABLES = {
    "GATEWAY_ADMIN_HTTP_ADDR",
    "GATEWAY_ADMIN_HTTP_IDLE_TIMEOUT",
    "GATEWAY_ADMIN_HTTP_READ_HEADER_TIMEOUT",
    "GATEWAY_ADMIN_HTTP_READ_TIMEOUT",
    "GATEWAY_AUTHENTICATED_DOWNSTREAM_TIMEOUT",
    "GATEWAY_AUTHENTICATED_GRPC_ADDR",
    "GATEWAY_AUTHENTICATED_GRPC_CONNECTION_TIMEOUT",
    "GATEWAY_AUTHENTICATED_GRPC_FRESHNESS_WINDOW",
    "GATEWAY_BACKEND_GATEWAY_CLIENT_ID",
    "GATEWAY_BACKEND_HTTP_TIMEOUT",
    "GATEWAY_BACKEND_HTTP_URL",
    "GATEWAY_BACKEND_PUSH_RECONNECT_BASE_BACKOFF",
    "GATEWAY_BACKEND_PUSH_RECONNECT_MAX_BACKOFF",
    "GATEWAY_LOG_LEVEL",
    "GATEWAY_PUBLIC_AUTH_UPSTREAM_TIMEOUT",
    "GATEWAY_PUBLIC_HTTP_ADDR",
    "GATEWAY_PUBLIC_HTTP_IDLE_TIMEOUT",
    "GATEWAY_PUBLIC_HTTP_READ_HEADER_TIMEOUT",
    "GATEWAY_PUBLIC_HTTP_READ_TIMEOUT",
    "GATEWAY_REDIS_DB",
    "GATEWAY_REDIS_MASTER_ADDR",
    "GATEWAY_REDIS_OPERATION_TIMEOUT",
    "GATEWAY_REDIS_PASSWORD",
    "GATEWAY_REDIS_REPLICA_ADDRS",
    "GATEWAY_REPLAY_REDIS_KEY_PREFIX",
    "GATEWAY_REPLAY_REDIS_RESERVE_TIMEOUT",
    "GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH",
    "GATEWAY_SESSION_CACHE_MAX_ENTRIES",
    "GATEWAY_SESSION_CACHE_TTL",
    "GATEWAY_SHUTDOWN_TIMEOUT",
    *(
        f"GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_{dim}_RATE_LIMIT_{part}"
        for dim in ("IP", "SESSION", "USER", "MESSAGE_CLASS", "SESSION_LOOKUP")
        for part in ("REQUESTS", "WINDOW", "BURST")
    ),
    *(
        f"GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_{cls}_{part}"
        for cls in ("PUBLIC_AUTH", "BROWSER_BOOTSTRAP", "BROWSER_ASSET", "PUBLIC_MISC")
        for part in (
            "MAX_BODY_BYTES",
            "RATE_LIMIT_REQUESTS",
            "RATE_LIMIT_WINDOW",
            "RATE_LIMIT_BURST",
        )
    ),
    *(
        f"GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_{flow}_IDENTITY_RATE_LIMIT_{part}"
        for flow in ("SEND_EMAIL_CODE", "CONFIRM_EMAIL_CODE")
        for part in ("REQUESTS", "WINDOW", "BURST")
    ),
}


def test_every_specified_variable_is_read_by_some_service() -> None:
    assert SPEC_VARIABLES - known_variables() == set()


def test_specified_defaults() -> None:
    s = load_settings(PushHubSettings, REQUIRED)
    assert s.logging.level == "info"
    assert s.shutdown.timeout == timedelta(seconds=5)
    assert s.admin.addr is None
    assert s.admin.read_header_timeout == timedelta(seconds=2)
    assert s.admin.read_timeout == timedelta(seconds=10)
    assert s.admin.idle_timeout == timedelta(minutes=1)
    assert s.grpc.connection_timeout == timedelta(seconds=5)
    assert s.grpc.freshness_window == timedelta(minutes=5)
    assert s.grpc.downstream_timeout == timedelta(seconds=5)
    assert s.session_cache.max_entries == 50_000
    assert s.session_cache.ttl == timedelta(minutes=10)
    assert s.replay.key_prefix == "gateway:replay:"
    assert s.replay.reserve_timeout == timedelta(milliseconds=250)
    assert s.redis.db == 0
    assert s.backend.http_url is None
    assert s.backend.http_timeout == timedelta(seconds=5)
    assert s.events.reconnect_base_backoff == timedelta(milliseconds=250)
    assert s.events.reconnect_max_backoff == timedelta(seconds=30)
    assert s.push.stream_queue_capacity == 64
    assert s.telemetry.service_name == "galaxy-edge-gateway"
    assert s.telemetry.traces_exporter == "none"
    limits = {d: s.anti_abuse.policy(d) for d in ("ip", "session", "user", "message_class")}
    assert [(p.requests, p.window, p.burst) for p in limits.values()] == [
        (120, timedelta(minutes=1), 40),
        (60, timedelta(minutes=1), 20),
        (120, timedelta(minutes=1), 40),
        (60, timedelta(minutes=1), 20),
    ]


def test_public_defaults() -> None:
    s = load_settings(PublicRestSettings, {"GATEWAY_BACKEND_GATEWAY_CLIENT_ID": "g"})
    assert s.http.read_header_timeout == timedelta(seconds=2)
    assert s.http.read_timeout == timedelta(seconds=10)
    assert s.http.idle_timeout == timedelta(minutes=1)
    assert s.http.auth_upstream_timeout == timedelta(seconds=3)
    a = s.anti_abuse
    expected = {
        "public_auth": (8192, 30, timedelta(minutes=1), 10),
        "browser_bootstrap": (0, 60, timedelta(minutes=1), 20),
        "browser_asset": (0, 300, timedelta(minutes=1), 80),
        "public_misc": (0, 30, timedelta(minutes=1), 10),
    }
    for route_class, (body, requests, window, burst) in expected.items():
        policy = a.class_policy(route_class)
        assert (
            a.class_max_body_bytes(route_class),
            policy.requests,
            policy.window,
            policy.burst,
        ) == (
            body,
            requests,
            window,
            burst,
        )
    send, confirm = a.send_email_code_identity, a.confirm_email_code_identity
    assert (send.requests, send.window, send.burst) == (3, timedelta(minutes=10), 1)
    assert (confirm.requests, confirm.window, confirm.burst) == (6, timedelta(minutes=10), 2)


def test_overrides_are_applied() -> None:
    env = {
        **REQUIRED,
        "GATEWAY_SESSION_CACHE_TTL": "1h30m",
        "GATEWAY_AUTHENTICATED_GRPC_ADDR": "127.0.0.1:7000",
        "GATEWAY_ADMIN_HTTP_ADDR": ":9100",
        "GATEWAY_REDIS_REPLICA_ADDRS": "10.0.0.2:6379, 10.0.0.3:6379",
        "GATEWAY_BACKEND_HTTP_URL": "http://backend:8080/",
        "GATEWAY_BACKEND_HMAC_SECRET_PATH": "/run/secrets/hmac",
    }
    s = load_settings(EdgeGrpcSettings, env)
    assert s.session_cache.ttl == timedelta(hours=1, minutes=30)
    assert s.grpc.addr == HostPort("127.0.0.1", 7000)
    assert s.admin.addr == HostPort("", 9100)
    assert s.redis.replica_addrs == (HostPort("10.0.0.2", 6379), HostPort("10.0.0.3", 6379))
    assert s.backend.http_url == "http://backend:8080"


def test_missing_required_variables_are_each_named() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(EdgeGrpcSettings, {})
    assert err.value.problems == (
        "GATEWAY_REDIS_MASTER_ADDR: is required but not set",
        "GATEWAY_REDIS_PASSWORD: is required but not set",
        "GATEWAY_BACKEND_GATEWAY_CLIENT_ID: is required but not set",
        "GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH: is required but not set",
    )


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        (
            "GATEWAY_SHUTDOWN_TIMEOUT",
            "5",
            "invalid duration '5'; use Go syntax such as 250ms, 5s, 1m, 1h30m",
        ),
        ("GATEWAY_SHUTDOWN_TIMEOUT", "0s", "must be a positive duration"),
        ("GATEWAY_SHUTDOWN_TIMEOUT", "-1s", "must be a positive duration"),
        (
            "GATEWAY_SESSION_CACHE_MAX_ENTRIES",
            "many",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        ("GATEWAY_SESSION_CACHE_MAX_ENTRIES", "0", "must be a positive integer"),
        (
            "GATEWAY_REDIS_MASTER_ADDR",
            "redis",
            "invalid address 'redis'; expected host:port or :port",
        ),
        ("GATEWAY_REDIS_MASTER_ADDR", "redis:99999", "invalid port in address 'redis:99999'"),
        ("GATEWAY_REDIS_PASSWORD", " ", "must not be empty"),
        ("GATEWAY_REDIS_DB", "16", "Input should be less than or equal to 15"),
        ("GATEWAY_LOG_LEVEL", "verbose", "Input should be 'debug', 'info', 'warn' or 'error'"),
        ("GATEWAY_BACKEND_HTTP_URL", "backend:8080", "must be an absolute http:// or https:// URL"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "Input should be 'none' or 'otlp'"),
    ],
)
def test_malformed_value_names_variable_and_problem(name: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(
            EdgeGrpcSettings, {**REQUIRED, name: value, "GATEWAY_BACKEND_HMAC_SECRET_PATH": "/s"}
        )
    assert err.value.problems == (f"{name}: {problem}",)


def test_secret_values_are_never_echoed() -> None:
    secret = "hunter2-not-a-number"
    with pytest.raises(ConfigError) as err:
        load_settings(EdgeGrpcSettings, {**REQUIRED, "GATEWAY_REDIS_DB": secret})
    assert secret not in str(err.value)
    settings = load_settings(EdgeGrpcSettings, REQUIRED)
    assert REQUIRED["GATEWAY_REDIS_PASSWORD"] not in repr(settings)
    assert REQUIRED["GATEWAY_REDIS_PASSWORD"] not in str(settings.redis)


def test_backend_url_requires_hmac_secret() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(EdgeGrpcSettings, {**REQUIRED, "GATEWAY_BACKEND_HTTP_URL": "http://b:1"})
    assert err.value.problems == (
        "GATEWAY_BACKEND_HMAC_SECRET_PATH is required when GATEWAY_BACKEND_HTTP_URL is set",
    )


def test_backoff_order_is_checked() -> None:
    env = {
        **REQUIRED,
        "GATEWAY_BACKEND_PUSH_RECONNECT_BASE_BACKOFF": "1m",
        "GATEWAY_BACKEND_PUSH_RECONNECT_MAX_BACKOFF": "1s",
    }
    with pytest.raises(ConfigError) as err:
        load_settings(PushHubSettings, env)
    assert err.value.problems == (
        "GATEWAY_BACKEND_PUSH_RECONNECT_BASE_BACKOFF must not exceed "
        "GATEWAY_BACKEND_PUSH_RECONNECT_MAX_BACKOFF",
    )


@pytest.mark.parametrize(
    ("env", "base", "cap"),
    [
        ({}, timedelta(milliseconds=250), timedelta(seconds=1)),
        (
            {"GATEWAY_REDIS_STREAM_RECONNECT_MAX_BACKOFF": "5s"},
            timedelta(milliseconds=250),
            timedelta(seconds=5),
        ),
        (
            {
                "GATEWAY_REDIS_STREAM_RECONNECT_MAX_BACKOFF": "5s",
                "GATEWAY_BACKEND_PUSH_RECONNECT_MAX_BACKOFF": "2s",
            },
            timedelta(milliseconds=250),
            timedelta(seconds=2),
        ),
        (
            {"GATEWAY_REDIS_STREAM_RECONNECT_MAX_BACKOFF": "100ms"},
            timedelta(milliseconds=100),
            timedelta(milliseconds=100),
        ),
    ],
)
def test_stream_readers_back_off_at_most_the_redis_cap(
    env: dict[str, str], base: timedelta, cap: timedelta
) -> None:
    events = load_settings(PushHubSettings, {**REQUIRED, **env}).events
    assert (events.reader_base_backoff, events.reader_max_backoff) == (base, cap)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (
            "GATEWAY_REDIS_USERNAME",
            "no longer supported (removed with the Redis session-cache projection); remove it",
        ),
        (
            "GATEWAY_REDIS_TLS_ENABLED",
            "no longer supported (removed with the Redis session-cache projection); remove it",
        ),
        (
            "GATEWAY_SESSION_CACHE_REDIS_KEY_PREFIX",
            "no longer supported (the Redis session-cache projection was removed; the session "
            "cache is in-process); remove it",
        ),
        (
            "GATEWAY_BACKEND_GRPC_PUSH_URL",
            "no longer supported (events arrive over Redis Streams here "
            "(GATEWAY_REDIS_SESSION_EVENTS_STREAM, GATEWAY_REDIS_CLIENT_EVENTS_STREAM), not a "
            "backend gRPC push stream); remove it",
        ),
        (
            "GATEWAY_SESION_CACHE_TTL",
            "unknown variable (no Galaxy Edge Gateway service reads it; check the spelling)",
        ),
    ],
)
def test_deprecated_and_unknown_variables_are_rejected(name: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(EdgeGrpcSettings, {**REQUIRED, name: "x"})
    assert err.value.problems == (f"{name}: {problem}",)


def test_empty_admin_addr_means_disabled() -> None:
    s = load_settings(EdgeGrpcSettings, {**REQUIRED, "GATEWAY_ADMIN_HTTP_ADDR": ""})
    assert s.admin.addr is None


@pytest.mark.parametrize(
    ("traces", "generic", "expected"),
    [
        (None, None, "http/protobuf"),
        (None, "grpc", "grpc"),
        ("http/protobuf", "grpc", "http/protobuf"),
    ],
)
def test_otlp_protocol_resolution(traces: str | None, generic: str | None, expected: str) -> None:
    env = dict(REQUIRED)
    if traces:
        env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = traces
    if generic:
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = generic
    assert load_settings(EdgeGrpcSettings, env).telemetry.resolved_otlp_protocol == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", timedelta(milliseconds=250)),
        ("5s", timedelta(seconds=5)),
        ("1m", timedelta(minutes=1)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5s", timedelta(seconds=1.5)),
        ("500us", timedelta(microseconds=500)),
        ("0", timedelta(0)),
    ],
)
def test_go_durations(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5 s", "s", "1d", "1m-", "--1s"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":8080", HostPort("", 8080)),
        ("127.0.0.1:6379", HostPort("127.0.0.1", 6379)),
        ("[::1]:9090", HostPort("::1", 9090)),
    ],
)
def test_host_port(text: str, expected: HostPort) -> None:
    assert parse_host_port(text) == expected
    assert parse_host_port(str(expected)) == expected
