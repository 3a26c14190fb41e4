"""Browser bootstrap/asset handlers: static directory and upstream proxy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from public_rest.app import PublicRestApp
from public_rest.browser import ProxyBrowserHandler, StaticDirectoryHandler
from public_rest.testing import anti_abuse, asgi_client


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>Galaxy</title>")
    (root / "assets" / "app-1234.js").write_text("console.log('hi')")
    (root / "favicon.ico").write_bytes(b"\x00\x00\x01\x00")
    (root / ".env").write_text("SECRET=1")
    (root / "assets" / ".git").mkdir()
    (tmp_path / "outside.txt").write_text("outside")
    (root / "assets" / "escape.js").symlink_to(tmp_path / "outside.txt")
    return root


async def test_static_directory(site: Path, make_app: Callable[..., PublicRestApp]) -> None:
    app = make_app(browser=StaticDirectoryHandler(site))
    async with asgi_client(app) as client:
        for path in ("/", "/index.html", "/app", "/app/games/42"):
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.text.startswith("<!doctype html>")
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert response.headers["cache-control"] == "no-cache"
        asset = await client.get("/assets/app-1234.js")
        assert asset.status_code == 200
        assert asset.text == "console.log('hi')"
        assert asset.headers["content-type"].startswith(
            ("text/javascript", "application/javascript")
        )
        assert asset.headers["cache-control"] == "public, max-age=3600"
        assert asset.headers["x-content-type-options"] == "nosniff"
        cached = await client.get(
            "/assets/app-1234.js", headers={"If-None-Match": asset.headers["etag"]}
        )
        assert cached.status_code == 304 and cached.content == b""
        head = await client.head("/assets/app-1234.js")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len("console.log('hi')"))
        assert (await client.get("/favicon.ico")).content == b"\x00\x00\x01\x00"
        for missing in (
            "/assets/none.js",
            "/assets/escape.js",
            "/static/.env",
            "/assets/.git/x.js",
        ):
            response = await client.get(missing)
            assert response.status_code == 404, missing
            assert response.json()["error"]["code"] == "not_found"
        assert (await client.post("/assets/app-1234.js")).status_code == 405


def test_static_paths_never_leave_the_root(site: Path) -> None:
    handler = StaticDirectoryHandler(site)
    for path in ("/../outside.txt", "/assets/../../outside.txt", "/assets/escape.js", "/.env",
                 "/assets/..%2f..%2foutside.txt", "/a\\..\\b.js", "/x\x00.js"):  # fmt: skip
        assert handler._file(path) is None, path
    assert handler._file("/assets/app-1234.js") == (site / "assets" / "app-1234.js").resolve()


def test_static_root_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        StaticDirectoryHandler(tmp_path / "file")
    with pytest.raises(FileNotFoundError):
        StaticDirectoryHandler(tmp_path / "missing")


async def test_browser_traffic_keeps_its_own_budget(
    site: Path, make_app: Callable[..., PublicRestApp]
) -> None:
    app = make_app(
        browser=StaticDirectoryHandler(site),
        settings=anti_abuse(browser_bootstrap_burst=2, browser_bootstrap_requests=1),
    )
    async with asgi_client(app) as client:
        assert [(await client.get("/")).status_code for _ in range(3)] == [200, 200, 429]
        assert (await client.get("/assets/app-1234.js")).status_code == 200


async def test_proxy_forwards_get_and_head_with_a_fixed_header_list(
    make_app: Callable[..., PublicRestApp],
) -> None:
    seen: list[httpx.Request] = []

    class Upstream(httpx.AsyncBaseTransport):  # streams, unlike httpx.MockTransport
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(
                200,
                stream=httpx.ByteStream(b"body-bytes"),
                headers={
                    "content-type": "text/css",
                    "content-length": "10",
                    "etag": '"e1"',
                    "set-cookie": "tracking=1",
                    "server": "upstream/1.0",
                },
            )

    proxy = ProxyBrowserHandler("http://cdn.internal:8000/", transport=Upstream())
    app = make_app(browser=proxy)
    async with asgi_client(app) as client:
        response = await client.get(
            "/assets/site.css?v=3",
            headers={"Accept": "text/css", "Cookie": "session=1", "Authorization": "Bearer x"},
        )
        head = await client.head("/")
    await proxy.aclose()
    assert response.status_code == 200
    assert response.content == b"body-bytes"
    assert response.headers["etag"] == '"e1"'
    assert "set-cookie" not in response.headers
    assert "server" not in response.headers
    assert head.status_code == 200 and head.content == b""
    assert str(seen[0].url) == "http://cdn.internal:8000/assets/site.css?v=3"
    assert seen[0].headers["accept"] == "text/css"
    assert "cookie" not in seen[0].headers
    assert "authorization" not in seen[0].headers
    assert seen[1].method == "HEAD"


async def test_proxy_failure_is_service_unavailable(
    make_app: Callable[..., PublicRestApp],
) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    proxy = ProxyBrowserHandler("http://cdn.internal", transport=httpx.MockTransport(down))
    async with asgi_client(make_app(browser=proxy)) as client:
        response = await client.get("/index.html")
    assert response.status_code == 503
    assert response.json() == {
        "error": {"code": "service_unavailable", "message": "service is unavailable"}
    }
