"""Chart-to-process contract: run each service exactly as the rendered Deployment says.

For each of public-rest, edge-grpc and push-hub: render the chart, take the Deployment's
command, args and environment (the ConfigMap through envFrom, literal env, secretKeyRef
values and the Secret volumes, all from the chart's own Secret objects), start that
command as a real process against a real Redis and the real mock backend, and run the
Deployment's own readiness and liveness probes until they pass; then SIGTERM must stop
it cleanly within the pod's terminationGracePeriodSeconds. The image's interpreter path
(/opt/venv/bin/python) is the only thing swapped: for this workspace's interpreter.
The mount paths are swapped for test files holding the same bytes.

The edge-operator's Deployment is run the same way; with no Kubernetes API here it must
accept the chart's environment and then stop, promptly and with one clear line, for want of
cluster credentials (never a traceback, never a configuration error).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecore.testing.ports import free_port
from edgecore.testing.redis_server import RedisServer
from edgecore.testing.system import System, SystemPorts

from .chart import (
    OPERATOR,
    OPERATOR_FAILURE_TIMEOUT,
    Secrets,
    deployment_of,
    operator_refusal_problems,
    resolve,
)
from .conftest import Render
from .probes import wait_until_passes

pytestmark = pytest.mark.integration

IMAGE_PYTHON = "/opt/venv/bin/python"
# What the image itself sets (Dockerfile ENV); nothing else from the test runner leaks in.
IMAGE_ENV = {"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
VALUES_KEY = {"public-rest": "publicRest", "edge-grpc": "edgeGrpc", "push-hub": "pushHub"}


@pytest.fixture(scope="module")
def backend(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    if not redis_server.running:
        redis_server.start()
    system = System(
        run_dir=tmp_path_factory.mktemp("contract"),
        redis_host=redis_server.host,
        redis_port=redis_server.port,
        redis_password=redis_server.password,
        ports=SystemPorts.free(),
    )
    system.prepare()
    system.start_service("mock-backend")
    yield system
    system.stop()


@pytest.mark.parametrize("component", ["public-rest", "edge-grpc", "push-hub"])
def test_rendered_deployment_runs_and_becomes_ready(
    component: str,
    render_chart: Render,
    backend: System,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    port, admin = free_port(), free_port()
    key = VALUES_KEY[component]
    docs = render_chart(
        set_values={
            "config.backend.httpUrl": f"http://127.0.0.1:{backend.ports.mock_backend}",
            "config.redis.masterAddr": f"{redis_server.host}:{redis_server.port}",
            "config.shutdownTimeout": "3s",
        },
        set_json={
            f"{key}.port": port,
            "admin.port": admin,
            "secrets.redis.password": redis_server.password,
            "secrets.responseSigner.privateKeyPem": (
                backend.secrets_dir / "response-signer.pem"
            ).read_text(),
            "secrets.backendHmac.secret": (
                backend.secrets_dir / "internal-hmac.secret"
            ).read_text(),
        },
    )
    deployment = deployment_of(docs, component)
    container = resolve(deployment, docs, Secrets())
    env = _with_local_mounts(container.env, container.files, tmp_path)

    assert container.command[0] == IMAGE_PYTHON, container.command
    argv = [sys.executable, *container.command[1:], *container.args]
    log_path = tmp_path / f"{component}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            env={"PATH": os.environ["PATH"], **IMAGE_ENV, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:

            def died() -> str | None:
                if process.poll() is None:
                    return None
                return f"exit {process.returncode}:\n{log_path.read_text()[-3000:]}"

            for probe in (container.readiness, container.liveness):
                wait_until_passes(probe, container.ports, timeout=60, alive=died)
            # The admin listener the chart configured serves /metrics.
            metrics = wait_until_passes(
                {"httpGet": {"path": "/metrics", "port": "admin"}, "timeoutSeconds": 2},
                container.ports,
                timeout=10,
                alive=died,
            )
            assert metrics.endswith(": 200")
            process.send_signal(signal.SIGTERM)
            grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            assert process.wait(timeout=grace) == 0, log_path.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)


def _with_local_mounts(
    env: dict[str, str], mounts: dict[str, dict[str, bytes]], tmp_path: Path
) -> dict[str, str]:
    """The projected Secret volumes, as files under tmp_path at the same relative paths."""
    env = dict(env)
    for mount, files in mounts.items():
        local = tmp_path / mount.lstrip("/")
        local.mkdir(parents=True)
        for name, data in files.items():
            (local / name).write_bytes(data)
        env = {
            k: v.replace(mount, str(local)) if v.startswith(mount) else v for k, v in env.items()
        }
    assert not [v for v in env.values() if v.startswith("/etc/edge-gateway")], env
    return env


def test_rendered_operator_deployment_stops_cleanly_without_a_cluster(
    render_chart: Render, redis_server: RedisServer, tmp_path: Path
) -> None:
    if not redis_server.running:
        redis_server.start()
    docs = render_chart(
        set_values={"config.redis.masterAddr": f"{redis_server.host}:{redis_server.port}"},
        set_json={"secrets.redis.password": redis_server.password},
    )
    container = resolve(deployment_of(docs, OPERATOR), docs, Secrets())
    assert set(container.files) == {"/etc/edge-gateway/route-table-key"}
    env = _with_local_mounts(container.env, container.files, tmp_path)
    # The admin listener as rendered, moved to a free loopback port (a host process here).
    assert env["GATEWAY_ADMIN_HTTP_ADDR"] == ":9100"
    env["GATEWAY_ADMIN_HTTP_ADDR"] = f"127.0.0.1:{free_port()}"
    assert container.command == [IMAGE_PYTHON, "-m", "edge_operator"], container.command
    argv = [sys.executable, *container.command[1:], *container.args]
    # No cluster credentials of any kind: no in-cluster variables or token, and a HOME
    # without a kubeconfig (the test runner's own ~/.kube must not be found).
    home = tmp_path / "home"
    home.mkdir()
    assert not [k for k in env if k.startswith("KUBERNETES_") or k == "KUBECONFIG"]
    try:
        done = subprocess.run(
            argv,
            env={"PATH": os.environ["PATH"], "HOME": str(home), **IMAGE_ENV, **env},
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=OPERATOR_FAILURE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"the operator was still running after {OPERATOR_FAILURE_TIMEOUT:.0f} s "
            f"without a cluster:\n{exc.stderr!r}"
        )
    problems = operator_refusal_problems(done.returncode, done.stdout, done.stderr)
    assert not problems, "\n".join(problems)
