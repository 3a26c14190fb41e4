"""Rendering the chart and turning a rendered Deployment into the process it describes.

Shared by the chart-to-process contract test and the container tests: whatever runs
there is built from ``helm template`` output, never from a second copy of the settings.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "edge-gateway"
TOOLS = ROOT / ".tools"
RELEASE = "edge-gateway"
NAMESPACE = "galaxy"
COMPONENTS = ("public-rest", "edge-grpc", "push-hub")
# The edge-operator: a Deployment too, but no client port, no Service and one replica.
OPERATOR = "edge-operator"
# How the operator refuses to start where no Kubernetes API is reachable (here): one line.
OPERATOR_FAILURE = re.compile(r"^edge-operator failed to start: (?P<reason>.+)$", re.M)
# How long it may take to give up (kopf's login finds no credentials: no retries).
OPERATOR_FAILURE_TIMEOUT = 60.0


def operator_refusal_problems(returncode: int | None, stdout: str, stderr: str) -> list[str]:
    """What is wrong with how the operator stopped for want of a cluster ([] if nothing).

    Expected: exit status 1; on stderr exactly one ``edge-operator failed to start: ...``
    line naming the missing Kubernetes credentials/API; no Python traceback anywhere; not a
    configuration error (the chart's environment must have been accepted).
    """
    problems = []
    if returncode != 1:
        problems.append(f"exit status {returncode}, expected 1")
    lines = OPERATOR_FAILURE.findall(stderr)
    if len(lines) != 1:
        problems.append(f"{len(lines)} 'edge-operator failed to start:' lines on stderr")
    elif not re.search(r"(?i)kubernetes|kube|credential|cluster|api server", lines[0]):
        problems.append(f"the reason does not mention Kubernetes credentials/API: {lines[0]!r}")
    if "Traceback (most recent call last)" in stdout + stderr:
        problems.append("a Python traceback was printed")
    if "configuration error" in stderr:
        problems.append("the chart's environment was refused as a configuration error")
    if problems:
        problems.append(f"stdout:\n{stdout[-2000:]}\nstderr:\n{stderr[-3000:]}")
    return problems


def helm_env() -> dict[str, str]:
    """Install (cached) the pinned helm + helm-unittest and return the environment to run them."""
    subprocess.run([str(ROOT / "scripts" / "k8s-tools.sh")], check=True, cwd=ROOT)
    return {
        **os.environ,
        "PATH": f"{TOOLS / 'bin'}:{os.environ.get('PATH', '')}",
        "HELM_PLUGINS": str(TOOLS / "helm-plugins"),
    }


def render(
    env: Mapping[str, str],
    values_files: Iterable[Path] = (),
    set_values: Mapping[str, str] | None = None,
    *,
    set_json: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """``helm template`` the chart and return its documents (empty ones dropped)."""
    import json  # noqa: PLC0415

    args = [str(TOOLS / "bin" / "helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values_files:
        args += ["-f", str(path)]
    for key, value in (set_values or {}).items():
        args += ["--set-string", f"{key}={value}"]
    for key, value in (set_json or {}).items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    done = subprocess.run(args, check=False, capture_output=True, text=True, env=dict(env))
    if done.returncode != 0:
        raise RuntimeError(f"helm template failed ({done.returncode}):\n{done.stderr}")
    out = done.stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: Iterable[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def deployment_of(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        if doc["kind"] == "Deployment" and labels.get("app.kubernetes.io/component") == component:
            return doc
    raise KeyError(f"no Deployment for {component}")


@dataclass
class Secrets:
    """What stands in for the cluster's Secrets: values by (secret name, key), and files."""

    values: dict[tuple[str, str], bytes] = field(default_factory=dict)
    # Returned for a Secret the test did not provide (an existingSecret); None: fail.
    default: bytes | None = None

    def add(self, name: str, key: str, value: bytes) -> None:
        self.values[(name, key)] = value

    def get(self, name: str, key: str) -> bytes:
        try:
            return self.values[(name, key)]
        except KeyError:
            if self.default is not None:
                return self.default
            raise KeyError(
                f"the chart references Secret {name} key {key}, which the test has not"
            ) from None


@dataclass
class Container:
    """The first container of a rendered Deployment, resolved like the kubelet would."""

    name: str
    image: str
    command: list[str]  # empty when the pod spec leaves the image's entry point in force
    args: list[str]
    env: dict[str, str]
    ports: dict[str, int]
    # mount path -> {file name: bytes}: the Secret volumes projected into the pod
    files: dict[str, dict[str, bytes]]
    readiness: dict[str, Any]
    liveness: dict[str, Any]
    security: dict[str, Any]
    pod_security: dict[str, Any]


def resolve(deployment: dict[str, Any], docs: list[dict[str, Any]], secrets: Secrets) -> Container:
    """Environment (envFrom ConfigMaps + env, secretKeyRef resolved) and mounted secret files."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    configmaps = by_kind(docs, "ConfigMap")
    chart_secrets = by_kind(docs, "Secret")
    import base64  # noqa: PLC0415

    for name, doc in chart_secrets.items():
        for key, value in doc.get("data", {}).items():
            secrets.values.setdefault((name, key), base64.b64decode(value))

    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets.get(ref["name"], ref["key"]).decode()
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files: dict[str, dict[str, bytes]] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "secret" in volume:
            name = volume["secret"]["secretName"]
            files[mount["mountPath"]] = {
                item["path"]: secrets.get(name, item["key"]) for item in volume["secret"]["items"]
            }
    return Container(
        name=container["name"],
        image=container["image"],
        command=list(container.get("command", [])),  # empty: the image's entry point
        args=list(container.get("args", [])),
        env=env,
        ports={p["name"]: int(p["containerPort"]) for p in container.get("ports", [])},
        files=files,
        readiness=container["readinessProbe"],
        liveness=container["livenessProbe"],
        security=container.get("securityContext", {}),
        pod_security=pod.get("securityContext", {}),
    )
