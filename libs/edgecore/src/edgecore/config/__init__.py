"""Typed settings read from the environment (docs/configuration.md)."""

from edgecore.config.loader import (
    ConfigError,
    ServiceSettings,
    known_variables,
    load_settings,
    load_settings_or_exit,
)
from edgecore.config.sections import RateLimitPolicy
from edgecore.config.services import (
    EdgeGrpcSettings,
    EdgeOperatorSettings,
    PublicRestSettings,
    PushHubSettings,
)
from edgecore.config.values import HostPort, format_duration, parse_go_duration

__all__ = [
    "ConfigError",
    "EdgeGrpcSettings",
    "EdgeOperatorSettings",
    "HostPort",
    "PublicRestSettings",
    "PushHubSettings",
    "RateLimitPolicy",
    "ServiceSettings",
    "format_duration",
    "known_variables",
    "load_settings",
    "load_settings_or_exit",
    "parse_go_duration",
]
