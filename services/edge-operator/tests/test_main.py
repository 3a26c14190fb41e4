"""The operator's settings and its start-up refusals, as real processes."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgecore.config import ConfigError, EdgeOperatorSettings, HostPort, load_settings
from edgecore.testing.redis_server import RedisServer

BASE = {"GATEWAY_REDIS_MASTER_ADDR": "127.0.0.1:6379", "GATEWAY_REDIS_PASSWORD": "pw"}


def test_settings_defaults_and_lists() -> None:
    settings = load_settings(EdgeOperatorSettings, BASE)
    assert settings.operator.namespaces == ()
    assert settings.operator.service_host_template == "{service}.{namespace}.svc.cluster.local"
    assert settings.operator.health_addr == HostPort("", 8081)
    assert settings.routes.table_key_path is None
    custom = load_settings(
        EdgeOperatorSettings,
        {
            **BASE,
            "GATEWAY_OPERATOR_NAMESPACES": " games, ,arena ",
            "GATEWAY_OPERATOR_HEALTH_ADDR": "",
        },
    )
    assert custom.operator.namespaces == ("games", "arena")
    assert custom.operator.health_addr is None


@pytest.mark.parametrize(
    ("template", "problem"),
    [("{service}.{cluster}", "only {service} and {namespace}"), ("http://{service}", "bare host")],
)
def test_a_bad_host_template_is_refused(template: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(
            EdgeOperatorSettings, {**BASE, "GATEWAY_OPERATOR_SERVICE_HOST_TEMPLATE": template}
        )
    assert problem in str(refused.value)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    clean.pop("KUBECONFIG", None)
    clean.pop("KUBERNETES_SERVICE_HOST", None)  # no in-cluster login either
    return subprocess.run(
        [sys.executable, "-m", "edge_operator", *args],
        env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "route-table.key"
    path.write_text(base64.b64encode(os.urandom(32)).decode())
    return path


def test_without_the_table_key_it_refuses_with_exit_2() -> None:
    done = run(BASE)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "edge-operator failed to start: configuration error: GATEWAY_ROUTES_TABLE_KEY_PATH is "
        "required: the operator seals the route table"
    )


def test_check_config(tmp_path: Path) -> None:
    done = run({**BASE, "GATEWAY_ROUTES_TABLE_KEY_PATH": str(key_file(tmp_path))}, "--check-config")
    assert (done.returncode, done.stderr.strip()) == (0, "edge-operator: configuration OK")


def test_redis_down_refuses_with_one_line(tmp_path: Path) -> None:
    env = {**BASE, "GATEWAY_REDIS_MASTER_ADDR": "127.0.0.1:1",
           "GATEWAY_ROUTES_TABLE_KEY_PATH": str(key_file(tmp_path))}  # fmt: skip
    done = run(env)
    assert done.returncode == 1
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("edge-operator failed")]
    assert "GATEWAY_REDIS_MASTER_ADDR" in line and "Traceback" not in done.stderr


@pytest.mark.integration
def test_no_cluster_credentials_refuses_without_a_traceback(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    env = {
        "GATEWAY_REDIS_MASTER_ADDR": f"{redis_server.host}:{redis_server.port}",
        "GATEWAY_REDIS_PASSWORD": redis_server.password,
        "GATEWAY_ROUTES_TABLE_KEY_PATH": str(key_file(tmp_path)),
        "GATEWAY_OPERATOR_HEALTH_ADDR": "127.0.0.1:0",
        "HOME": str(tmp_path),
    }
    done = run(env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("edge-operator failed")]
    assert line.startswith("edge-operator failed to start: no usable Kubernetes API credentials")
