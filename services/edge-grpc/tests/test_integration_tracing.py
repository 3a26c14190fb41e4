"""OpenTelemetry: the real process exports its RPC server spans over OTLP/HTTP.

A tiny OTLP/HTTP collector on 127.0.0.1 receives what the gateway exports
with ``OTEL_TRACES_EXPORTER=otlp`` (protocol from
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``); the spans are decoded and checked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import grpc.aio
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from edge_grpc.testing import encode_request, execute
from galaxy.gateway.v1 import edge_gateway_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration


class Collector(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.exports: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[tuple[dict[str, object], object]]:
        """(resource attributes, span) of everything received."""
        out = []
        for export in self.exports:
            for resource_spans in export.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    out.extend((resource, span) for span in scope.spans)
        return out


class _Handler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.exports.append(request)
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def test_grpc_server_spans_reach_an_otlp_http_collector(stack, gateway_factory, collector):
    gateway = gateway_factory(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",  # the trace-specific variable wins
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{collector.url}/v1/traces",
    )
    session = stack.new_session()
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        ok = session.request("user.account.get", encode_request("user.account.get"))
        code, details, _ = await execute(stub, ok)
        assert code == grpc.StatusCode.OK, details
        code, _, _ = await execute(stub, session.request("test.unrouted"))
        assert code == grpc.StatusCode.UNIMPLEMENTED
    assert gateway.stop() == 0  # shutdown flushes the batch processor

    spans = collector.spans()
    assert collector.paths and set(collector.paths) == {"/v1/traces"}
    names = [span.name for _, span in spans]
    # connectrpc-otel names a server span <service>/<method>, on every protocol.
    assert names.count("galaxy.gateway.v1.EdgeGateway/ExecuteCommand") == 2
    assert not [n for n in names if "grpc.health" in n], "health checks are not traced"
    resource = spans[0][0]
    assert resource["service.name"] == "galaxy-edge-gateway"
    # A failed call carries its status code (the Connect name, whatever the protocol).
    codes = [
        attr.value.string_value
        for _, span in spans
        for attr in span.attributes
        if attr.key == "rpc.response.status_code"
    ]
    assert codes == ["unimplemented"]


def test_default_exporter_is_none(stack, gateway_factory, collector):
    """OTEL_TRACES_EXPORTER unset: tracing runs, nothing is exported anywhere."""
    gateway = gateway_factory(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{collector.url}/v1/traces")
    assert gateway.health() == "SERVING"
    assert gateway.stop() == 0
    assert collector.exports == []


async def test_without_root_sampling_only_a_sampled_caller_gets_a_span(
    stack, gateway_factory, collector
):
    """parentbased_always_off (the default without an exporter): a call without trace
    context skips the interceptor; a sampled caller's trace is still recorded, under
    the caller's trace id and as a child of the caller's span."""
    gateway = gateway_factory(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_TRACES_SAMPLER="parentbased_always_off",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{collector.url}/v1/traces",
    )
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    session = stack.new_session()
    async with grpc.aio.insecure_channel(gateway.target) as channel:
        stub = pb_grpc.EdgeGatewayStub(channel)
        for _ in range(3):
            code, details, _ = await execute(
                stub, session.request("user.account.get", encode_request("user.account.get"))
            )
            assert code == grpc.StatusCode.OK, details
        unsampled = f"00-{'1' * 32}-{'2' * 16}-00"
        for traceparent in (unsampled, f"00-{trace_id}-{parent_id}-01"):
            response = await stub.ExecuteCommand(
                session.request("user.account.get", encode_request("user.account.get")),
                metadata=(("traceparent", traceparent),),
            )
            assert response.result_code == "ok"
    assert gateway.stop() == 0

    spans = [span for _, span in collector.spans()]
    assert [(s.trace_id.hex(), s.parent_span_id.hex()) for s in spans] == [(trace_id, parent_id)]
    assert spans[0].name == "galaxy.gateway.v1.EdgeGateway/ExecuteCommand"
