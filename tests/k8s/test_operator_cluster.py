"""The edge-operator against a real Kubernetes API server, with exactly the chart's RBAC.

Needs a control plane (else every test is skipped, saying why; ``make test`` builds the
local one and sets ``EDGE_K8S_REQUIRE_API=1``, which turns that skip into a failure):
``EDGE_K8S_KUBECONFIG``
naming the kubeconfig of a reachable cluster (cluster-admin: the tests apply the CRD and
work in two fresh namespaces, deleted at the end), or the etcd + kube-apiserver that
``scripts/k8s-control-plane.sh build`` builds (``make test-cluster``), started here under a
temporary directory.

The story, one step per test (a step is skipped when a step it builds on failed):

1. the CRD is applied and Established; the chart's operator RBAC (its Role, RoleBinding and
   ServiceAccount, from ``helm template``) is applied; a token for that ServiceAccount comes
   from the TokenRequest API and goes into the operator's kubeconfig, so the operator has
   the chart's privileges and nothing more (checked verb by verb with
   SelfSubjectAccessReviews);
2. the API server itself refuses invalid specs (422) and applies the schema's defaults;
3. a labelled Secret and a route, then the operator (its environment rendered from the
   chart's Deployment): the route becomes Accepted with observedGeneration and
   tableVersion and carries the finalizer; Redis holds a sealed table routing its message
   type to ``http://127.0.0.1:<port><path>`` (host template 127.0.0.1: no cluster DNS here);
4. a newer route for the same message type is Conflicted, a ``user.*`` one Invalid
   (ReservedMessageType); the table is unchanged;
5. deleting the first route: it disappears (finalizer released), the table routes to the
   second route's target, whose status becomes Accepted (the per-route timer);
6. a spec change: a new generation, observed in status and in the table;
7. rotating the Secret: a newer table version carries the new value;
8. the operator's log holds no secret, no traceback and no Forbidden; SIGTERM stops it with
   exit status 0; on the local control plane, the API server's audit log shows every
   request the operator made, none refused, and that it asked the API server for labelled
   Secrets only (a label selector: unlabelled Secrets never reach it);
9. a route deleted while the operator is down stays (finalizer) until the operator, started
   again, publishes a table without it; unchanged statuses keep their transition times;
10. without the CRD (deleted, local control plane only), the operator refuses to start
   (exit 1, one line) instead of idling healthy-looking forever.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis.asyncio as aioredis
import yaml

from edgecore.routes import RouteTable, RouteTableReader, load_route_table_key
from edgecore.testing.ports import free_port
from edgecore.testing.processes import ManagedProcess
from edgecore.testing.redis_server import RedisServer

from .chart import CHART, OPERATOR, RELEASE, ROOT, TOOLS, Secrets, deployment_of, resolve
from .cluster import (
    USER_AGENT,
    ApiError,
    Kube,
    availability,
    condition,
    local_control_plane,
    unique_suffix,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CRD_PATH = CHART / "crds" / "gatewayroutes.gateway.galaxy.dev.yaml"
CRD_NAME = "gatewayroutes.gateway.galaxy.dev"
FINALIZER = "gateway.galaxy.dev/edge-operator"
ROUTE_SECRET_LABEL = "gateway.galaxy.dev/route-secret"
SNAPSHOT_KEY = "gateway:route_table"
EVENTS_STREAM = "gateway:route_events"
MESSAGE_TYPE = "arena.move"
FIRST_URL = "http://127.0.0.1:8080/commands/move"
SECOND_URL = "http://127.0.0.1:9090/v2/move"
# Bounds, not expectations: the machine may be loaded. The operator resyncs every second.
SETTLE = 120.0
STOP_TIMEOUT = 60.0

T = TypeVar("T")


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    """What the steps share: the cluster, the namespaces, the operator, Redis."""

    admin: Kube
    external: bool
    release_namespace: str  # the operator's ServiceAccount
    namespace: str  # the watched namespace: the routes and their Secret
    docs: list[dict[str, Any]]  # the chart, rendered for these namespaces
    operator_kubeconfig: Path
    operator_token: str
    operator_user: str
    redis: RedisServer
    audit_log: Path | None  # the local control plane's (None on an external cluster)
    secret_name: str = "arena-route"
    secret_key: str = "hmac"
    secret_values: list[bytes] = field(default_factory=list)
    operator: ManagedProcess | None = None
    key_path: Path | None = None
    done: set[str] = field(default_factory=set)

    def needs(self, *steps: str) -> None:
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"an earlier step failed: {', '.join(missing)}")

    def wait(self, what: str, probe: Callable[[], T | None]) -> T:
        """``wait_for`` within SETTLE; a timeout shows the operator's log too."""
        try:
            return wait_for(what, probe, timeout=SETTLE)
        except AssertionError as exc:
            log = self.operator.log()[-6000:] if self.operator else "(not started)"
            raise AssertionError(f"{exc}\n--- operator log (end) ---\n{log}") from None

    def route(self, name: str) -> dict[str, Any] | None:
        return self.admin.get_or_none("GatewayRoute", name, self.namespace)

    def route_with(self, name: str, kind: str, status: str) -> dict[str, Any] | None:
        """The route once condition ``kind`` is ``status`` for its current generation."""
        obj = self.route(name)
        if obj is None:
            return None
        generation = obj["metadata"]["generation"]
        cond = condition(obj, kind)
        if (
            cond is not None
            and cond["status"] == status
            and cond.get("observedGeneration") == generation
            and (obj.get("status") or {}).get("observedGeneration") == generation
        ):
            return obj
        return None

    def table(self) -> RouteTable | None:
        """The route table in Redis, opened (and its seal checked) with the chart's key."""
        assert self.key_path is not None
        key_path, server = self.key_path, self.redis

        async def load() -> RouteTable | None:
            client = aioredis.Redis(host=server.host, port=server.port, password=server.password)
            try:
                key = load_route_table_key(key_path)
                return await RouteTableReader(client, key, snapshot_key=SNAPSHOT_KEY).load()
            finally:
                await client.aclose()

        return asyncio.run(load())

    def table_where(self, check: Callable[[RouteTable], bool]) -> RouteTable | None:
        table = self.table()
        return table if table is not None and check(table) else None


def cond(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found = condition(obj, kind)
    assert found is not None, f"no {kind} condition: {obj.get('status')}"
    return found


def url_of(table: RouteTable) -> str | None:
    route = table.routes.get(MESSAGE_TYPE)
    return route.url if route is not None else None


# --------------------------------------------------------------------------- fixtures


def helm_template(namespace: str, set_json: dict[str, Any]) -> list[dict[str, Any]]:
    """The whole chart as ``helm template --namespace NAMESPACE`` renders it."""
    subprocess.run([str(ROOT / "scripts" / "k8s-tools.sh")], check=True)
    args = [str(TOOLS / "bin" / "helm"), "template", RELEASE, str(CHART), "--namespace", namespace]
    for key, value in set_json.items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    done = subprocess.run(args, check=False, capture_output=True, text=True)
    assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def admin_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, bool]]:
    """(cluster-admin kubeconfig, whether the cluster is external)."""
    found = availability()
    if found.kubeconfig is not None:
        yield found.kubeconfig, True
    elif found.local:
        with local_control_plane(tmp_path_factory.mktemp("control-plane")) as kubeconfig:
            yield kubeconfig, False
    elif os.environ.get("EDGE_K8S_REQUIRE_API") == "1":
        # make test builds the control plane first: a skip there would hide a broken build.
        pytest.fail(f"EDGE_K8S_REQUIRE_API=1 but {found.reason}")
    else:
        pytest.skip(found.reason)


@pytest.fixture(scope="module")
def world(
    admin_kubeconfig: tuple[Path, bool],
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    path, external = admin_kubeconfig
    if not redis_server.running and redis_server.restartable:
        redis_server.start()
    redis_server.flush()
    admin = Kube.from_kubeconfig(path)
    suffix = unique_suffix()
    release_ns, routes_ns = f"edge-op-{suffix}", f"games-{suffix}"

    # The CRD, as Helm installs it from crds/; then the two namespaces.
    admin.apply(yaml.safe_load(CRD_PATH.read_text()))
    wait_for(
        "the CRD is Established",
        lambda: (
            (condition(admin.get("CustomResourceDefinition", CRD_NAME), "Established") or {}).get(
                "status"
            )
            == "True"
        ),
        timeout=SETTLE,
    )
    for ns in (release_ns, routes_ns):
        admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    docs = helm_template(
        release_ns,
        {
            "operator.watchNamespaces": [routes_ns],
            "operator.resyncInterval": "1s",
            "config.redis.masterAddr": f"{redis_server.host}:{redis_server.port}",
            "secrets.redis.password": redis_server.password,
        },
    )
    # The operator's API access as the chart grants it: its Role(s) and RoleBinding(s), and
    # the ServiceAccount they bind. Nothing else is granted to the operator.
    assert not {d["kind"] for d in docs} & {"ClusterRole", "ClusterRoleBinding"}
    rbac = [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
    (binding,) = [d for d in rbac if d["kind"] == "RoleBinding"]
    (subject,) = binding["subjects"]
    (account,) = [
        d
        for d in docs
        if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == subject["name"]
    ]
    assert subject["namespace"] == release_ns
    assert {d["metadata"]["namespace"] for d in rbac} == {routes_ns}
    for doc in (account, *rbac):
        admin.apply(doc)

    token = admin.service_account_token(release_ns, subject["name"])
    directory = tmp_path_factory.mktemp("operator")
    world = World(
        admin=admin,
        external=external,
        release_namespace=release_ns,
        namespace=routes_ns,
        docs=docs,
        operator_kubeconfig=admin.kubeconfig_for_token(
            token, directory / "operator.kubeconfig", namespace=routes_ns
        ),
        operator_token=token,
        operator_user=f"system:serviceaccount:{release_ns}:{subject['name']}",
        redis=redis_server,
        audit_log=None if external else path.parent / "audit.log",
    )
    try:
        yield world
    finally:
        if world.operator is not None:
            world.operator.stop(timeout=STOP_TIMEOUT)
        if external:
            _clean_up(admin, routes_ns, release_ns)
        admin.close()


def _clean_up(admin: Kube, *namespaces: str) -> None:
    """On a shared cluster: release leftover finalizers (the operator is gone) and delete
    the namespaces, and with them everything the tests made. The CRD stays."""
    for ns in namespaces:
        try:
            listing = admin.request(
                "GET", f"/apis/gateway.galaxy.dev/v1alpha1/namespaces/{ns}/gatewayroutes"
            )
        except ApiError:
            listing = {"items": []}
        for item in listing.get("items", []):
            admin.merge_patch(
                "GatewayRoute", item["metadata"]["name"], ns, {"metadata": {"finalizers": None}}
            )
        admin.delete("Namespace", ns)


def _route(world: World, name: str, port: int, path: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.galaxy.dev/v1alpha1",
        "kind": "GatewayRoute",
        "metadata": {"name": name, "namespace": world.namespace},
        "spec": {
            "messageType": MESSAGE_TYPE,
            "target": {"service": "arena", "port": port, "path": path},
            "timeout": "2s",
            "hmacSecretRef": {"name": world.secret_name, "key": world.secret_key},
            **spec,
        },
    }


def _secret(world: World, value: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": world.secret_name,
            "namespace": world.namespace,
            "labels": {ROUTE_SECRET_LABEL: "true"},
        },
        "type": "Opaque",
        "data": {world.secret_key: base64.b64encode(value).decode()},
    }


def _operator_env(world: World, directory: Path) -> dict[str, str]:
    """The operator Deployment's environment as the chart renders it, adapted to a process
    outside the cluster: the mounted key file becomes a local file, the kubeconfig carries
    the ServiceAccount token, the health port is a free loopback one, targets 127.0.0.1."""
    container = resolve(deployment_of(world.docs, OPERATOR), world.docs, Secrets())
    env = dict(container.env)
    assert env["GATEWAY_OPERATOR_NAMESPACES"] == world.namespace
    assert env["GATEWAY_OPERATOR_RESYNC_INTERVAL"] == "1s"
    assert env["GATEWAY_REDIS_MASTER_ADDR"] == f"{world.redis.host}:{world.redis.port}"
    ((mount, files),) = container.files.items()
    ((file_name, key_bytes),) = files.items()
    assert env["GATEWAY_ROUTES_TABLE_KEY_PATH"] == f"{mount}/{file_name}"
    world.key_path = directory / file_name
    world.key_path.touch(mode=0o600)
    world.key_path.write_bytes(key_bytes)
    env.update(
        GATEWAY_ROUTES_TABLE_KEY_PATH=str(world.key_path),
        GATEWAY_OPERATOR_SERVICE_HOST_TEMPLATE="127.0.0.1",
        GATEWAY_OPERATOR_HEALTH_ADDR=f"127.0.0.1:{free_port()}",
        GATEWAY_ADMIN_HTTP_ADDR=f"127.0.0.1:{free_port()}",
        KUBECONFIG=str(world.operator_kubeconfig),
    )
    return env


# --------------------------------------------------------------------------- the story


def test_crd_established_and_the_operator_holds_exactly_the_charts_rules(world: World) -> None:
    crd = world.admin.get("CustomResourceDefinition", CRD_NAME)
    assert cond(crd, "Established")["status"] == "True"
    assert cond(crd, "NamesAccepted")["status"] == "True"

    with world.admin.with_token(world.operator_token) as operator:
        review = operator.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        assert review["status"]["userInfo"]["username"] == world.operator_user
        assert world.operator_user.endswith(f":{RELEASE}-{OPERATOR}")

        def allowed(verb: str, resource: str, namespace: str | None, group: str) -> bool:
            attributes: dict[str, Any] = {"verb": verb, "group": group}
            attributes["resource"], _, attributes["subresource"] = resource.partition("/")
            if namespace:
                attributes["namespace"] = namespace
            answer = operator.request(
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                body={
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": attributes},
                },
            )
            return bool(answer["status"].get("allowed"))

        ns, other, gw = world.namespace, world.release_namespace, "gateway.galaxy.dev"
        granted = [
            ("list", "gatewayroutes", ns, gw),
            ("watch", "gatewayroutes", ns, gw),
            ("patch", "gatewayroutes", ns, gw),
            ("patch", "gatewayroutes/status", ns, gw),
            ("list", "secrets", ns, ""),
            ("watch", "secrets", ns, ""),
            ("create", "events", ns, ""),
        ]
        refused = [
            ("get", "gatewayroutes", ns, gw),  # never used: see the audit log check
            ("get", "gatewayroutes/status", ns, gw),
            ("get", "secrets", ns, ""),  # list/watch (of the labelled ones) only
            ("update", "gatewayroutes", ns, gw),
            ("delete", "gatewayroutes", ns, gw),
            ("create", "gatewayroutes", ns, gw),
            ("update", "gatewayroutes/status", ns, gw),
            ("list", "gatewayroutes", other, gw),
            ("list", "secrets", other, ""),
            ("list", "gatewayroutes", None, gw),  # cluster-wide
            ("list", "namespaces", None, ""),
            ("list", "customresourcedefinitions", None, "apiextensions.k8s.io"),
        ]
        wrong = [a for a in granted if not allowed(*a)] + [a for a in refused if allowed(*a)]
        assert not wrong, f"the operator's access differs from the chart's rules: {wrong}"
        # The token works against the API as the operator will use it, within those rules.
        operator.request("GET", f"/apis/gateway.galaxy.dev/v1alpha1/namespaces/{ns}/gatewayroutes")
        with pytest.raises(ApiError) as refusal:
            operator.request("GET", f"/api/v1/namespaces/{other}/secrets")
        assert refusal.value.status == 403
    world.done.add("rbac")


def test_the_api_server_validates_and_defaults_the_spec(world: World) -> None:
    world.needs("rbac")
    valid = _route(world, "dry-run", 8080, "/commands/move")
    del valid["spec"]["timeout"]
    made = world.admin.request(
        "POST",
        f"/apis/gateway.galaxy.dev/v1alpha1/namespaces/{world.namespace}/gatewayroutes",
        body=valid,
        params={"dryRun": "All"},
    )
    assert made["spec"]["timeout"] == "5s"
    assert made["spec"]["target"]["scheme"] == "http"

    no_ref = _route(world, "no-secret-ref", 8080, "/x")
    del no_ref["spec"]["hmacSecretRef"]
    invalid = {
        "spec.target.port": _route(world, "bad-port", 0, "/commands/move"),
        "spec.messageType": _route(world, "bad-type", 8080, "/x", messageType="-leading.dash"),
        "spec.target.path": _route(world, "bad-path", 8080, "relative/path"),
        "spec.timeout": _route(world, "bad-timeout", 8080, "/x", timeout="soon"),
        "spec.hmacSecretRef": no_ref,
    }
    for field_name, doc in invalid.items():
        with pytest.raises(ApiError) as refusal:
            world.admin.create(doc)
        assert refusal.value.status == 422, refusal.value
        assert field_name in str(refusal.value), refusal.value
        assert world.route(doc["metadata"]["name"]) is None
    world.done.add("validation")


def test_a_route_is_accepted_and_published(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    world.needs("rbac")
    value = secrets.token_urlsafe(36).encode()  # 48 bytes
    world.secret_values.append(value)
    world.admin.create(_secret(world, value))
    world.admin.create(_route(world, "arena-move", 8080, "/commands/move"))

    _start_operator(world, tmp_path_factory.mktemp("operator-run"))

    route = world.wait(
        "arena-move Accepted=True", lambda: world.route_with("arena-move", "Accepted", "True")
    )
    status = route["status"]
    assert status["observedGeneration"] == route["metadata"]["generation"] == 1
    assert isinstance(status["tableVersion"], int) and status["tableVersion"] >= 1
    assert cond(route, "Conflicted")["status"] == "False"
    assert cond(route, "Invalid")["status"] == "False"
    assert FINALIZER in route["metadata"].get("finalizers", []), route["metadata"]

    table = world.wait(
        "the table routes arena.move", lambda: world.table_where(lambda t: url_of(t) is not None)
    )
    published = table.routes[MESSAGE_TYPE]
    assert published.url == FIRST_URL
    assert published.hmac_secret == value
    assert published.source == f"{world.namespace}/arena-move"
    assert table.version >= status["tableVersion"]
    assert world.redis.client().xlen(EVENTS_STREAM) >= 1
    world.done.add("accepted")


def test_a_newer_route_conflicts_and_a_reserved_one_is_invalid(world: World) -> None:
    world.needs("accepted")
    before = world.table()
    world.admin.create(_route(world, "arena-move-v2", 9090, "/v2/move"))
    world.admin.create(_route(world, "user-get", 8080, "/user", messageType="user.account.get"))

    conflicted = world.wait(
        "arena-move-v2 Conflicted=True",
        lambda: world.route_with("arena-move-v2", "Conflicted", "True"),
    )
    assert cond(conflicted, "Conflicted")["reason"] == "MessageTypeClaimed"
    assert f"{world.namespace}/arena-move" in cond(conflicted, "Conflicted")["message"]
    assert cond(conflicted, "Accepted")["status"] == "False"

    reserved = world.wait(
        "user-get Invalid=True", lambda: world.route_with("user-get", "Invalid", "True")
    )
    assert cond(reserved, "Invalid")["reason"] == "ReservedMessageType"
    assert cond(reserved, "Accepted")["status"] == "False"

    after = world.table()
    assert before is not None and after is not None
    assert after.routes == before.routes, "a losing or an invalid route changed the table"
    world.done.add("conflict")


def test_deleting_the_holder_hands_the_message_type_over(world: World) -> None:
    world.needs("conflict")
    world.admin.delete("GatewayRoute", "arena-move", world.namespace)
    world.wait("arena-move is gone (finalizer released)", lambda: world.route("arena-move") is None)
    world.wait(
        "the table routes arena.move to arena-move-v2's target",
        lambda: world.table_where(lambda t: url_of(t) == SECOND_URL),
    )
    route = world.wait(
        "arena-move-v2 Accepted=True (the per-route timer)",
        lambda: world.route_with("arena-move-v2", "Accepted", "True"),
    )
    assert cond(route, "Conflicted")["status"] == "False"
    world.done.add("handover")


def test_a_spec_change_is_a_new_generation_observed(world: World) -> None:
    world.needs("handover")
    world.admin.merge_patch(
        "GatewayRoute", "arena-move-v2", world.namespace, {"spec": {"target": {"port": 9091}}}
    )
    route = world.wait(
        "arena-move-v2 Accepted=True for generation 2",
        lambda: world.route_with("arena-move-v2", "Accepted", "True"),
    )
    assert route["metadata"]["generation"] == 2
    world.wait(
        "the table routes to the new port",
        lambda: world.table_where(lambda t: url_of(t) == "http://127.0.0.1:9091/v2/move"),
    )
    world.admin.merge_patch(
        "GatewayRoute", "arena-move-v2", world.namespace, {"spec": {"target": {"port": 9090}}}
    )
    world.wait(
        "the table routes to the old port again",
        lambda: world.table_where(lambda t: url_of(t) == SECOND_URL),
    )
    world.done.add("generation")


def test_rotating_the_secret_publishes_a_newer_table(world: World) -> None:
    world.needs("handover")
    before = world.table()
    assert before is not None
    value = secrets.token_urlsafe(40).encode()
    world.secret_values.append(value)
    world.admin.merge_patch(
        "Secret",
        world.secret_name,
        world.namespace,
        {"data": {world.secret_key: base64.b64encode(value).decode()}},
    )
    table = world.wait(
        "a newer table with the rotated secret",
        lambda: world.table_where(
            lambda t: (
                t.version > before.version
                and MESSAGE_TYPE in t.routes
                and t.routes[MESSAGE_TYPE].hmac_secret == value
            )
        ),
    )
    assert url_of(table) == SECOND_URL
    world.wait(
        "arena-move-v2 reports the new table version",
        lambda: (
            ((world.route("arena-move-v2") or {}).get("status") or {}).get("tableVersion", 0)
            >= table.version
        ),
    )
    world.done.add("rotation")


def test_the_operator_exports_its_metrics(world: World) -> None:
    world.needs("rotation")
    assert world.operator is not None
    addr = world.operator.env["GATEWAY_ADMIN_HTTP_ADDR"]
    table = world.table()
    assert table is not None

    def samples() -> dict[str, float]:
        text = httpx.get(f"http://{addr}/metrics", timeout=10).text
        return {
            name: float(value)
            for name, _, value in (line.rpartition(" ") for line in text.splitlines())
            if name and not name.startswith("#")
        }

    found = world.wait(
        "the operator's /metrics shows the current table",
        lambda: (s := samples()).get("gateway_route_table_version") == table.version and s,
    )
    assert found['gateway_routes{state="accepted"}'] == 1
    assert found['gateway_routes{state="invalid"}'] == 1  # the reserved user.* route
    assert found['gateway_route_table_publishes_total{outcome="published"}'] >= 3
    assert found['gateway_route_table_publishes_total{outcome="failed"}'] == 0


def test_the_log_is_clean_and_sigterm_stops_the_operator(world: World) -> None:
    world.needs("accepted")
    _stop_operator_and_check_its_log(world)
    if world.audit_log is not None:
        _check_audit(world, world.audit_log)
    world.done.add("stopped")


def test_the_operator_asks_the_api_server_for_labelled_secrets_only(world: World) -> None:
    world.needs("stopped")
    if world.audit_log is None:
        pytest.skip("needs the local control plane's audit log")
    uris = [
        event["requestURI"]
        for event in _operator_requests(world, world.audit_log)
        if (event.get("objectRef") or {}).get("resource") == "secrets"
    ]
    assert uris, "the operator never listed Secrets"
    wanted = [f"{ROUTE_SECRET_LABEL}=true"]
    unselected = [u for u in uris if parse_qs(urlsplit(u).query).get("labelSelector") != wanted]
    assert not unselected, f"Secret requests without the route-secret selector: {unselected}"


def test_a_route_deleted_while_the_operator_is_down_is_handled_after_a_restart(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    world.needs("stopped", "handover")
    before = world.table()
    assert before is not None and url_of(before) == SECOND_URL
    reserved_before = world.route_with("user-get", "Invalid", "True")
    assert reserved_before is not None
    world.admin.delete("GatewayRoute", "arena-move-v2", world.namespace)
    held = world.route("arena-move-v2")
    assert held is not None, "deleted at once: the finalizer was missing"
    assert held["metadata"].get("deletionTimestamp")
    assert FINALIZER in held["metadata"]["finalizers"]

    _start_operator(world, tmp_path_factory.mktemp("operator-rerun"))
    world.wait("arena-move-v2 is gone", lambda: world.route("arena-move-v2") is None)
    after = world.wait(
        "a newer table without arena.move",
        lambda: world.table_where(lambda t: t.version > before.version and url_of(t) is None),
    )
    assert len(after) == 0
    reserved = world.wait(
        "user-get still Invalid after the restart",
        lambda: world.route_with("user-get", "Invalid", "True"),
    )
    # Conditions keep their transition times when nothing changed (no status churn).
    assert cond(reserved, "Invalid") == cond(reserved_before, "Invalid")
    _stop_operator_and_check_its_log(world)
    if world.audit_log is not None:
        _check_audit(world, world.audit_log)


def test_without_the_crd_the_operator_refuses_to_start(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """kopf resolves resources once; without the CRD it would idle, healthy-looking, forever.
    The operator exits instead (the kubelet restarts it until the CRD exists)."""
    world.needs("stopped")
    if world.external:
        pytest.skip("deletes the CRD: only on the throwaway local control plane")
    _clean_up(world.admin, world.namespace)  # finalizers off: the CRD can go
    world.admin.delete("CustomResourceDefinition", CRD_NAME)
    wait_for(
        "the CRD is gone",
        lambda: world.admin.get_or_none("CustomResourceDefinition", CRD_NAME) is None,
        timeout=SETTLE,
    )
    directory = tmp_path_factory.mktemp("operator-no-crd")
    process = ManagedProcess(
        "edge_operator", _operator_env(world, directory), log_path=directory / "operator.log"
    ).start()
    try:
        code = process.wait(timeout=SETTLE)
    except subprocess.TimeoutExpired:
        process.stop()
        pytest.fail(f"the operator kept running without its CRD:\n{process.log()[-4000:]}")
    log = process.log()
    assert code == 1, log[-4000:]
    assert (
        "edge-operator failed to start: the GatewayRoute CRD "
        "(gatewayroutes.gateway.galaxy.dev, v1alpha1) is not installed" in log
    ), log[-4000:]
    assert "Traceback (most recent call last)" not in log


def _start_operator(world: World, directory: Path) -> None:
    env = _operator_env(world, directory)
    health_port = int(env["GATEWAY_OPERATOR_HEALTH_ADDR"].rsplit(":", 1)[1])
    world.operator = ManagedProcess(
        "edge_operator", env, log_path=directory / "edge-operator.log", port=health_port
    ).start(ready_timeout=SETTLE)
    assert httpx.get(f"http://127.0.0.1:{health_port}/healthz", timeout=10).status_code == 200


def _stop_operator_and_check_its_log(world: World) -> None:
    operator = world.operator
    assert operator is not None
    assert operator.running, f"the operator exited early:\n{operator.log()[-6000:]}"
    operator.signal(signal.SIGTERM)
    try:
        code = operator.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the operator did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM")
    log = operator.log()
    assert code == 0, f"exit status {code}:\n{log[-6000:]}"
    assert "Traceback (most recent call last)" not in log, log[-6000:]
    leaks = [label for label, needle in _secrets_of(world) if needle and needle in log]
    assert not leaks, f"secrets in the operator's log: {leaks}"
    forbidden = [line for line in log.splitlines() if "forbidden" in line.lower() or " 403" in line]
    assert not forbidden, "the chart's RBAC was not enough:\n" + "\n".join(forbidden[:20])


def _secrets_of(world: World) -> list[tuple[str, str]]:
    found = [("the ServiceAccount token", world.operator_token)]
    for i, value in enumerate(world.secret_values):
        found.append((f"route secret #{i}", value.decode()))
        found.append((f"route secret #{i} (base64)", base64.b64encode(value).decode()))
    if world.key_path is not None:
        found.append(("the route-table key", world.key_path.read_text().strip()))
    found.append(("the Redis password", world.redis.password))
    return found


def _operator_requests(world: World, path: Path) -> Iterator[dict[str, Any]]:
    """The audit events (completed requests) of the operator's ServiceAccount."""
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event.get("stage") != "ResponseComplete":
            continue
        if (event.get("user") or {}).get("username") != world.operator_user:
            continue
        if event.get("userAgent") == USER_AGENT:
            continue  # this module's own probes with the operator's token (step 1)
        yield event


def _check_audit(world: World, path: Path) -> None:
    """What the API server saw the operator's ServiceAccount do: requests made with its
    token, none refused (a 403 the operator swallowed would show only here)."""
    calls: dict[tuple[str, str, str], set[int]] = {}
    agents: set[str] = set()
    for event in _operator_requests(world, path):
        agents.add(event.get("userAgent", ""))
        ref = event.get("objectRef") or {}
        resource = "/".join(p for p in (ref.get("resource"), ref.get("subresource")) if p)
        key = (event["verb"], resource or event.get("requestURI", ""), ref.get("namespace", ""))
        calls.setdefault(key, set()).add(int((event.get("responseStatus") or {}).get("code", 0)))
    summary = "\n".join(
        f"  {verb} {what} ns={ns or '-'}: {sorted(codes)}"
        for (verb, what, ns), codes in sorted(calls.items())
    )
    print(f"the operator's requests (audit log; user agents {sorted(agents)}):\n{summary}")
    assert ("patch", "gatewayroutes/status", world.namespace) in calls, summary
    assert ("watch", "secrets", world.namespace) in calls, summary
    refused = {k: c for k, c in calls.items() if c & {401, 403}}
    assert not refused, f"requests of the operator refused by the API server:\n{summary}"
