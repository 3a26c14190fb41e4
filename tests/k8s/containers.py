"""The whole system as the shipped images, started with testcontainers on one network.

Redis (the local valkey image), the mock backend, and public-rest, edge-grpc and push-hub
from the images scripts/images-build.sh builds. The three gateway services are started
from what the chart renders (image, command, args, environment, Secret files at their
mount paths, user, read-only root filesystem, dropped capabilities, /tmp as a tmpfs for
the emptyDir), with the in-cluster names the chart's values point at (redis:6379,
http://mock-backend:8090). Each container's client port is published on 127.0.0.1 only;
readiness is the Deployment's own probe run against the published port. The edge-operator
can be run the same way (``run_operator``), on the same network, from the same rendering.

``ContainerSystem`` has the attributes of ``edgecore.testing.system.System`` that the e2e
harness uses (``ports``, ``server_public_key``, ``logs()``, ``stop()``), so the e2e suite
can be pointed at the containers instead of local processes.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecore.keys import encode_ed25519_pkcs8_pem
from edgecore.signing import Signer
from edgecore.testing.system import DEV_LOGIN_CODE, SystemPorts

from .chart import COMPONENTS, OPERATOR, Container, Secrets, deployment_of, render, resolve
from .probes import wait_until_passes

IMAGE_PREFIX = os.environ.get("EDGE_IMAGE_PREFIX", "localhost/galaxy-")
IMAGE_TAG = os.environ.get("EDGE_IMAGE_TAG", "dev")
VALKEY_IMAGE = os.environ.get("EDGE_VALKEY_IMAGE", "localhost/galaxy-valkey:8.1")
MOCK_BACKEND_PORT = 8090
LOOPBACK = "127.0.0.1"
VALUES_KEY = {"public-rest": "publicRest", "edge-grpc": "edgeGrpc", "push-hub": "pushHub"}
HMAC_MOUNT = "/etc/edge-gateway/backend-hmac"


def image(name: str) -> str:
    return f"{IMAGE_PREFIX}{name}:{IMAGE_TAG}"


@dataclass
class ContainerSystem:
    run_dir: Path
    helm_env: dict[str, str]
    # Chart values (dotted key -> value, as --set-json), e.g. {"config.logLevel": "debug"}.
    extra_config: dict[str, Any] = field(default_factory=dict)
    # component -> extra environment, rendered through <service>.extraEnv (the way the
    # e2e suite's E2E_ENV raises rate limits); it wins over the ConfigMap like in a pod.
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    ports: SystemPorts = field(default_factory=SystemPorts.free)
    server_public_key: str = ""
    containers: dict[str, Any] = field(default_factory=dict)
    rendered: dict[str, Any] = field(default_factory=dict)
    # The edge-operator's Deployment from the same rendering, resolved (run_operator).
    operator: Container | None = None
    _network: Any = None

    def start(self, *, ready_timeout: float = 90.0) -> None:
        from testcontainers.core.container import DockerContainer  # noqa: PLC0415
        from testcontainers.core.network import Network  # noqa: PLC0415

        secrets_dir = self.run_dir / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        signer = Signer.generate()
        pem = encode_ed25519_pkcs8_pem(signer.seed()).decode()
        hmac_secret = secrets.token_hex(32)
        redis_password = secrets.token_hex(16)
        self.server_public_key = base64.b64encode(signer.public_key).decode()

        self._network = Network()
        self._network.create()

        redis = (
            DockerContainer(VALKEY_IMAGE)
            .with_command(
                [
                    *("--bind", "0.0.0.0", "--port", "6379", "--requirepass", redis_password),
                    *("--save", "", "--appendonly", "no", "--dir", "/data"),
                ]
            )
            .with_network(self._network)
            .with_network_aliases("redis")
        )
        self._start("redis", redis)

        # The chart, rendered for this network: images, in-cluster names, the secrets.
        overrides: dict[str, Any] = {
            "image.tag": IMAGE_TAG,
            "config.backend.httpUrl": f"http://mock-backend:{MOCK_BACKEND_PORT}",
            "config.redis.masterAddr": "redis:6379",
            "secrets.redis.password": redis_password,
            "secrets.responseSigner.privateKeyPem": pem,
            "secrets.backendHmac.secret": hmac_secret,
            **self.extra_config,
        }
        for component, key in VALUES_KEY.items():
            overrides[f"{key}.image.repository"] = f"{IMAGE_PREFIX}{component}"
            if self.extra_env.get(component):
                overrides[f"{key}.extraEnv"] = [
                    {"name": k, "value": v} for k, v in self.extra_env[component].items()
                ]
        overrides["operator.image.repository"] = f"{IMAGE_PREFIX}{OPERATOR}"
        docs = render(self.helm_env, set_json=overrides)
        chart_secrets = Secrets()
        resolved = {c: resolve(deployment_of(docs, c), docs, chart_secrets) for c in COMPONENTS}
        self.rendered = {c: deployment_of(docs, c) for c in COMPONENTS}
        self.operator = resolve(deployment_of(docs, OPERATOR), docs, chart_secrets)

        # The mock backend shares the HMAC secret file, mounted the way the chart mounts it.
        hmac_dir = self._write_files(
            "mock-backend", HMAC_MOUNT, {"hmac.secret": hmac_secret.encode()}
        )
        backend = (
            DockerContainer(image("mock-backend"))
            .with_env("MOCK_BACKEND_ADDR", f"0.0.0.0:{MOCK_BACKEND_PORT}")
            .with_env("MOCK_BACKEND_REDIS_URL", f"redis://:{redis_password}@redis:6379/0")
            .with_env("MOCK_BACKEND_HMAC_SECRET_PATH", f"{HMAC_MOUNT}/hmac.secret")
            .with_env("MOCK_BACKEND_FIXED_LOGIN_CODE", DEV_LOGIN_CODE)
            .with_env("MOCK_BACKEND_DEV_ENDPOINTS", "1")
            .with_volume_mapping(str(hmac_dir), HMAC_MOUNT, "ro")
            .with_network(self._network)
            .with_network_aliases("mock-backend")
            .with_tmpfs_mount("/tmp", "size=64m")
            .with_kwargs(read_only=True, cap_drop=["ALL"])
        )
        backend.ports[f"{MOCK_BACKEND_PORT}/tcp"] = (LOOPBACK, self.ports.mock_backend)
        self._start("mock-backend", backend)
        wait_until_passes(
            {"httpGet": {"path": "/healthz", "port": MOCK_BACKEND_PORT}, "timeoutSeconds": 2},
            {},
            timeout=ready_timeout,
            published={MOCK_BACKEND_PORT: self.ports.mock_backend},
            alive=lambda: self._dead("mock-backend"),
        )

        for component in ("public-rest", "edge-grpc", "push-hub"):
            c = resolved[component]
            kind = "http" if component == "public-rest" else "grpc"
            published = {c.ports[kind]: self.ports.of(component)}
            if "admin" in c.ports:
                published[c.ports["admin"]] = self.ports.admin_of(component)
            container = self._chart_container(component, c)
            for inner, outer in published.items():
                container.ports[f"{inner}/tcp"] = (LOOPBACK, outer)
            self._start(component, container)
            for probe in (c.readiness, c.liveness):
                wait_until_passes(
                    probe,
                    c.ports,
                    timeout=ready_timeout,
                    published=published,
                    alive=lambda component=component: self._dead(component),
                )

    def _chart_container(self, component: str, c: Container) -> Any:
        """A container configured as the rendered Deployment says (not started)."""
        from testcontainers.core.container import DockerContainer  # noqa: PLC0415

        sec, pod = c.security, c.pod_security
        kwargs: dict[str, Any] = {
            **({"entrypoint": c.command} if c.command else {}),
            "user": f"{pod['runAsUser']}:{pod['runAsGroup']}",
            "read_only": bool(sec.get("readOnlyRootFilesystem")),
            "cap_drop": list(sec.get("capabilities", {}).get("drop", [])),
            "security_opt": ["no-new-privileges"]
            if sec.get("allowPrivilegeEscalation") is False
            else [],
        }
        container = (
            DockerContainer(c.image)
            .with_network(self._network)
            .with_tmpfs_mount("/tmp", "size=64m")  # the chart's emptyDir
            .with_kwargs(**kwargs)
        )
        if c.args:
            container.with_command(c.args)
        for name, value in c.env.items():
            container.with_env(name, value)
        for mount, files in c.files.items():
            container.with_volume_mapping(
                str(self._write_files(component, mount, files)), mount, "ro"
            )
        return container

    def run_operator(self, *, timeout: float) -> tuple[int | None, str, str]:
        """Run the edge-operator as rendered, on this network (Redis is reachable), until it
        stops: (exit status, or None if it was still running after ``timeout``; stdout;
        stderr). There is no Kubernetes API here: no token is mounted, no KUBERNETES_*
        variable is set, and the image's HOME (/nonexistent) holds no kubeconfig.
        """
        assert self.operator is not None, "start() first"
        container = self._chart_container(OPERATOR, self.operator)
        self._start(OPERATOR, container)
        wrapped = container.get_wrapped_container()
        try:
            status: int | None = int(wrapped.wait(timeout=timeout)["StatusCode"])
        except Exception:  # the engine's read timed out: still running
            status = None
        out, err = container.get_logs()
        return status, out.decode(errors="replace"), err.decode(errors="replace")

    def _write_files(self, owner: str, mount: str, files: dict[str, bytes]) -> Path:
        folder = self.run_dir / "mounts" / owner / mount.strip("/").replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        for name, data in files.items():
            path = folder / name
            path.write_bytes(data)
            # The pod reads it as uid 10001 through fsGroup + defaultMode 0440; a bind
            # mount has no fsGroup, so the file is made world-readable in this private dir.
            path.chmod(0o444)
        return folder

    def _start(self, name: str, container: Any) -> None:
        container.with_name(f"edge-k8s-{name}-{os.getpid()}-{secrets.token_hex(3)}")
        container.start()
        self.containers[name] = container

    def _dead(self, name: str) -> str | None:
        container = self.containers[name]
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status in {"exited", "dead"}:
            return f"{name} {wrapped.status}:\n{self.log(name)[-3000:]}"
        return None

    def log(self, name: str) -> str:
        out, err = self.containers[name].get_logs()
        return (out + err).decode(errors="replace")

    def logs(self) -> dict[str, str]:
        return {name: self.log(name) for name in self.containers}

    def stop(self) -> None:
        for name in reversed(list(self.containers)):
            with contextlib.suppress(Exception):
                self.containers.pop(name).stop()
        if self._network is not None:
            with contextlib.suppress(Exception):
                self._network.remove()
            self._network = None
