"""A real Kubernetes API for the cluster tests: where to find one, and a small client.

Either ``EDGE_K8S_KUBECONFIG`` names the kubeconfig of a reachable cluster, or the
binaries of ``scripts/k8s-control-plane.sh build`` exist and :func:`local_control_plane`
starts etcd + kube-apiserver under a temporary directory (``run`` mode: they die with
this process). :class:`Kube` talks to the API with httpx (no kubectl, no client library),
from a kubeconfig of the kind kopf's own ``login_with_kubeconfig`` reads: a bearer token or
a client certificate, and a CA (inline or as files).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "k8s-control-plane.sh"
BIN = Path(os.environ.get("EDGE_K8S_TOOLS_DIR", str(ROOT / ".tools"))) / "k8s" / "bin"
ENV_KUBECONFIG = "EDGE_K8S_KUBECONFIG"
# Starting etcd + kube-apiserver on a loaded machine: generous.
START_TIMEOUT = 300.0
FIELD_MANAGER = "edge-gateway-tests"
# Tells the tests' own requests from the operator's in the API server's audit log.
USER_AGENT = "edge-gateway-tests"
# How long a request answered 429 (with Retry-After) is retried.
THROTTLE_PATIENCE = 60.0

T = TypeVar("T")


# --------------------------------------------------------------------------- where


@dataclass(frozen=True)
class Availability:
    """Which API the tests use: an external kubeconfig, the local binaries, or none (why)."""

    kubeconfig: Path | None = None
    local: bool = False
    reason: str = ""


def availability() -> Availability:
    configured = os.environ.get(ENV_KUBECONFIG, "").strip()
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            return Availability(reason=f"{ENV_KUBECONFIG}={configured} is not a file")
        try:
            with Kube.from_kubeconfig(path) as kube:
                kube.request("GET", "/version", timeout=10.0)
        except Exception as exc:
            return Availability(
                reason=f"the cluster of {ENV_KUBECONFIG}={configured} is not reachable: {exc}"
            )
        return Availability(kubeconfig=path)
    missing = [n for n in ("etcd", "kube-apiserver") if not os.access(BIN / n, os.X_OK)]
    if missing:
        return Availability(
            reason=(
                f"no Kubernetes API: {ENV_KUBECONFIG} is unset and {', '.join(missing)} "
                f"missing from {BIN} (build them with `scripts/k8s-control-plane.sh build`, "
                "or run `make test-cluster`)"
            )
        )
    for tool in ("openssl", "setpriv", "curl"):
        if shutil.which(tool) is None:
            return Availability(reason=f"the local control plane needs {tool}, not on PATH")
    return Availability(local=True)


@contextlib.contextmanager
def local_control_plane(directory: Path) -> Iterator[Path]:
    """``scripts/k8s-control-plane.sh run DIR``; yields DIR/admin.kubeconfig once ready.

    The script stays the servers' parent (they get SIGKILL if it dies) and is itself started
    with a parent-death signal, so a killed test run leaves no etcd or kube-apiserver behind.
    SIGTERM on exit stops both cleanly.
    """
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "control-plane.log"
    argv = [str(SCRIPT), "run", str(directory)]
    setpriv = shutil.which("setpriv")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "\nready\n" not in "\n" + log_path.read_text(errors="replace"):
            if process.poll() is not None:
                raise RuntimeError(
                    f"the local control plane did not start (exit {process.returncode}):\n"
                    f"{_tail(log_path)}\n{_tail(directory / 'kube-apiserver.log')}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the local control plane was not ready within {START_TIMEOUT:.0f} s:\n"
                    f"{_tail(log_path)}\n{_tail(directory / 'kube-apiserver.log')}"
                )
            time.sleep(0.5)
        yield directory / "admin.kubeconfig"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return f"({path.name}: none)"


# --------------------------------------------------------------------------- client


class ApiError(Exception):
    def __init__(self, method: str, path: str, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            self.body: Any = response.json()
        except ValueError:
            self.body = response.text
        message = self.body.get("message") if isinstance(self.body, dict) else self.body
        super().__init__(f"{method} {path}: HTTP {self.status}: {message}")


# kind -> (apiVersion, plural, namespaced): the kinds these tests touch.
KINDS: dict[str, tuple[str, str, bool]] = {
    "CustomResourceDefinition": ("apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "Namespace": ("v1", "namespaces", False),
    "ServiceAccount": ("v1", "serviceaccounts", True),
    "Secret": ("v1", "secrets", True),
    "Event": ("v1", "events", True),
    "Role": ("rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "GatewayRoute": ("gateway.galaxy.dev/v1alpha1", "gatewayroutes", True),
}


def resource_path(
    kind: str, namespace: str | None = None, name: str | None = None, sub: str | None = None
) -> str:
    api_version, plural, namespaced = KINDS[kind]
    path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespaced:
        if namespace is None:
            raise ValueError(f"{kind} is namespaced: a namespace is needed")
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    if name is not None:
        path += f"/{name}"
    if sub is not None:
        path += f"/{sub}"
    return path


def _path_of(doc: Mapping[str, Any], *, named: bool = True) -> str:
    meta = doc["metadata"]
    return resource_path(doc["kind"], meta.get("namespace"), meta["name"] if named else None)


class Kube:
    """A few verbs of the Kubernetes API over httpx (JSON in and out)."""

    def __init__(
        self,
        server: str,
        *,
        ca_pem: str | None,
        insecure: bool = False,
        token: str | None = None,
        cert_pem: str | None = None,
        key_pem: str | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.ca_pem = ca_pem
        self.insecure = insecure
        self._private = Path(tempfile.mkdtemp(prefix="kube-client-"))
        context = (
            ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
        )
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cert_pem and key_pem:
            cert_file, key_file = self._private / "client.crt", self._private / "client.key"
            for path, data in ((cert_file, cert_pem), (key_file, key_pem)):
                path.touch(mode=0o600)
                path.write_text(data)
            context.load_cert_chain(str(cert_file), str(key_file))
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=self.server, verify=context, headers=headers, timeout=30.0
        )

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Kube:
        config = yaml.safe_load(path.read_text()) or {}
        current = config.get("current-context")
        contexts = {c["name"]: c.get("context") or {} for c in config.get("contexts", [])}
        clusters = {c["name"]: c.get("cluster") or {} for c in config.get("clusters", [])}
        users = {u["name"]: u.get("user") or {} for u in config.get("users", [])}
        context = contexts[current]
        cluster, user = clusters[context["cluster"]], users[context["user"]]

        def pem(data_key: str, file_key: str, source: Mapping[str, Any]) -> str | None:
            if source.get(data_key):
                return base64.b64decode(source[data_key]).decode()
            if source.get(file_key):
                return (path.parent / Path(source[file_key]).expanduser()).read_text()
            return None

        token = user.get("token")
        if not token and user.get("tokenFile"):
            token = Path(user["tokenFile"]).expanduser().read_text().strip()
        return cls(
            cluster["server"],
            ca_pem=pem("certificate-authority-data", "certificate-authority", cluster),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            token=token,
            cert_pem=pem("client-certificate-data", "client-certificate", user),
            key_pem=pem("client-key-data", "client-key", user),
        )

    def kubeconfig_for_token(self, token: str, path: Path, *, namespace: str) -> Path:
        """A kubeconfig for this cluster with ``token`` (what kopf's kubeconfig login reads)."""
        cluster: dict[str, Any] = {"server": self.server}
        if self.insecure:
            cluster["insecure-skip-tls-verify"] = True
        if self.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem.encode()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "operator",
                    "context": {"cluster": "cluster", "user": "operator", "namespace": namespace},
                }
            ],
            "current-context": "operator",
        }
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(config))
        return path

    def with_token(self, token: str) -> Kube:
        return Kube(self.server, ca_pem=self.ca_pem, insecure=self.insecure, token=token)

    def close(self) -> None:
        self._client.close()
        shutil.rmtree(self._private, ignore_errors=True)

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ verbs

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        deadline = time.monotonic() + THROTTLE_PATIENCE
        while True:
            response = self._client.request(
                method,
                path,
                content=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": content_type} if body is not None else None,
                params=params,
                timeout=timeout if timeout is not None else 30.0,
            )
            # 429 + Retry-After: throttled, or a new CRD's storage still initialising (what
            # client-go retries by itself).
            if response.status_code != 429 or time.monotonic() > deadline:
                break
            time.sleep(min(float(response.headers.get("Retry-After") or 1), 5.0))
        if response.status_code >= 400:
            raise ApiError(method, path, response)
        return response.json() if response.content else None

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.request("GET", resource_path(kind, namespace, name))  # type: ignore[no-any-return]

    def get_or_none(
        self, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        try:
            return self.get(kind, name, namespace)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", _path_of(doc, named=False), body=doc)  # type: ignore[no-any-return]

    def apply(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply (create or update), as ``kubectl apply --server-side --force-conflicts``."""
        return self.request(  # type: ignore[no-any-return]
            "PATCH",
            _path_of(doc),
            body=doc,
            content_type="application/apply-patch+yaml",  # JSON is YAML
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
        )

    def merge_patch(
        self, kind: str, name: str, namespace: str | None, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self.request(  # type: ignore[no-any-return]
            "PATCH",
            resource_path(kind, namespace, name),
            body=patch,
            content_type="application/merge-patch+json",
        )

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        with contextlib.suppress(ApiError):
            self.request("DELETE", resource_path(kind, namespace, name))

    def service_account_token(
        self, namespace: str, name: str, *, expiration_seconds: int = 3600
    ) -> str:
        """A token for the ServiceAccount through the TokenRequest API (what a pod gets)."""
        review = self.request(
            "POST",
            resource_path("ServiceAccount", namespace, name, "token"),
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )
        return str(review["status"]["token"])


# --------------------------------------------------------------------------- waiting


def wait_for(
    what: str, probe: Callable[[], T | None], *, timeout: float, interval: float = 0.5
) -> T:
    """Poll ``probe`` until it returns neither None nor False (an empty table is an answer);
    fail naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
        except ApiError as exc:
            last = exc
        else:
            if result is not None and result is not False:
                return result
            last = result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s; last seen: {last!r}")
        time.sleep(interval)


def condition(obj: Mapping[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return dict(cond)
    return None


def unique_suffix() -> str:
    return secrets.token_hex(3)
