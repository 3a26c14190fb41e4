"""The app in process (httpx ASGI transport): every status, code and header."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from public_rest.app import PublicRestApp
from public_rest.auth import (
    AuthServiceError,
    AuthServiceUnavailableError,
    UnavailableAuthServiceClient,
)
from public_rest.readiness import Readiness
from public_rest.testing import CONFIRM, SEND, FakeAuth, anti_abuse, asgi_client, public_key

CONFIRM_BODY = {
    "challenge_id": "ch_1",
    "code": "123456",
    "client_public_key": public_key(7),
    "time_zone": "Europe/Berlin",
}


def error_of(response: Any) -> tuple[int, str, str]:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return response.status_code, body["error"]["code"], body["error"]["message"]


async def test_probes(make_app: Callable[..., PublicRestApp]) -> None:
    class Up:
        async def check(self) -> bool:
            return True

    app = make_app()
    async with asgi_client(app) as client:
        healthz = await client.get("/healthz")
        assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
        assert len(healthz.headers["x-request-id"]) == 32
        assert error_of(await client.get("/readyz")) == (
            503,
            "service_unavailable",
            "service is unavailable",
        )
    ready = make_app(readiness=Readiness(Up()))  # type: ignore[arg-type]
    async with asgi_client(ready) as client:
        response = await client.get("/readyz")
        assert (response.status_code, response.json()) == (200, {"status": "ready"})
        ready.readiness.shutting_down = True
        assert (await client.get("/readyz")).status_code == 503


async def test_send_email_code_forwards_normalized_email_and_language(
    make_app: Callable[..., PublicRestApp], fake_auth: FakeAuth
) -> None:
    async with asgi_client(make_app()) as client:
        response = await client.post(
            SEND,
            json={"email": "  Alice@Example.ORG "},
            headers={"Accept-Language": "ja;q=1, de-CH;q=0.8, fr;q=0.7"},
        )
        plain = await client.post(SEND, json={"email": "bob@example.org"})
    assert (response.status_code, response.json()) == (200, {"challenge_id": "ch_test"})
    assert plain.status_code == 200
    assert fake_auth.calls == [
        ("send", ("Alice@example.org", "de")),
        ("send", ("bob@example.org", "en")),
    ]


async def test_confirm_email_code_forwards_the_fields(
    make_app: Callable[..., PublicRestApp], fake_auth: FakeAuth
) -> None:
    async with asgi_client(make_app()) as client:
        response = await client.post(CONFIRM, json={**CONFIRM_BODY, "challenge_id": " ch_1 "})
    assert (response.status_code, response.json()) == (200, {"device_session_id": "ds_test"})
    assert fake_auth.calls == [
        ("confirm", ("ch_1", "123456", public_key(7), "Europe/Berlin")),
    ]


@pytest.mark.parametrize(
    ("path", "kwargs", "message"),
    [
        (SEND, {"json": {"email": "nope"}}, "email must be a valid e-mail address"),
        (SEND, {"json": {}}, "email is required"),
        (SEND, {"content": b"{oops", "headers": {"content-type": "application/json"}},
         "request body must be valid JSON"),
        (SEND, {"content": '{"email":"a@b.org"}'.encode("utf-16-le")},
         "request body must be valid JSON"),
        (SEND, {"content": '{"email":"a@b.org"}'.encode("utf-16-be")},
         "request body must be valid JSON"),
        (SEND, {"content": '{"email":"a@b.org"}'.encode("utf-32")},
         "request body must be valid JSON"),
        (SEND, {"content": '{"email":"a@b.org"}'.encode("utf-8-sig"),
                "headers": {"content-type": "application/json; charset=utf-8"}},
         "request body must be valid JSON"),
        (SEND, {"content": b'{"email":"a@b.org"}', "headers": {"content-type": "text/plain"}},
         "Content-Type must be application/json"),
        (SEND, {"data": {"email": "a@b.org"}}, "Content-Type must be application/json"),
        (CONFIRM, {"json": {**CONFIRM_BODY, "client_public_key": "AAAA"}},
         "client_public_key must be the standard base64 encoding of a 32-byte Ed25519 key"),
        (CONFIRM, {"json": {**CONFIRM_BODY, "time_zone": "Moon/Base"}},
         "time_zone must be an IANA time zone name"),
        (CONFIRM, {"json": {**CONFIRM_BODY, "code": ""}}, "code must not be empty"),
        (CONFIRM, {"json": {k: v for k, v in CONFIRM_BODY.items() if k != "challenge_id"}},
         "challenge_id is required"),
    ],
)  # fmt: skip
async def test_invalid_request_names_the_field(
    make_app: Callable[..., PublicRestApp],
    fake_auth: FakeAuth,
    path: str,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    async with asgi_client(make_app()) as client:
        response = await client.post(path, **kwargs)
    assert error_of(response) == (400, "invalid_request", message)
    assert fake_auth.calls == []


async def test_json_without_content_type_and_json_suffix_types_are_accepted(
    make_app: Callable[..., PublicRestApp],
) -> None:
    async with asgi_client(make_app()) as client:
        bare = await client.post(SEND, content=b'{"email":"a@b.org"}')
        typed = await client.post(
            SEND,
            content=b'{"email":"c@b.org"}',
            headers={"content-type": "application/merge-patch+json; charset=utf-8"},
        )
    assert bare.status_code == 200
    assert typed.status_code == 200


async def test_not_found_and_method_not_allowed(make_app: Callable[..., PublicRestApp]) -> None:
    async with asgi_client(make_app()) as client:
        assert error_of(await client.get("/nope")) == (404, "not_found", "route not found")
        assert error_of(await client.delete("/api/v1/user/x")) == (
            404,
            "not_found",
            "route not found",
        )
        for method, path, allow in [
            ("GET", SEND, "POST"),
            ("PUT", CONFIRM, "POST"),
            ("OPTIONS", SEND, "POST"),
            ("POST", "/healthz", "GET"),
            ("HEAD", "/readyz", "GET"),
            ("POST", "/", "GET, HEAD"),
            ("DELETE", "/assets/app.js", "GET, HEAD"),
        ]:
            response = await client.request(method, path)
            assert response.status_code == 405, (method, path)
            assert response.headers["allow"] == allow
            if method != "HEAD":
                assert error_of(response) == (405, "method_not_allowed", "method is not allowed")


async def test_browser_routes_answer_not_found_when_nothing_is_configured(
    make_app: Callable[..., PublicRestApp],
) -> None:
    async with asgi_client(make_app()) as client:
        for path in ("/", "/index.html", "/app/lobby", "/assets/a.css", "/favicon.ico"):
            assert error_of(await client.get(path)) == (404, "not_found", "route not found")
        head = await client.head("/assets/a.css")
        assert head.status_code == 404 and head.content == b""


async def test_body_limits(make_app: Callable[..., PublicRestApp]) -> None:
    async with asgi_client(make_app()) as client:
        big = json.dumps({"email": "a@b.org", "pad": "x" * 9000}).encode()
        assert error_of(await client.post(SEND, content=big)) == (
            413,
            "request_too_large",
            "request is too large",
        )
        exact = b'{"email":"a@b.org"}'.ljust(8192)  # JSON allows trailing spaces
        assert (await client.post(SEND, content=exact)).status_code == 200
        # GET/HEAD classes take no body at all
        assert (await client.request("GET", "/assets/a.js", content=b"x")).status_code == 413
        assert (await client.request("GET", "/healthz", content=b"x")).status_code == 413


async def test_streamed_body_is_refused_before_it_is_all_read(
    make_app: Callable[..., PublicRestApp], fake_auth: FakeAuth
) -> None:
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield b" " * 1024

    async with asgi_client(make_app()) as client:
        response = await client.post(SEND, content=chunks())
    assert error_of(response)[:2] == (413, "request_too_large")
    # 9 chunks pass the 8192-byte limit; at most 64 KiB more are discarded unread
    assert pulled <= 9 + 64 + 1
    assert fake_auth.calls == []


async def test_body_read_timeout(make_app: Callable[..., PublicRestApp]) -> None:
    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"email":'
        await asyncio.sleep(5)
        yield b'"a@b.org"}'

    app = make_app(read_timeout=0.2)
    async with asgi_client(app) as client:
        response = await client.post(SEND, content=stalls())
    assert error_of(response) == (
        400,
        "invalid_request",
        "request body was not received within the read timeout",
    )
    assert 'result="body_read_timeout",route_class="public_auth",status="400"' in (
        app.metrics.render().decode()
    )


async def test_ip_rate_limit_with_retry_after_and_forwarded_headers_ignored(
    make_app: Callable[..., PublicRestApp],
) -> None:
    app = make_app(settings=anti_abuse(public_auth_burst=3))
    async with asgi_client(app, peer="198.51.100.9") as client:
        for i in range(3):
            ok = await client.post(
                SEND,
                json={"email": f"u{i}@example.org"},
                headers={"X-Forwarded-For": f"10.0.0.{i}", "Forwarded": f"for=10.0.1.{i}"},
            )
            assert ok.status_code == 200
        limited = await client.post(
            SEND,
            json={"email": "u9@example.org"},
            headers={"X-Forwarded-For": "192.0.2.200", "Forwarded": "for=192.0.2.201"},
        )
        assert error_of(limited) == (429, "rate_limited", "rate limit exceeded")
        retry_after = limited.headers["retry-after"]
        assert retry_after.isdigit() and int(retry_after) >= 1
        # a bad method still counts against the peer and is rate limited first
        assert (await client.get(SEND)).status_code == 429
    async with asgi_client(app, peer="198.51.100.10") as other:
        assert (await other.post(SEND, json={"email": "z@example.org"})).status_code == 200


async def test_classes_do_not_share_buckets(make_app: Callable[..., PublicRestApp]) -> None:
    app = make_app(
        settings=anti_abuse(
            browser_asset_burst=2, browser_asset_requests=1, public_auth_burst=2,
            public_auth_requests=1,
        )
    )  # fmt: skip
    async with asgi_client(app) as client:
        for _ in range(2):
            assert (await client.get("/assets/a.js")).status_code == 404
        assert (await client.get("/assets/a.js")).status_code == 429
        assert (await client.get("/favicon.ico")).status_code == 429  # same class
        assert (await client.post(SEND, json={"email": "a@example.org"})).status_code == 200
        assert (await client.post(SEND, json={"email": "b@example.org"})).status_code == 200
        assert (await client.post(SEND, json={"email": "c@example.org"})).status_code == 429
        assert (await client.get("/")).status_code == 404  # browser_bootstrap untouched
        assert (await client.get("/healthz")).status_code == 200  # public_misc untouched
    text = app.metrics.render().decode()
    assert (
        'gateway_public_http_rejects_total{reject_reason="rate_limited",route_class="browser_asset"} 2.0'
        in text
    )
    assert (
        'gateway_public_http_rejects_total{reject_reason="rate_limited",route_class="public_auth"} 1.0'
        in text
    )


async def test_identity_buckets(make_app: Callable[..., PublicRestApp]) -> None:
    app = make_app(settings=anti_abuse(public_auth_burst=100))
    async with asgi_client(app) as client:
        assert (await client.post(SEND, json={"email": "Carol@example.org"})).status_code == 200
        limited = await client.post(SEND, json={"email": " carol@EXAMPLE.org"})
        assert error_of(limited)[:2] == (429, "rate_limited")
        assert int(limited.headers["retry-after"]) == 200  # 3 per 10 minutes
        assert (await client.post(SEND, json={"email": "dave@example.org"})).status_code == 200
        for _ in range(2):
            assert (await client.post(CONFIRM, json=CONFIRM_BODY)).status_code == 200
        third = await client.post(CONFIRM, json={**CONFIRM_BODY, "challenge_id": "ch_1 "})
        assert error_of(third)[:2] == (429, "rate_limited")
        other = await client.post(CONFIRM, json={**CONFIRM_BODY, "challenge_id": "ch_2"})
        assert other.status_code == 200


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (AuthServiceError(400, "invalid_code", "wrong code"), (400, "invalid_code", "wrong code")),
        (AuthServiceError(410, "challenge_expired", ""), (410, "challenge_expired", "resource is no longer available")),
        (AuthServiceError(700, "weird", "x"), (500, "internal_error", "internal error")),
        (AuthServiceUnavailableError("down"), (503, "service_unavailable", "service is unavailable")),
        (RuntimeError("secret detail /etc/x"), (500, "internal_error", "internal error")),
        (ValueError("boom"), (500, "internal_error", "internal error")),
    ],
)  # fmt: skip
async def test_upstream_outcomes_are_projected(
    make_app: Callable[..., PublicRestApp],
    fake_auth: FakeAuth,
    outcome: BaseException,
    expected: tuple[int, str, str],
) -> None:
    fake_auth.confirm_result = outcome
    async with asgi_client(make_app()) as client:
        response = await client.post(CONFIRM, json=CONFIRM_BODY)
    assert error_of(response) == expected
    assert "secret detail" not in response.text


async def test_projected_upstream_429_carries_retry_after(
    make_app: Callable[..., PublicRestApp], fake_auth: FakeAuth
) -> None:
    async with asgi_client(make_app()) as client:
        fake_auth.confirm_result = AuthServiceError(429, "too_many_attempts", "slow", 17)
        own = await client.post(CONFIRM, json=CONFIRM_BODY)
        fake_auth.confirm_result = AuthServiceError(429, "too_many_attempts", "slow")
        default = await client.post(CONFIRM, json={**CONFIRM_BODY, "challenge_id": "ch_2"})
    assert error_of(own) == (429, "too_many_attempts", "slow")
    assert own.headers["retry-after"] == "17"
    assert len(own.headers["x-request-id"]) == 32
    assert error_of(default) == (429, "too_many_attempts", "slow")
    assert default.headers["retry-after"] == "60"  # DEFAULT_UPSTREAM_RETRY_AFTER_SECONDS


async def test_upstream_timeout_is_service_unavailable(
    make_app: Callable[..., PublicRestApp], fake_auth: FakeAuth
) -> None:
    fake_auth.delay = 5
    app = make_app(auth_timeout=0.2)
    loop = asyncio.get_running_loop()
    async with asgi_client(app) as client:
        started = loop.time()
        response = await client.post(SEND, json={"email": "slow@example.org"})
        elapsed = loop.time() - started
    assert error_of(response) == (503, "service_unavailable", "service is unavailable")
    assert elapsed < 4.0  # the 0.2 s budget, not the 5 s delay
    assert 'result="auth_upstream_timeout"' in app.metrics.render().decode()


async def test_no_upstream_wired_keeps_routes_and_answers_503(
    make_app: Callable[..., PublicRestApp],
) -> None:
    app = make_app(auth_client=UnavailableAuthServiceClient())
    async with asgi_client(app) as client:
        for path, body in ((SEND, {"email": "a@example.org"}), (CONFIRM, CONFIRM_BODY)):
            assert error_of(await client.post(path, json=body)) == (
                503,
                "service_unavailable",
                "service is unavailable",
            )
        # validation still comes first
        assert (await client.post(SEND, json={"email": "x"})).status_code == 400


async def test_a_failing_classifier_falls_back_to_public_misc(
    make_app: Callable[..., PublicRestApp],
) -> None:
    class Broken:
        def classify(self, method: str, path: str) -> str:
            raise RuntimeError("bug")

    class Odd:
        def classify(self, method: str, path: str) -> str:
            return "vip"

    for classifier in (Broken(), Odd()):
        app = make_app(classifier=classifier)
        async with asgi_client(app) as client:
            assert (await client.get("/healthz")).status_code == 200
        assert 'route_class="public_misc"' in app.metrics.render().decode()


async def test_metrics_families_and_labels(make_app: Callable[..., PublicRestApp]) -> None:
    app = make_app()
    async with asgi_client(app) as client:
        await client.get("/healthz")
        await client.post(SEND, json={"email": "bad"})
        await client.request("BREW", "/healthz")
    text = app.metrics.render().decode()
    assert (
        'gateway_public_http_requests_total{method="GET",result="ok",route_class="public_misc",status="200"} 1.0'
        in text
    )
    assert (
        'gateway_public_http_requests_total{method="POST",result="malformed_request",route_class="public_auth",status="400"} 1.0'
        in text
    )
    assert 'method="OTHER",result="method_not_allowed"' in text
    assert "gateway_public_http_duration_seconds_bucket" in text
    assert (
        'gateway_public_http_malformed_requests_total{field="email",route_class="public_auth"} 1.0'
        in text
    )
    assert (
        'gateway_public_http_rate_limit_buckets{scope="public_rest/class=public_auth/ip"} 1.0'
        in text
    )


async def test_repeated_failures_emit_one_audit_line_per_doubling(
    make_app: Callable[..., PublicRestApp], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(settings=anti_abuse(public_auth_burst=100))
    with caplog.at_level(logging.DEBUG):
        async with asgi_client(app, peer="192.0.2.44") as client:
            for i in range(10):
                await client.post(SEND, json={"email": f"victim{i}@example.org", "x": 1})
    audit = [r for r in caplog.records if r.name == "public_rest.audit"]
    assert [r.__dict__["failures"] for r in audit] == [5, 10]
    assert all(r.__dict__["peer_ip"] == "192.0.2.44" for r in audit)
    assert all(r.__dict__["signal"] == "malformed_request" for r in audit)
    assert (
        'gateway_public_http_abuse_events_total{route_class="public_auth",signal="malformed_request"} 2.0'
        in (app.metrics.render().decode())
    )
    for record in caplog.records:
        assert "victim" not in record.getMessage()
        assert "victim" not in json.dumps({k: str(v) for k, v in record.__dict__.items()})


async def test_body_that_breaks_off_is_400_with_one_log_line(
    make_app: Callable[..., PublicRestApp],
    fake_auth: FakeAuth,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Granian's receive() answers http.disconnect when hyper refuses the chunked
    # framing or the body hits EOF early: the edge answers the catalog's 400.
    messages = iter(
        [
            {"type": "http.request", "body": b'{"email":', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": SEND,
        "raw_path": SEND.encode(),
        "query_string": b"",
        "headers": [(b"host", b"gw"), (b"transfer-encoding", b"chunked")],
        "client": ("203.0.113.9", 40000),
    }
    app = make_app()
    with caplog.at_level(logging.INFO, logger="public_rest.edge"):
        await app.asgi(scope, receive, send)
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 400
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body["body"]) == {
        "error": {"code": "invalid_request", "message": "request is malformed"}
    }
    [line] = [r for r in caplog.records if r.name == "public_rest.edge"]
    assert line.levelno == logging.INFO
    assert line.getMessage() == "request body ended before its framing was complete"
    assert line.__dict__["request_id"] == headers[b"x-request-id"].decode()
    assert line.__dict__["received_bytes"] == 9
    assert fake_auth.calls == []
    assert (
        'gateway_public_http_malformed_requests_total{field="body",route_class="public_auth"} 1.0'
        in app.metrics.render().decode()
    )


async def test_websocket_is_refused(make_app: Callable[..., PublicRestApp]) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await make_app().asgi({"type": "websocket", "path": "/"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_server_spans_continue_the_incoming_trace(
    make_app: Callable[..., PublicRestApp],
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = make_app(tracer=provider.get_tracer("test"))
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with asgi_client(app) as client:
        await client.get("/healthz", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
        await client.post(SEND, json={"email": "bad"})
    health, bad = exporter.get_finished_spans()
    assert health.name == "GET /healthz"
    assert format(health.context.trace_id, "032x") == trace_id
    assert health.attributes["public_rest.route_class"] == "public_misc"
    assert health.attributes["http.response.status_code"] == 200
    assert bad.attributes["public_rest.result"] == "malformed_request"
    assert "bad" not in str(dict(bad.attributes))

    quiet = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(quiet))
    off = make_app(tracer=provider.get_tracer("test"), trace_requests=False)
    async with asgi_client(off) as client:
        await client.get("/healthz")
    assert quiet.get_finished_spans() == ()
