"""The settings model of each service: the sections it reads, and nothing else."""

from __future__ import annotations

from edgecore.config.loader import ServiceSettings
from edgecore.config.sections import (
    AdminHttpSettings,
    AuthenticatedAntiAbuseSettings,
    AuthenticatedGrpcSettings,
    BackendSettings,
    EventStreamSettings,
    LoggingSettings,
    OperatorSettings,
    PublicAntiAbuseSettings,
    PublicHttpSettings,
    PushSettings,
    RedisSettings,
    ReplaySettings,
    ResponseSignerSettings,
    RouteTableSettings,
    SessionCacheSettings,
    ShutdownSettings,
    TelemetrySettings,
)

__all__ = [
    "EdgeGrpcSettings",
    "EdgeOperatorSettings",
    "PublicRestSettings",
    "PushHubSettings",
]


class PublicRestSettings(ServiceSettings):
    logging: LoggingSettings
    telemetry: TelemetrySettings
    shutdown: ShutdownSettings
    admin: AdminHttpSettings
    http: PublicHttpSettings
    anti_abuse: PublicAntiAbuseSettings
    backend: BackendSettings


class EdgeGrpcSettings(ServiceSettings):
    logging: LoggingSettings
    telemetry: TelemetrySettings
    shutdown: ShutdownSettings
    admin: AdminHttpSettings
    grpc: AuthenticatedGrpcSettings
    anti_abuse: AuthenticatedAntiAbuseSettings
    session_cache: SessionCacheSettings
    redis: RedisSettings
    replay: ReplaySettings
    events: EventStreamSettings
    backend: BackendSettings
    signer: ResponseSignerSettings
    routes: RouteTableSettings


class PushHubSettings(ServiceSettings):
    logging: LoggingSettings
    telemetry: TelemetrySettings
    shutdown: ShutdownSettings
    admin: AdminHttpSettings
    grpc: AuthenticatedGrpcSettings
    anti_abuse: AuthenticatedAntiAbuseSettings
    session_cache: SessionCacheSettings
    redis: RedisSettings
    replay: ReplaySettings
    events: EventStreamSettings
    backend: BackendSettings
    signer: ResponseSignerSettings
    push: PushSettings


class EdgeOperatorSettings(ServiceSettings):
    logging: LoggingSettings
    admin: AdminHttpSettings
    redis: RedisSettings
    routes: RouteTableSettings
    operator: OperatorSettings
