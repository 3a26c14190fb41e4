"""Running a rendered Kubernetes probe (httpGet or native grpc) from the test host."""

from __future__ import annotations

import time
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]


def _port(spec: Any, ports: dict[str, int], published: dict[int, int] | None) -> int:
    port = ports[spec] if isinstance(spec, str) else int(spec)
    return published.get(port, port) if published else port


def probe_once(
    probe: dict[str, Any],
    ports: dict[str, int],
    *,
    host: str = "127.0.0.1",
    published: dict[int, int] | None = None,
) -> tuple[bool, str]:
    """One attempt, as the kubelet makes it: (success, what was seen)."""
    timeout = float(probe.get("timeoutSeconds", 1))
    if "httpGet" in probe:
        spec = probe["httpGet"]
        url = f"http://{host}:{_port(spec['port'], ports, published)}{spec.get('path', '/')}"
        try:
            answer = httpx.get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            return False, f"GET {url}: {exc!r}"
        return 200 <= answer.status_code < 400, f"GET {url}: {answer.status_code}"
    if "grpc" in probe:
        spec = probe["grpc"]
        target = f"{host}:{_port(spec['port'], ports, published)}"
        try:
            with grpc.insecure_channel(target) as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=spec.get("service", "")),
                    timeout=timeout,
                )
        except grpc.RpcError as exc:
            return False, f"grpc.health.v1 Check {target}: {exc.code()}"
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        return answer.status == health_pb2.HealthCheckResponse.SERVING, f"{target}: {name}"
    raise AssertionError(f"unsupported probe {probe}")


def wait_until_passes(
    probe: dict[str, Any],
    ports: dict[str, int],
    *,
    timeout: float,
    alive: Any = None,
    host: str = "127.0.0.1",
    published: dict[int, int] | None = None,
) -> str:
    """Poll the probe until it passes; raise with the last observation otherwise."""
    deadline = time.monotonic() + timeout
    seen = "not tried"
    while time.monotonic() < deadline:
        ok, seen = probe_once(probe, ports, host=host, published=published)
        if ok:
            return seen
        if alive is not None and (problem := alive()):
            raise AssertionError(f"died before the probe passed ({seen}): {problem}")
        time.sleep(0.25)
    raise AssertionError(f"probe did not pass within {timeout:.0f} s: {seen}")
