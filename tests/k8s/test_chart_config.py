"""The chart's configuration against the code: every variable, every default, every value set.

* The ConfigMap plus each Deployment's own env (the three services and the edge-operator)
  carry exactly the GATEWAY_* variables the code reads (``edgecore.config.known_variables()``):
  none missing, none unknown.
* Every default in values.yaml equals the default the code applies.
* Every example values file (ci/*.yaml, values-dev.yaml) and the defaults render into an
  environment each service's (and the operator's) settings model accepts, and every
  ``*_PATH`` variable names a file of a Secret mounted into that container.
* The operator's values mean what the code makes of them (namespaces, host template).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from edgecore.config import (
    EdgeGrpcSettings,
    EdgeOperatorSettings,
    PublicRestSettings,
    PushHubSettings,
    known_variables,
    load_settings,
    parse_go_duration,
)
from edgecore.config.loader import _all_sections
from edgecore.config.values import HostPort

from .chart import (
    CHART,
    COMPONENTS,
    NAMESPACE,
    OPERATOR,
    Container,
    Secrets,
    by_kind,
    deployment_of,
    resolve,
)
from .conftest import Render

SETTINGS = {
    "public-rest": PublicRestSettings,
    "edge-grpc": EdgeGrpcSettings,
    "push-hub": PushHubSettings,
    OPERATOR: EdgeOperatorSettings,
}
VALUE_SETS = [None, *sorted((CHART / "ci").glob("*.yaml")), CHART / "values-dev.yaml"]
# Everything optional switched on, so no variable is left out for being empty.
EVERYTHING = {
    "config.backend.httpUrl": "http://backend:8080",
    "config.telemetry.otlpTracesProtocol": "grpc",
    "config.telemetry.otlpProtocol": "http/protobuf",
    "config.telemetry.otlpEndpoint": "http://collector:4317",
}


def _defaults() -> dict[str, object]:
    out: dict[str, object] = {}
    for section in _all_sections():
        for info in section.model_fields.values():
            if info.alias and not info.is_required():
                out[info.alias] = info.default
    return out


def test_chart_sets_exactly_the_variables_the_services_read(render_chart: Render) -> None:
    docs = render_chart(
        set_values=EVERYTHING,
        set_json={
            "config.redis.replicaAddrs": ["r:6379"],
            "config.authenticatedGrpc.corsAllowedOrigins": ["https://play.example.com"],
        },
    )
    (configmap,) = by_kind(docs, "ConfigMap").values()
    seen = set(configmap["data"])
    for component in (*COMPONENTS, OPERATOR):
        container = deployment_of(docs, component)["spec"]["template"]["spec"]["containers"][0]
        seen |= {var["name"] for var in container["env"]}
    known = set(known_variables())
    assert sorted(v for v in seen if v.startswith("GATEWAY_") and v not in known) == []
    assert sorted(v for v in known if v.startswith("GATEWAY_") and v not in seen) == []
    assert sorted(v for v in known - seen if not v.startswith("GATEWAY_")) == []


def test_values_defaults_equal_the_code_defaults(render_chart: Render) -> None:
    (configmap,) = by_kind(render_chart(), "ConfigMap").values()
    defaults = _defaults()
    compared = 0
    for name, rendered in configmap["data"].items():
        if name not in defaults:
            continue  # required in code (no default): the chart must supply one
        default = defaults[name]
        if isinstance(default, timedelta):
            assert parse_go_duration(rendered) == default, name
        elif isinstance(default, bool):
            assert rendered == str(default).lower(), name
        elif isinstance(default, int):
            assert int(rendered) == default, name
        elif isinstance(default, HostPort):
            assert rendered == str(default), name
        else:
            assert rendered == str(default), name
        compared += 1
    assert compared >= 60


def test_operator_defaults_equal_the_code_defaults(render_chart: Render) -> None:
    # The operator's own variables live in its Deployment, not the ConfigMap.
    container = deployment_of(render_chart(), OPERATOR)["spec"]["template"]["spec"]["containers"][0]
    env = {var["name"]: var["value"] for var in container["env"] if "value" in var}
    defaults = _defaults()
    assert (
        env["GATEWAY_OPERATOR_SERVICE_HOST_TEMPLATE"]
        == defaults["GATEWAY_OPERATOR_SERVICE_HOST_TEMPLATE"]
    )
    assert (
        parse_go_duration(env["GATEWAY_OPERATOR_RESYNC_INTERVAL"])
        == defaults["GATEWAY_OPERATOR_RESYNC_INTERVAL"]
    )
    assert env["GATEWAY_OPERATOR_HEALTH_ADDR"] == str(defaults["GATEWAY_OPERATOR_HEALTH_ADDR"])


def _check_secret_paths(component: str, container: Container) -> list[str]:
    """Every *_PATH variable must name a file of a Secret mounted into the container."""
    problems = []
    for name, value in container.env.items():
        if not (name.startswith("GATEWAY_") and name.endswith("_PATH")):
            continue
        folder, _, file = value.rpartition("/")
        if file not in container.files.get(folder, {}):
            problems.append(f"{component}: {name}={value} is not a mounted Secret file")
    return problems


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.name if p else "defaults")
def test_every_value_set_renders_a_valid_service_environment(
    render_chart: Render, values: Path | None, tmp_path: Path
) -> None:
    docs = render_chart([values] if values else [])
    secrets = Secrets(default=b"an-existing-secret")
    rendered = [c for c in SETTINGS if any(
        d["kind"] == "Deployment" and d["metadata"]["labels"]["app.kubernetes.io/component"] == c
        for d in docs)]  # fmt: skip
    assert rendered, "no Deployment rendered"
    for component in rendered:
        container = resolve(deployment_of(docs, component), docs, secrets)
        # Secret files are only checked for existence of a path here; contents are the
        # contract test's business.
        problems = _check_secret_paths(component, container)
        try:
            load_settings(SETTINGS[component], container.env)
        except Exception as exc:  # ConfigError lists every problem
            problems.append(str(exc))
        assert problems == [], f"{component} with {values}: {problems}"
    # The route table is read with the key exactly where the operator runs.
    grpc = (
        resolve(deployment_of(docs, "edge-grpc"), docs, secrets)
        if "edge-grpc" in rendered
        else None
    )
    if grpc is not None:
        assert ("GATEWAY_ROUTES_TABLE_KEY_PATH" in grpc.env) == (OPERATOR in rendered), values


@pytest.mark.parametrize(
    ("values", "namespaces", "host"),
    [
        ({}, (NAMESPACE,), "{service}.{namespace}.svc.cluster.local"),
        ({"operator.watchNamespaces": ["games", NAMESPACE]}, ("games", NAMESPACE), None),
        ({"operator.clusterWide": True}, (), None),
        ({"operator.clusterDomain": "k8s.example.internal"}, None,
         "{service}.{namespace}.svc.k8s.example.internal"),
    ],
)  # fmt: skip
def test_operator_values_mean_what_the_operator_reads(
    render_chart: Render,
    values: dict[str, object],
    namespaces: tuple[str, ...] | None,
    host: str | None,
) -> None:
    docs = render_chart(set_json=values)
    container = resolve(deployment_of(docs, OPERATOR), docs, Secrets(default=b"x"))
    settings = load_settings(EdgeOperatorSettings, container.env)
    if namespaces is not None:
        assert settings.operator.namespaces == namespaces
    if host is not None:
        assert settings.operator.service_host_template == host
    assert settings.routes.table_key_path == "/etc/edge-gateway/route-table-key/route-table.key"
    assert settings.operator.health_addr is not None
    assert settings.operator.health_addr.port == container.ports["health"]
    # The probes reach the port the operator listens on.
    assert container.liveness["httpGet"] == {"path": "/healthz", "port": "health"}


def test_cors_origins_reach_edge_grpc_and_push_hub(render_chart: Render) -> None:
    # Every form the values schema admits is one the code accepts, joined the way it splits.
    origins = [
        "https://play.example.com",
        "http://localhost:5173",
        "https://play-2.example.co.uk:8443",
        "http://[::1]:8080",
    ]
    docs = render_chart(set_json={"config.authenticatedGrpc.corsAllowedOrigins": origins})
    for component, settings_type in (
        ("edge-grpc", EdgeGrpcSettings),
        ("push-hub", PushHubSettings),
    ):
        container = resolve(deployment_of(docs, component), docs, Secrets(default=b"x"))
        settings = load_settings(settings_type, container.env)
        assert settings.grpc.cors_allowed_origins == tuple(origins), component
    # Off by default: the variable is not set at all.
    defaults = render_chart()
    container = resolve(deployment_of(defaults, "edge-grpc"), defaults, Secrets(default=b"x"))
    assert "GATEWAY_AUTHENTICATED_GRPC_CORS_ALLOWED_ORIGINS" not in container.env
    assert load_settings(EdgeGrpcSettings, container.env).grpc.cors_allowed_origins == ()


def test_push_hub_admits_a_reconnect_storm_and_edge_grpc_keeps_the_spec_budget(
    render_chart: Render,
) -> None:
    def message_class(docs: list[dict[str, object]], component: str) -> tuple[int, timedelta, int]:
        container = resolve(deployment_of(docs, component), docs, Secrets(default=b"x"))
        settings = load_settings(
            PushHubSettings if component == "push-hub" else EdgeGrpcSettings, container.env
        )
        policy = settings.anti_abuse.policy("message_class")
        return policy.requests, policy.window, policy.burst

    docs = render_chart()
    assert message_class(docs, "push-hub") == (12000, timedelta(minutes=1), 2000)
    assert message_class(docs, "edge-grpc") == (60, timedelta(minutes=1), 20)
    inherited = render_chart(set_json={"config.authenticatedAntiAbuse.pushHubMessageClass": None})
    assert message_class(inherited, "push-hub") == (60, timedelta(minutes=1), 20)


def test_without_the_operator_edge_grpc_reads_no_route_table(render_chart: Render) -> None:
    docs = render_chart(set_json={"operator.enabled": False})
    assert not [d for d in docs if d["metadata"].get("labels", {}).get(
        "app.kubernetes.io/component") == OPERATOR]  # fmt: skip
    container = resolve(deployment_of(docs, "edge-grpc"), docs, Secrets(default=b"x"))
    settings = load_settings(EdgeGrpcSettings, container.env)
    assert settings.routes.table_key_path is None


def test_chart_readme_documents_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()

    def leaves(prefix: str, node: object) -> list[str]:
        if not isinstance(node, dict) or not node:
            return [prefix]
        out = []
        for key, value in node.items():
            out += leaves(f"{prefix}.{key}" if prefix else key, value)
        return out

    services = {"publicRest", "edgeGrpc", "pushHub"}  # the operator's keys are rows of their own
    missing = []
    for path in leaves("", {k: v for k, v in values.items() if k not in services}):
        # A row may document a whole group (a bucket, a security context) by its prefix.
        parts = path.split(".")
        if not any(f"`{'.'.join(parts[:n])}`" in readme for n in range(len(parts), 0, -1)):
            missing.append(path)
    for path in leaves("", values["publicRest"]):
        parts = path.split(".")
        if not any(
            f"`<service>.{'.'.join(parts[:n])}`" in readme for n in range(len(parts), 0, -1)
        ):
            missing.append(f"<service>.{path}")
    assert missing == []
