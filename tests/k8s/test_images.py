"""The shipped images, for real: built by scripts/images-build.sh, started, exercised.

* every image runs as the non-root user, with an exec-form entry point and no build tools;
* Redis, the mock backend and the three services run as containers (testcontainers), the
  services configured by what the chart renders; each passes its Deployment's probes;
* through them, a client logs in over public-rest, runs one verified ExecuteCommand and
  opens SubscribeEvents up to its verified bootstrap event, with the edgeclient SDK;
* the edge-operator image, started as the chart renders it (its environment, the route-table
  key file, read-only root), stops promptly with one clear line for want of a Kubernetes API
  (there is none here), never with a traceback.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeclient.client import EdgeClient
from edgeclient.keys import DeviceKey, parse_server_public_key
from edgeclient.public_auth import PublicAuthClient
from edgecore.catalog import SERVER_TIME_EVENT_TYPE
from edgecore.testing.redis_server import docker_host
from edgecore.testing.system import DEV_LOGIN_CODE

from .chart import OPERATOR_FAILURE_TIMEOUT, ROOT, operator_refusal_problems
from .containers import ContainerSystem, image

pytestmark = pytest.mark.integration

IMAGES = ("public-rest", "edge-grpc", "push-hub", "edge-operator", "mock-backend")
MODULES = {"public-rest": "public_rest", "edge-grpc": "edge_grpc", "push-hub": "push_hub",
           "edge-operator": "edge_operator", "mock-backend": "mock_backend"}  # fmt: skip


def _engine() -> str:
    host = docker_host()
    if host is None:
        pytest.skip("no container engine (scripts/container-engine.sh brings one up)")
    return host


def _inspect(host: str, ref: str) -> dict | None:
    import docker  # noqa: PLC0415  (comes with testcontainers)

    client = docker.DockerClient(base_url=host)
    try:
        return client.images.get(ref).attrs
    except docker.errors.ImageNotFound:
        return None
    finally:
        client.close()


@pytest.fixture(scope="session")
def images() -> dict[str, dict]:
    """The five images (built by scripts/images-build.sh when one is missing)."""
    host = _engine()
    if any(_inspect(host, image(name)) is None for name in IMAGES):
        subprocess.run([str(ROOT / "scripts" / "images-build.sh")], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    found = {name: _inspect(host, image(name)) for name in IMAGES}
    missing = [name for name, attrs in found.items() if attrs is None]
    assert not missing, f"images not built: {missing}"
    return {name: attrs for name, attrs in found.items() if attrs is not None}


@pytest.fixture(scope="session")
def container_system(
    images: dict[str, dict], helm: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ContainerSystem]:
    system = ContainerSystem(
        run_dir=tmp_path_factory.mktemp("containers"),
        helm_env=helm,
        # Through <service>.extraEnv, as the e2e suite raises its limits: a shorter drain.
        extra_env={
            c: {"GATEWAY_SHUTDOWN_TIMEOUT": "3s"} for c in ("public-rest", "edge-grpc", "push-hub")
        },
    )
    try:
        system.start()
    except BaseException:
        for name, log in system.logs().items():
            print(f"--- {name} ---\n{log[-3000:]}")
        system.stop()
        raise
    yield system
    system.stop()


@pytest.mark.parametrize("name", IMAGES)
def test_image_is_non_root_exec_form_without_build_tools(
    images: dict[str, dict], name: str
) -> None:
    config = images[name]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/opt/venv/bin/python", "-m", MODULES[name]]
    host = _engine()
    import docker  # noqa: PLC0415

    client = docker.DockerClient(base_url=host)
    try:
        probe = (
            "import importlib.util as u, shutil, json; "
            "print(json.dumps({'pip': u.find_spec('pip') is not None, "
            "'tools': [t for t in ('gcc', 'cc', 'make', 'pip', 'pip3', 'apt-get') if shutil.which(t)]}))"
        )
        out = client.containers.run(
            image(name), entrypoint=["/opt/venv/bin/python", "-c", probe], remove=True
        )
    finally:
        client.close()
    found = json.loads(out)
    assert found["pip"] is False
    # apt-get belongs to the Debian base (the official slim image has it too); no compiler,
    # no make, no pip.
    assert [t for t in found["tools"] if t != "apt-get"] == []


def test_every_service_container_passes_its_chart_probes(container_system: ContainerSystem) -> None:
    # The fixture waited for each Deployment's readiness and liveness probes; here the
    # containers must still be up, and the gRPC services must not have logged a refusal.
    for name in ("redis", "mock-backend", "public-rest", "edge-grpc", "push-hub"):
        assert container_system._dead(name) is None, name
    for component, deployment in container_system.rendered.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == image(component)
        assert {"name": "GATEWAY_SHUTDOWN_TIMEOUT", "value": "3s"} in container["env"]


async def test_login_execute_and_subscribe_through_the_containers(
    container_system: ContainerSystem,
) -> None:
    ports = container_system.ports
    key = DeviceKey.generate()
    async with PublicAuthClient(f"http://127.0.0.1:{ports.public_rest}") as public:
        challenge = await public.send_email_code("k8s-smoke@galaxy.test")
        session_id = await public.confirm_email_code(
            challenge, DEV_LOGIN_CODE, key.public_key_b64, "Europe/Berlin"
        )
    client = EdgeClient(
        command_addr=f"127.0.0.1:{ports.edge_grpc}",
        events_addr=f"127.0.0.1:{ports.push_hub}",
        device_session_id=session_id,
        device_key=key,
        server_public_key=parse_server_public_key(container_system.server_public_key),
        timeout=15,
    )
    try:
        account = await client.call_json("user.account.get", {})  # verified signature
        assert account["account"]["email"] == "k8s-smoke@galaxy.test"
        stream = client.subscribe(request_id="k8s-smoke-stream")
        async with asyncio.timeout(15):
            first = await anext(stream)
        assert first.event_type == SERVER_TIME_EVENT_TYPE
        await stream.aclose()
    finally:
        await client.close()


def test_operator_container_stops_cleanly_without_a_cluster(
    container_system: ContainerSystem,
) -> None:
    operator = container_system.operator
    assert operator is not None
    assert operator.image == image("edge-operator")
    # The chart's mounts: the route-table key file, at the path the environment names.
    key_path = operator.env["GATEWAY_ROUTES_TABLE_KEY_PATH"]
    folder, _, name = key_path.rpartition("/")
    assert list(operator.files) == [folder] and list(operator.files[folder]) == [name]
    assert operator.security["readOnlyRootFilesystem"] is True
    status, stdout, stderr = container_system.run_operator(timeout=OPERATOR_FAILURE_TIMEOUT)
    assert status is not None, (
        f"still running after {OPERATOR_FAILURE_TIMEOUT:.0f} s without a cluster:\n{stderr[-3000:]}"
    )
    problems = operator_refusal_problems(status, stdout, stderr)
    assert not problems, "\n".join(problems)


def test_no_secret_reaches_a_container_log(
    container_system: ContainerSystem, tmp_path: Path
) -> None:
    mounts = container_system.run_dir / "mounts"
    values = {p.read_text().strip() for p in mounts.rglob("*") if p.is_file()}
    pem_bodies = {
        line for v in values for line in v.splitlines() if len(line) > 20 and "-" not in line
    }
    for name, log in container_system.logs().items():
        for secret in values | pem_bodies:
            assert secret not in log, f"a secret appears in the {name} log"
