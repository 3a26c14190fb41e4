"""Entry point of the edge-operator: `galaxy-edge-operator` or `python -m edge_operator`.

Runs the kopf engine (what `kopf run --standalone` runs) with this
package's handlers on an explicit registry. One replica, no peering: the
chart runs a single pod with the Recreate strategy (docs/routes.md).

Exit codes: 0 after SIGTERM/SIGINT or a passing ``--check-config``; 2 for a
configuration problem (variables, the route-table key); 1 when start-up is
refused for another reason (Redis, no Kubernetes credentials). Every refusal
is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Final

import kopf
from kopf._cogs.structs.references import Insights
from kopf._core.intents.registries import SmartOperatorRegistry

from edge_operator.handlers import RouteHandlers, kopf_settings
from edge_operator.metrics import OperatorMetrics
from edge_operator.reconciler import Reconciler
from edge_operator.resources import GROUP, PLURAL, VERSION
from edgecore.config import EdgeOperatorSettings, load_settings_or_exit
from edgecore.redis_client import RedisStartupError, create_redis, ping_or_raise
from edgecore.routes import RouteTableKey, RouteTableKeyError, load_route_table_key
from edgecore.routes.store import RouteTablePublisher
from edgecore.telemetry import AdminServer, MetricsRegistry, configure_logging

__all__ = ["main", "run_operator"]

SERVICE: Final = "edge-operator"
# kopf's own chatter at INFO is one line per watch event; ours is enough.
_QUIET_LIBRARIES: Final = ("kopf", "aiohttp", "asyncio")


class StartupError(Exception):
    """One line, safe to print."""


def _refuse(message: str) -> None:
    print(f"{SERVICE} failed to start: {message}", file=sys.stderr, flush=True)


def load_key(settings: EdgeOperatorSettings) -> RouteTableKey:
    path = settings.routes.table_key_path
    if path is None:
        raise RouteTableKeyError(
            "GATEWAY_ROUTES_TABLE_KEY_PATH is required: the operator seals the route table"
        )
    return load_route_table_key(path)


async def run_operator(
    settings: EdgeOperatorSettings,
    key: RouteTableKey,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run until stopped. Raises ``StartupError`` when Redis or the cluster is unusable."""
    client = create_redis(settings.redis)
    metrics = OperatorMetrics(MetricsRegistry())
    admin = AdminServer(settings.admin, metrics.registry.render)
    try:
        try:
            await admin.start()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {settings.admin.addr} (GATEWAY_ADMIN_HTTP_ADDR): "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        try:
            await ping_or_raise(client, settings.redis.operation_timeout)
        except RedisStartupError as exc:
            raise StartupError(
                f"Redis at {settings.redis.master_addr} (GATEWAY_REDIS_MASTER_ADDR) is not "
                f"usable: {exc}"
            ) from None
        publisher = RouteTablePublisher(
            client, key,
            snapshot_key=settings.routes.snapshot_key, stream=settings.routes.events_stream,
        )  # fmt: skip
        operator = settings.operator
        handlers = RouteHandlers(
            Reconciler(
                publisher,
                host_template=operator.service_host_template,
                publish_timeout=settings.redis.operation_timeout * 3,
                observer=metrics.observe,
            ),
            retry_delay=operator.resync_interval,
        )
        registry = SmartOperatorRegistry()
        handlers.register(registry, resync_interval=operator.resync_interval)
        health = operator.health_addr
        stop = stop_flag or asyncio.Event()
        # kopf resolves resources once (scanning is off); without the CRD it would idle
        # forever, healthy-looking. Refuse instead, so the pod restarts until it exists.
        insights = Insights()
        missing: list[str] = []
        guard = asyncio.get_running_loop().create_task(_require_crd(insights, stop, missing))
        try:
            await kopf.operator(
                registry=registry,
                settings=kopf_settings(),
                standalone=True,
                clusterwide=not operator.namespaces,
                namespaces=operator.namespaces,
                liveness_endpoint=(
                    f"http://{health.host or '0.0.0.0'}:{health.port}/healthz"  # noqa: S104
                    if health is not None
                    else None
                ),
                stop_flag=stop,
                ready_flag=ready_flag,
                insights=insights,
            )
        except kopf.LoginError:
            raise StartupError(
                "no usable Kubernetes API credentials (no in-cluster service account, "
                "no kubeconfig)"
            ) from None
        finally:
            guard.cancel()
        if missing:
            raise StartupError(missing[0])
    finally:
        await admin.close()
        await client.aclose()


async def _require_crd(insights: Insights, stop: asyncio.Event, missing: list[str]) -> None:
    await insights.ready_resources.wait()
    served = any(
        r.group == GROUP and r.version == VERSION and r.plural == PLURAL
        for r in insights.watched_resources
    )
    if not served:
        missing.append(
            f"the GatewayRoute CRD ({PLURAL}.{GROUP}, {VERSION}) is not installed "
            "(charts/edge-gateway/crds/)"
        )
        stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="galaxy-edge-operator", description=__doc__)
    parser.add_argument(
        "--check-config", action="store_true", help="validate the environment and exit"
    )
    args = parser.parse_args(argv)
    settings = load_settings_or_exit(EdgeOperatorSettings, SERVICE)
    try:
        key = load_key(settings)
    except RouteTableKeyError as exc:
        _refuse(f"configuration error: {exc}")
        return 2
    if args.check_config:
        print(f"{SERVICE}: configuration OK", file=sys.stderr)
        return 0
    configure_logging(settings.logging.level, SERVICE, quiet=_QUIET_LIBRARIES)
    try:
        asyncio.run(run_operator(settings, key))
    except StartupError as exc:
        _refuse(str(exc))
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
