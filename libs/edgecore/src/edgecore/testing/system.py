"""The whole system as separate processes: what ``make run`` starts and the e2e suite drives.

Redis (given, or started by the caller), the mock backend, then public-rest,
edge-grpc and push-hub, each with its production entry point
(``python -m <service>``, plus any extra arguments given per service, such as
public-rest's ``--static-dir`` for the browser console) and the same
environment variables production uses. Dev key material (the response-signer
key and the internal HMAC secret) is generated fresh into
``<run_dir>/secrets`` with mode 0600.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from edgecore.keys import encode_ed25519_pkcs8_pem
from edgecore.signing import Signer
from edgecore.testing.ports import free_port
from edgecore.testing.processes import ManagedProcess, wait_for_port

__all__ = ["DEV_LOGIN_CODE", "SERVICES", "System", "SystemPorts"]

DEV_LOGIN_CODE: Final = "271828"
SERVICES: Final = ("mock-backend", "public-rest", "edge-grpc", "push-hub")
_MODULES: Final = {
    "mock-backend": "mock_backend",
    "public-rest": "public_rest",
    "edge-grpc": "edge_grpc",
    "push-hub": "push_hub",
}


@dataclass(frozen=True)
class SystemPorts:
    mock_backend: int = 8090
    public_rest: int = 8080
    edge_grpc: int = 9090
    push_hub: int = 9091
    admin_public_rest: int = 9100
    admin_edge_grpc: int = 9101
    admin_push_hub: int = 9102

    @classmethod
    def free(cls) -> SystemPorts:
        return cls(*(free_port() for _ in range(7)))

    def of(self, service: str) -> int:
        port: int = getattr(self, service.replace("-", "_"))
        return port

    def admin_of(self, service: str) -> int:
        port: int = getattr(self, "admin_" + service.replace("-", "_"))
        return port


@dataclass
class System:
    run_dir: Path
    redis_host: str
    redis_port: int
    redis_password: str
    ports: SystemPorts = field(default_factory=SystemPorts)
    extra_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Appended to ``python -m <module>`` of that service, e.g. {"public-rest": ["--static-dir", d]}.
    extra_args: Mapping[str, Sequence[str]] = field(default_factory=dict)
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    server_public_key: str = ""

    @property
    def redis_url(self) -> str:
        return f"redis://:{self.redis_password}@{self.redis_host}:{self.redis_port}/0"

    @property
    def secrets_dir(self) -> Path:
        return self.run_dir / "secrets"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    def prepare(self) -> None:
        """Fresh dev key material; the server public key is what clients pin."""
        self.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        signer = Signer.generate()
        _write_secret(
            self.secrets_dir / "response-signer.pem", encode_ed25519_pkcs8_pem(signer.seed())
        )
        _write_secret(self.secrets_dir / "internal-hmac.secret", secrets.token_hex(32).encode())
        # edge-grpc follows the route table sealed with this key (docs/routes.md).
        _write_secret(self.route_table_key_path, base64.b64encode(secrets.token_bytes(32)))
        self.server_public_key = base64.b64encode(signer.public_key).decode()

    @property
    def route_table_key_path(self) -> Path:
        return self.secrets_dir / "route-table.key"

    def env_for(self, service: str) -> dict[str, str]:
        hmac_path = str(self.secrets_dir / "internal-hmac.secret")
        if service == "mock-backend":
            env = {
                "MOCK_BACKEND_ADDR": f"127.0.0.1:{self.ports.mock_backend}",
                "MOCK_BACKEND_REDIS_URL": self.redis_url,
                "MOCK_BACKEND_HMAC_SECRET_PATH": hmac_path,
                "MOCK_BACKEND_FIXED_LOGIN_CODE": DEV_LOGIN_CODE,
                "MOCK_BACKEND_DEV_ENDPOINTS": "1",
            }
        else:
            env = {
                "GATEWAY_LOG_LEVEL": "info",
                "GATEWAY_BACKEND_HTTP_URL": f"http://127.0.0.1:{self.ports.mock_backend}",
                "GATEWAY_BACKEND_GATEWAY_CLIENT_ID": f"dev-{service}",
                "GATEWAY_BACKEND_HMAC_SECRET_PATH": hmac_path,
                "GATEWAY_ADMIN_HTTP_ADDR": f"127.0.0.1:{self.ports.admin_of(service)}",
            }
            if service == "public-rest":
                env["GATEWAY_PUBLIC_HTTP_ADDR"] = f"127.0.0.1:{self.ports.public_rest}"
            else:
                env.update(
                    {
                        "GATEWAY_AUTHENTICATED_GRPC_ADDR": f"127.0.0.1:{self.ports.of(service)}",
                        "GATEWAY_REDIS_MASTER_ADDR": f"{self.redis_host}:{self.redis_port}",
                        "GATEWAY_REDIS_PASSWORD": self.redis_password,
                        "GATEWAY_RESPONSE_SIGNER_PRIVATE_KEY_PEM_PATH": str(
                            self.secrets_dir / "response-signer.pem"
                        ),
                    }
                )
            if service == "edge-grpc":
                env["GATEWAY_ROUTES_TABLE_KEY_PATH"] = str(self.route_table_key_path)
        env.update(self.extra_env.get(service, {}))
        return env

    def start_service(self, service: str, *, ready_timeout: float = 60.0) -> ManagedProcess:
        port = self.ports.of(service)
        if wait_for_port(port, timeout=0.05):
            raise RuntimeError(f"{service}: port {port} is already in use")
        process = ManagedProcess(
            _MODULES[service],
            self.env_for(service),
            log_path=self.logs_dir / f"{service}.log",
            port=port,
            args=tuple(self.extra_args.get(service, ())),
        )
        self.processes[service] = process
        process.start(ready_timeout=ready_timeout)
        return process

    def start(self) -> None:
        if not self.server_public_key:
            self.prepare()
        for service in SERVICES:
            self.start_service(service)

    def dead(self) -> list[str]:
        return [name for name, process in self.processes.items() if not process.running]

    def stop(self, timeout: float = 15.0) -> None:
        for service in reversed(SERVICES):
            process = self.processes.get(service)
            if process is not None:
                process.stop(timeout=timeout)

    def logs(self) -> dict[str, str]:
        return {name: process.log() for name, process in self.processes.items()}


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)
