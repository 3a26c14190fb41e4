"""Configuration sections: one model per concern, each field bound to its variable.

Every field names its environment variable literally (the alias) so the
specification's variable names can be grepped here. Defaults are written in
the same syntax an operator would use and go through the same validation.
Services compose the sections they need (see ``services.py``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgecore.config.values import (
    GoBool,
    HostPort,
    HttpUrl,
    ListenAddress,
    ListenAddressList,
    NameList,
    NonEmptyStr,
    OriginList,
    PositiveDuration,
    PositiveInt,
)
from edgecore.config.values import parse_go_duration as duration

__all__ = [
    "OperatorSettings",
    "RouteTableSettings",
    "AdminHttpSettings",
    "AuthenticatedAntiAbuseSettings",
    "AuthenticatedGrpcSettings",
    "BackendSettings",
    "EventStreamSettings",
    "LoggingSettings",
    "PublicAntiAbuseSettings",
    "PublicHttpSettings",
    "PushSettings",
    "RateLimitPolicy",
    "RedisSettings",
    "ReplaySettings",
    "ResponseSignerSettings",
    "Section",
    "SessionCacheSettings",
    "ShutdownSettings",
    "TelemetrySettings",
]


class Section(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_default=True, populate_by_name=False
    )


class RateLimitPolicy(BaseModel):
    """A token bucket: ``requests`` per ``window`` sustained, ``burst`` at once."""

    model_config = ConfigDict(frozen=True)

    requests: int
    window: timedelta
    burst: int

    @property
    def rate_per_second(self) -> float:
        return self.requests / self.window.total_seconds()


class LoggingSettings(Section):
    level: Literal["debug", "info", "warn", "error"] = Field("info", alias="GATEWAY_LOG_LEVEL")


class TelemetrySettings(Section):
    service_name: NonEmptyStr = Field("galaxy-edge-gateway", alias="OTEL_SERVICE_NAME")
    traces_exporter: Literal["none", "otlp"] = Field("none", alias="OTEL_TRACES_EXPORTER")
    otlp_traces_protocol: Literal["http/protobuf", "grpc"] | None = Field(
        None, alias="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    )
    otlp_protocol: Literal["http/protobuf", "grpc"] | None = Field(
        None, alias="OTEL_EXPORTER_OTLP_PROTOCOL"
    )

    @property
    def resolved_otlp_protocol(self) -> str:
        """The trace-specific protocol wins, then the generic one, then http/protobuf."""
        return self.otlp_traces_protocol or self.otlp_protocol or "http/protobuf"


class ShutdownSettings(Section):
    timeout: PositiveDuration = Field(duration("5s"), alias="GATEWAY_SHUTDOWN_TIMEOUT")


class AdminHttpSettings(Section):
    """The private /metrics listener; disabled unless GATEWAY_ADMIN_HTTP_ADDR is set."""

    addr: ListenAddress | None = Field(None, alias="GATEWAY_ADMIN_HTTP_ADDR")
    read_header_timeout: PositiveDuration = Field(
        duration("2s"), alias="GATEWAY_ADMIN_HTTP_READ_HEADER_TIMEOUT"
    )
    read_timeout: PositiveDuration = Field(duration("10s"), alias="GATEWAY_ADMIN_HTTP_READ_TIMEOUT")
    idle_timeout: PositiveDuration = Field(duration("1m"), alias="GATEWAY_ADMIN_HTTP_IDLE_TIMEOUT")

    @model_validator(mode="before")
    @classmethod
    def _empty_addr_disables(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("GATEWAY_ADMIN_HTTP_ADDR", None) == "":
            return {k: v for k, v in data.items() if k != "GATEWAY_ADMIN_HTTP_ADDR"}
        return data


class PublicHttpSettings(Section):
    addr: ListenAddress = Field(HostPort("", 8080), alias="GATEWAY_PUBLIC_HTTP_ADDR")
    read_header_timeout: PositiveDuration = Field(
        duration("2s"), alias="GATEWAY_PUBLIC_HTTP_READ_HEADER_TIMEOUT"
    )
    read_timeout: PositiveDuration = Field(
        duration("10s"), alias="GATEWAY_PUBLIC_HTTP_READ_TIMEOUT"
    )
    idle_timeout: PositiveDuration = Field(duration("1m"), alias="GATEWAY_PUBLIC_HTTP_IDLE_TIMEOUT")
    auth_upstream_timeout: PositiveDuration = Field(
        duration("3s"), alias="GATEWAY_PUBLIC_AUTH_UPSTREAM_TIMEOUT"
    )


_P = "GATEWAY_PUBLIC_HTTP_ANTI_ABUSE_"


class PublicAntiAbuseSettings(Section):
    """Budgets per public route class; classes never share buckets or counters."""

    public_auth_max_body_bytes: int = Field(8192, ge=0, alias=_P + "PUBLIC_AUTH_MAX_BODY_BYTES")
    public_auth_requests: PositiveInt = Field(30, alias=_P + "PUBLIC_AUTH_RATE_LIMIT_REQUESTS")
    public_auth_window: PositiveDuration = Field(
        duration("1m"), alias=_P + "PUBLIC_AUTH_RATE_LIMIT_WINDOW"
    )
    public_auth_burst: PositiveInt = Field(10, alias=_P + "PUBLIC_AUTH_RATE_LIMIT_BURST")

    send_email_code_identity_requests: PositiveInt = Field(
        3, alias=_P + "SEND_EMAIL_CODE_IDENTITY_RATE_LIMIT_REQUESTS"
    )
    send_email_code_identity_window: PositiveDuration = Field(
        duration("10m"), alias=_P + "SEND_EMAIL_CODE_IDENTITY_RATE_LIMIT_WINDOW"
    )
    send_email_code_identity_burst: PositiveInt = Field(
        1, alias=_P + "SEND_EMAIL_CODE_IDENTITY_RATE_LIMIT_BURST"
    )

    confirm_email_code_identity_requests: PositiveInt = Field(
        6, alias=_P + "CONFIRM_EMAIL_CODE_IDENTITY_RATE_LIMIT_REQUESTS"
    )
    confirm_email_code_identity_window: PositiveDuration = Field(
        duration("10m"), alias=_P + "CONFIRM_EMAIL_CODE_IDENTITY_RATE_LIMIT_WINDOW"
    )
    confirm_email_code_identity_burst: PositiveInt = Field(
        2, alias=_P + "CONFIRM_EMAIL_CODE_IDENTITY_RATE_LIMIT_BURST"
    )

    browser_bootstrap_max_body_bytes: int = Field(
        0, ge=0, alias=_P + "BROWSER_BOOTSTRAP_MAX_BODY_BYTES"
    )
    browser_bootstrap_requests: PositiveInt = Field(
        60, alias=_P + "BROWSER_BOOTSTRAP_RATE_LIMIT_REQUESTS"
    )
    browser_bootstrap_window: PositiveDuration = Field(
        duration("1m"), alias=_P + "BROWSER_BOOTSTRAP_RATE_LIMIT_WINDOW"
    )
    browser_bootstrap_burst: PositiveInt = Field(
        20, alias=_P + "BROWSER_BOOTSTRAP_RATE_LIMIT_BURST"
    )

    browser_asset_max_body_bytes: int = Field(0, ge=0, alias=_P + "BROWSER_ASSET_MAX_BODY_BYTES")
    browser_asset_requests: PositiveInt = Field(300, alias=_P + "BROWSER_ASSET_RATE_LIMIT_REQUESTS")
    browser_asset_window: PositiveDuration = Field(
        duration("1m"), alias=_P + "BROWSER_ASSET_RATE_LIMIT_WINDOW"
    )
    browser_asset_burst: PositiveInt = Field(80, alias=_P + "BROWSER_ASSET_RATE_LIMIT_BURST")

    public_misc_max_body_bytes: int = Field(0, ge=0, alias=_P + "PUBLIC_MISC_MAX_BODY_BYTES")
    public_misc_requests: PositiveInt = Field(30, alias=_P + "PUBLIC_MISC_RATE_LIMIT_REQUESTS")
    public_misc_window: PositiveDuration = Field(
        duration("1m"), alias=_P + "PUBLIC_MISC_RATE_LIMIT_WINDOW"
    )
    public_misc_burst: PositiveInt = Field(10, alias=_P + "PUBLIC_MISC_RATE_LIMIT_BURST")

    def class_policy(self, route_class: str) -> RateLimitPolicy:
        """Per-IP policy of a route class (public_auth, browser_bootstrap, ...)."""
        return self._policy(route_class)

    def class_max_body_bytes(self, route_class: str) -> int:
        value: int = getattr(self, f"{route_class}_max_body_bytes")
        return value

    @property
    def send_email_code_identity(self) -> RateLimitPolicy:
        return self._policy("send_email_code_identity")

    @property
    def confirm_email_code_identity(self) -> RateLimitPolicy:
        return self._policy("confirm_email_code_identity")

    def _policy(self, name: str) -> RateLimitPolicy:
        return RateLimitPolicy(
            requests=getattr(self, f"{name}_requests"),
            window=getattr(self, f"{name}_window"),
            burst=getattr(self, f"{name}_burst"),
        )


_A = "GATEWAY_AUTHENTICATED_GRPC_ANTI_ABUSE_"


class AuthenticatedAntiAbuseSettings(Section):
    """Independent authenticated budgets by peer IP, session, user and message class."""

    ip_requests: PositiveInt = Field(120, alias=_A + "IP_RATE_LIMIT_REQUESTS")
    ip_window: PositiveDuration = Field(duration("1m"), alias=_A + "IP_RATE_LIMIT_WINDOW")
    ip_burst: PositiveInt = Field(40, alias=_A + "IP_RATE_LIMIT_BURST")
    session_requests: PositiveInt = Field(60, alias=_A + "SESSION_RATE_LIMIT_REQUESTS")
    session_window: PositiveDuration = Field(duration("1m"), alias=_A + "SESSION_RATE_LIMIT_WINDOW")
    session_burst: PositiveInt = Field(20, alias=_A + "SESSION_RATE_LIMIT_BURST")
    user_requests: PositiveInt = Field(120, alias=_A + "USER_RATE_LIMIT_REQUESTS")
    user_window: PositiveDuration = Field(duration("1m"), alias=_A + "USER_RATE_LIMIT_WINDOW")
    user_burst: PositiveInt = Field(40, alias=_A + "USER_RATE_LIMIT_BURST")
    message_class_requests: PositiveInt = Field(60, alias=_A + "MESSAGE_CLASS_RATE_LIMIT_REQUESTS")
    message_class_window: PositiveDuration = Field(
        duration("1m"), alias=_A + "MESSAGE_CLASS_RATE_LIMIT_WINDOW"
    )
    message_class_burst: PositiveInt = Field(20, alias=_A + "MESSAGE_CLASS_RATE_LIMIT_BURST")
    # Added here (docs/threat-model.md): per peer IP, the session lookups that miss the
    # cache and would ask the backend, so random device_session_ids cannot become
    # backend load. Over budget: UNAUTHENTICATED "session lookup rate limit exceeded".
    session_lookup_requests: PositiveInt = Field(
        60, alias=_A + "SESSION_LOOKUP_RATE_LIMIT_REQUESTS"
    )
    session_lookup_window: PositiveDuration = Field(
        duration("1m"), alias=_A + "SESSION_LOOKUP_RATE_LIMIT_WINDOW"
    )
    session_lookup_burst: PositiveInt = Field(20, alias=_A + "SESSION_LOOKUP_RATE_LIMIT_BURST")

    def policy(
        self, dimension: Literal["ip", "session", "user", "message_class", "session_lookup"]
    ) -> RateLimitPolicy:
        return RateLimitPolicy(
            requests=getattr(self, f"{dimension}_requests"),
            window=getattr(self, f"{dimension}_window"),
            burst=getattr(self, f"{dimension}_burst"),
        )


class AuthenticatedGrpcSettings(Section):
    addr: ListenAddress = Field(HostPort("", 9090), alias="GATEWAY_AUTHENTICATED_GRPC_ADDR")
    connection_timeout: PositiveDuration = Field(
        duration("5s"), alias="GATEWAY_AUTHENTICATED_GRPC_CONNECTION_TIMEOUT"
    )
    # Not in the Go gateway's surface (docs/threat-model.md): a connection with no
    # request or stream in flight for this long is closed, and every connection is
    # drained (GOAWAY) at this age, so idle or hoarded connections cannot pile up.
    max_connection_idle: PositiveDuration = Field(
        duration("5m"), alias="GATEWAY_AUTHENTICATED_GRPC_MAX_CONNECTION_IDLE"
    )
    max_connection_age: PositiveDuration = Field(
        duration("1h"), alias="GATEWAY_AUTHENTICATED_GRPC_MAX_CONNECTION_AGE"
    )
    freshness_window: PositiveDuration = Field(
        duration("5m"), alias="GATEWAY_AUTHENTICATED_GRPC_FRESHNESS_WINDOW"
    )
    # Not in the Go gateway's surface: bounds inbound messages before any other work.
    max_message_bytes: PositiveInt = Field(
        1_048_576, alias="GATEWAY_AUTHENTICATED_GRPC_MAX_MESSAGE_BYTES"
    )
    downstream_timeout: PositiveDuration = Field(
        duration("5s"), alias="GATEWAY_AUTHENTICATED_DOWNSTREAM_TIMEOUT"
    )
    # Not in the Go gateway's surface: browsers (connect-web) calling from these origins.
    cors_allowed_origins: OriginList = Field(
        (), alias="GATEWAY_AUTHENTICATED_GRPC_CORS_ALLOWED_ORIGINS"
    )


class SessionCacheSettings(Section):
    max_entries: PositiveInt = Field(50_000, alias="GATEWAY_SESSION_CACHE_MAX_ENTRIES")
    ttl: PositiveDuration = Field(duration("10m"), alias="GATEWAY_SESSION_CACHE_TTL")
    # Added here: how long an unknown device_session_id is remembered, so a flood
    # of random ids cannot become a flood of backend lookups.
    negative_ttl: PositiveDuration = Field(
        duration("5s"), alias="GATEWAY_SESSION_CACHE_NEGATIVE_TTL"
    )


class RedisSettings(Section):
    master_addr: ListenAddress = Field(alias="GATEWAY_REDIS_MASTER_ADDR")
    password: NonEmptyStr = Field(alias="GATEWAY_REDIS_PASSWORD", repr=False)
    replica_addrs: ListenAddressList = Field((), alias="GATEWAY_REDIS_REPLICA_ADDRS")
    db: int = Field(0, ge=0, le=15, alias="GATEWAY_REDIS_DB")
    operation_timeout: PositiveDuration = Field(
        duration("1s"), alias="GATEWAY_REDIS_OPERATION_TIMEOUT"
    )

    def __repr__(self) -> str:
        return f"RedisSettings(master_addr={self.master_addr}, db={self.db}, password=<redacted>)"


class ReplaySettings(Section):
    key_prefix: NonEmptyStr = Field("gateway:replay:", alias="GATEWAY_REPLAY_REDIS_KEY_PREFIX")
    reserve_timeout: PositiveDuration = Field(
        duration("250ms"), alias="GATEWAY_REPLAY_REDIS_RESERVE_TIMEOUT"
    )


class EventStreamSettings(Section):
    """The Redis Streams that replace the Go gateway's backend gRPC push stream."""

    session_events_stream: NonEmptyStr = Field(
        "gateway:session_events", alias="GATEWAY_REDIS_SESSION_EVENTS_STREAM"
    )
    client_events_stream: NonEmptyStr = Field(
        "gateway:client_events", alias="GATEWAY_REDIS_CLIENT_EVENTS_STREAM"
    )
    # Added (docs/event-streams.md): per-user histories with resume. The single
    # client-events stream above stays readable through push-hub's bridge.
    client_events_bridge: GoBool = Field(True, alias="GATEWAY_REDIS_CLIENT_EVENTS_BRIDGE_ENABLED")
    events_key_prefix: NonEmptyStr = Field(
        "gateway:events:", alias="GATEWAY_REDIS_EVENTS_KEY_PREFIX"
    )
    history_max_events: int = Field(
        1000, ge=1, le=100_000, alias="GATEWAY_EVENT_HISTORY_MAX_EVENTS"
    )
    history_ttl: PositiveDuration = Field(duration("10m"), alias="GATEWAY_EVENT_HISTORY_TTL")
    reconnect_base_backoff: PositiveDuration = Field(
        duration("250ms"), alias="GATEWAY_BACKEND_PUSH_RECONNECT_BASE_BACKOFF"
    )
    reconnect_max_backoff: PositiveDuration = Field(
        duration("30s"), alias="GATEWAY_BACKEND_PUSH_RECONNECT_MAX_BACKOFF"
    )
    # Added: the spec's 30 s suits a remote backend stream; a Redis reader that
    # waits that long after Redis is back loses the events published meanwhile
    # to a burst (and its replica's readiness), so readers are capped by this.
    stream_reconnect_max_backoff: PositiveDuration = Field(
        duration("1s"), alias="GATEWAY_REDIS_STREAM_RECONNECT_MAX_BACKOFF"
    )

    @property
    def reader_max_backoff(self) -> timedelta:
        """The longest wait of a Redis stream reader between two reconnect attempts."""
        return min(self.reconnect_max_backoff, self.stream_reconnect_max_backoff)

    @property
    def reader_base_backoff(self) -> timedelta:
        return min(self.reconnect_base_backoff, self.reader_max_backoff)

    @model_validator(mode="after")
    def _backoff_order(self) -> EventStreamSettings:
        if self.reconnect_base_backoff > self.reconnect_max_backoff:
            raise ValueError(
                "GATEWAY_BACKEND_PUSH_RECONNECT_BASE_BACKOFF must not exceed "
                "GATEWAY_BACKEND_PUSH_RECONNECT_MAX_BACKOFF"
            )
        return self


class BackendSettings(Section):
    """The one backend. Without a URL the routes stay mounted and fail closed as unavailable."""

    http_url: HttpUrl | None = Field(None, alias="GATEWAY_BACKEND_HTTP_URL")
    http_timeout: PositiveDuration = Field(duration("5s"), alias="GATEWAY_BACKEND_HTTP_TIMEOUT")
    gateway_client_id: NonEmptyStr = Field(alias="GATEWAY_BACKEND_GATEWAY_CLIENT_ID")
    # Added here: the shared HMAC secret of the internal-route protection.
    hmac_secret_path: NonEmptyStr | None = Field(None, alias="GATEWAY_BACKEND_HMAC_SECRET_PATH")

    @model_validator(mode="before")
    @classmethod
    def _empty_url_is_unset(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("GATEWAY_BACKEND_HTTP_URL", None) == "":
            return {k: v for k, v in data.items() if k != "GATEWAY_BACKEND_HTTP_URL"}
        return data

    @model_validator(mode="after")
    def _secret_with_url(self) -> BackendSettings:
        if self.http_url is not None and self.hmac_secret_path is None:
            raise ValueError(
                "GATEWAY_BACKEND_HMAC_SECRET_PATH is required when GATEWAY_BACKEND_HTTP_URL is set"
            )
        return self


class RouteTableSettings(Section):
    """Added here: the declarative passthrough routes (docs/routes.md).

    Without a table key edge-grpc serves only the built-in routes; the
    operator requires one (it seals what it publishes).
    """

    table_key_path: NonEmptyStr | None = Field(None, alias="GATEWAY_ROUTES_TABLE_KEY_PATH")
    snapshot_key: NonEmptyStr = Field("gateway:route_table", alias="GATEWAY_REDIS_ROUTE_TABLE_KEY")
    events_stream: NonEmptyStr = Field(
        "gateway:route_events", alias="GATEWAY_REDIS_ROUTE_EVENTS_STREAM"
    )
    resync_interval: PositiveDuration = Field(
        duration("30s"), alias="GATEWAY_ROUTES_RESYNC_INTERVAL"
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_path_is_unset(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("GATEWAY_ROUTES_TABLE_KEY_PATH", None) == "":
            return {k: v for k, v in data.items() if k != "GATEWAY_ROUTES_TABLE_KEY_PATH"}
        return data


class OperatorSettings(Section):
    """Added here: the edge-operator (GatewayRoute -> route table)."""

    # Empty: every namespace (needs a ClusterRole); the chart names its own namespaces.
    namespaces: NameList = Field((), alias="GATEWAY_OPERATOR_NAMESPACES")
    # Where a route's target service lives; {service} and {namespace} are substituted.
    service_host_template: NonEmptyStr = Field(
        "{service}.{namespace}.svc.cluster.local", alias="GATEWAY_OPERATOR_SERVICE_HOST_TEMPLATE"
    )
    resync_interval: PositiveDuration = Field(
        duration("10s"), alias="GATEWAY_OPERATOR_RESYNC_INTERVAL"
    )
    health_addr: ListenAddress | None = Field(
        HostPort("", 8081), alias="GATEWAY_OPERATOR_HEALTH_ADDR"
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_health_addr_disables(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("GATEWAY_OPERATOR_HEALTH_ADDR", None) == "":
            return {**data, "GATEWAY_OPERATOR_HEALTH_ADDR": None}
        return data

    @model_validator(mode="after")
    def _template_names_the_service(self) -> OperatorSettings:
        template = self.service_host_template
        try:
            host = template.format(service="svc", namespace="ns")
        except (KeyError, IndexError, ValueError):
            raise ValueError(
                "GATEWAY_OPERATOR_SERVICE_HOST_TEMPLATE may use only {service} and {namespace}"
            ) from None
        if not host or any(c in host for c in "/?#@ "):
            raise ValueError("GATEWAY_OPERATOR_SERVICE_HOST_TEMPLATE must render a bare host name")
        return self


class ResponseSignerSettings(Section):
    private_key_pem_path: NonEmptyStr = Field(alias="GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH")


class PushSettings(Section):
    # Added here: the per-stream queue capacity the specification fixes at 64.
    stream_queue_capacity: PositiveInt = Field(64, alias="GATEWAY_PUSH_STREAM_QUEUE_CAPACITY")
