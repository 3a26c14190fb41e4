"""The ASGI app Envoy serves: ``edge_grpc.asgi:app`` (started by ``python -m edge_grpc``).

Inside the Envoy process the configuration is read again from the same
environment the launcher validated, so a refusal here is about the world
(Redis down), not the variables.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge_grpc.app import SERVICE, EdgeGrpcApp, runtime_settings
from edgecore.config import EdgeGrpcSettings, load_settings_or_exit
from edgecore.downstream import DownstreamClient
from edgecore.keys import load_response_signer
from edgecore.rpc.runtime import LazyApp, ServiceRuntime
from edgecore.telemetry import configure_logging

__all__ = ["QUIET_LIBRARIES", "app", "build_runtime"]

# Libraries that log every success at INFO (httpx: one line per backend call).
QUIET_LIBRARIES = ("httpx", "httpcore", "opentelemetry")


def build_runtime(extra_routes: Mapping[str, DownstreamClient] | None = None) -> ServiceRuntime:
    settings = load_settings_or_exit(EdgeGrpcSettings, SERVICE)
    configure_logging(settings.logging.level, SERVICE, quiet=QUIET_LIBRARIES)
    signer = load_response_signer(settings.signer.private_key_pem_path)
    service = EdgeGrpcApp(settings, signer=signer, extra_routes=extra_routes)
    return ServiceRuntime(
        service, runtime_settings(settings), metrics_render=service.metrics.render
    )


app = LazyApp(build_runtime)
