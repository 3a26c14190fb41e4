"""openapi.yaml describes exactly what the app serves: paths, methods, statuses, bodies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from public_rest.app import PublicRestApp
from public_rest.auth import AuthServiceError, AuthServiceUnavailableError
from public_rest.policy import ROUTE_METHODS
from public_rest.readiness import Readiness
from public_rest.testing import CONFIRM, SEND, FakeAuth, anti_abuse, asgi_client, public_key

SPEC_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
CONFIRM_BODY = {
    "challenge_id": "ch_1",
    "code": "123456",
    "client_public_key": public_key(1),
    "time_zone": "UTC",
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return loaded


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method.upper()): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def documented_response(op: dict[str, Any], status: int) -> str | None:
    responses = op["responses"]
    if str(status) in responses:
        return str(status)
    wildcard = f"{status // 100}XX"
    return wildcard if wildcard in responses else None


def test_paths_and_methods_match_the_app(
    spec: dict[str, Any], make_app: Callable[..., PublicRestApp]
) -> None:
    documented = set(operations(spec))
    served = {(path, method) for path, methods in ROUTE_METHODS.items() for method in methods}
    assert documented == served
    app = make_app()
    litestar_routes = {
        (route.path, method)
        for route in app.litestar.routes
        for method in getattr(route, "methods", ())
        if method not in ("OPTIONS", "HEAD")
    }
    assert litestar_routes == served
    assert "/metrics" not in spec["paths"]


async def test_every_status_is_documented_and_every_documented_status_happens(
    spec: dict[str, Any], make_app: Callable[..., PublicRestApp], fake_auth: FakeAuth
) -> None:
    ops = operations(spec)
    seen: dict[tuple[str, str], set[int]] = {key: set() for key in ops}
    validators: list[tuple[tuple[str, str], Any]] = []

    async def call(app: PublicRestApp, method: str, path: str, **kwargs: Any) -> None:
        async with asgi_client(app) as client:
            response = await client.request(method, path, **kwargs)
        key = (path, method)
        seen[key].add(response.status_code)
        validators.append((key, response))

    class Up:
        async def check(self) -> bool:
            return True

    loose = anti_abuse(
        public_auth_burst=10_000, public_misc_burst=10_000,
        send_email_code_identity_burst=10_000, confirm_email_code_identity_burst=10_000,
    )  # fmt: skip
    app = make_app(settings=loose)
    await call(app, "GET", "/healthz")
    await call(app, "GET", "/readyz")  # no upstream configured: 503
    await call(make_app(settings=loose, readiness=Readiness(Up())), "GET", "/readyz")  # type: ignore[arg-type]
    for path, body in ((SEND, {"email": "a@example.org"}), (CONFIRM, CONFIRM_BODY)):
        await call(app, "POST", path, json=body)
        await call(app, "POST", path, json={"nope": 1})
        await call(app, "POST", path, content=b" " * 9000)
        for outcome in (
            AuthServiceError(404, "challenge_not_found", "no such challenge"),
            AuthServiceError(502, "bad_gateway", "upstream broke"),
            AuthServiceUnavailableError("down"),
            RuntimeError("bug"),
        ):
            fake_auth.send_result = fake_auth.confirm_result = outcome
            await call(app, "POST", path, json=body)
        fake_auth.send_result, fake_auth.confirm_result = "ch", "ds"
    tight = make_app(settings=anti_abuse(public_auth_burst=1, public_misc_burst=1))
    for key in ops:
        path, method = key
        body = {"json": CONFIRM_BODY if path == CONFIRM else {"email": "b@example.org"}}
        for _ in range(2):
            await call(tight, method, path, **(body if method == "POST" else {}))

    for key, op in ops.items():
        explicit = {int(code) for code in op["responses"] if code.isdigit()}
        assert explicit <= seen[key], (key, explicit - seen[key])
        for status in seen[key]:
            assert documented_response(op, status) is not None, (key, status)

    for key, response in validators:
        op = ops[key]
        doc = resolve(spec, op["responses"][documented_response(op, response.status_code)])
        schema = resolve(spec, doc["content"]["application/json"]["schema"])
        jsonschema_rs.validate(_inline(schema, spec), response.json())
        for name, header in doc.get("headers", {}).items():
            if header.get("required"):
                assert name.lower() in response.headers, (key, name)


def _inline(node: Any, spec: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(resolve(spec, node), spec)
        return {k: _inline(v, spec) for k, v in node.items() if k not in ("components", "example")}
    if isinstance(node, list):
        return [_inline(v, spec) for v in node]
    return node


async def test_undocumented_paths_and_methods(
    spec: dict[str, Any], make_app: Callable[..., PublicRestApp]
) -> None:
    app = make_app()
    async with asgi_client(app) as client:
        for path, item in spec["paths"].items():
            documented = {m.upper() for m in item if m in METHODS}
            for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
                if method in documented:
                    continue
                response = await client.request(method, path)
                assert response.status_code == 405
                assert set(response.headers["allow"].split(", ")) == documented
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/schema")).status_code == 404
        assert (await client.get("/schema/openapi.json")).status_code == 404
