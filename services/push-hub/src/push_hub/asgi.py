"""The ASGI app Envoy serves: ``push_hub.asgi:app`` (started by ``python -m push_hub``)."""

from __future__ import annotations

from edgecore.config import PushHubSettings, load_settings_or_exit
from edgecore.keys import load_response_signer
from edgecore.rpc.runtime import LazyApp, ServiceRuntime
from edgecore.telemetry import configure_logging
from push_hub.app import SERVICE, PushHubApp, runtime_settings

__all__ = ["QUIET_LIBRARIES", "app", "build_runtime"]

# Libraries that log routine work at INFO/DEBUG; raised to WARNING unless the level is debug.
QUIET_LIBRARIES = ("httpx", "httpcore", "opentelemetry", "redis")


def build_runtime() -> ServiceRuntime:
    settings = load_settings_or_exit(PushHubSettings, SERVICE)
    configure_logging(settings.logging.level, SERVICE, quiet=QUIET_LIBRARIES)
    signer = load_response_signer(settings.signer.private_key_pem_path)
    service = PushHubApp(settings, signer)
    return ServiceRuntime(
        service, runtime_settings(settings), metrics_render=service.metrics.render
    )


app = LazyApp(build_runtime)
