"""edgecore.rpc without a server: status mapping, codecs, CORS, content types, launch config."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from edgecore.config import HostPort
from edgecore.errors import CATALOG, EdgeError, GrpcCode, Reject
from edgecore.pipeline import peer_ip_from_address
from edgecore.rpc.asgi import supported_content_type
from edgecore.rpc.codecs import Preserialized, ProtoBinaryCodec, ProtoJsonCodec
from edgecore.rpc.cors import CorsPolicy
from edgecore.rpc.interceptors import catalog_error
from edgecore.rpc.launcher import LaunchSpec, ListenError, envoy_config, resolve_listen_address
from edgecore.rpc.runtime import default_sampler_without_exporter
from edgecore.rpc.status import CONNECT_CODES, CatalogError, connect_error
from galaxy.gateway.v1 import edge_gateway_pb2 as pb


def test_every_catalog_reject_becomes_the_connect_code_of_the_same_name():
    for spec in CATALOG:
        name = "CANCELED" if spec.grpc_code is GrpcCode.CANCELLED else spec.grpc_code.name
        assert CONNECT_CODES[spec.grpc_code] is Code[name]
    for reject in Reject:
        error = connect_error(EdgeError(reject))
        assert (error.code, error.message) == (
            CONNECT_CODES[reject.spec.grpc_code],
            reject.spec.message,
        )


@pytest.mark.parametrize(
    ("library", "expected"),
    [
        (ConnectError(Code.RESOURCE_EXHAUSTED, "message is larger than configured max 10"),
         (Code.RESOURCE_EXHAUSTED, "request is too large")),
        (ConnectError(Code.INVALID_ARGUMENT, "decompress: Error -3 while decompressing"),
         (Code.INVALID_ARGUMENT, "request envelope is malformed")),
        (ConnectError(Code.UNIMPLEMENTED, "unknown compression 'br'"),
         (Code.INVALID_ARGUMENT, "request envelope is malformed")),
        (ValueError("boom at 0x7f..."), (Code.INTERNAL, "internal error")),
        (ConnectError(Code.INTERNAL, "protocol error: sent compressed message without compression support"),
         (Code.INVALID_ARGUMENT, "request envelope is malformed")),
        (ConnectError(Code.INTERNAL, "something else"), (Code.INTERNAL, "internal error")),
        (ConnectError(Code.DEADLINE_EXCEEDED, "Request timed out"),
         (Code.DEADLINE_EXCEEDED, "Request timed out")),
    ],
)  # fmt: skip
def test_library_errors_are_rewritten_into_the_catalog(library, expected):
    error = catalog_error(library)
    assert (error.code, error.message) == expected


def test_catalog_errors_pass_unchanged():
    error = connect_error(EdgeError(Reject.REPLAY_DETECTED))
    assert catalog_error(error) is error
    assert isinstance(error, CatalogError)


@pytest.mark.parametrize(
    ("codec", "data"),
    [
        (ProtoBinaryCodec(), b"\xff\xff\xff"),
        (ProtoBinaryCodec(), b"\x0a\x05\xff\xfe\xfd\xfc\xfb"),  # invalid UTF-8 in a string
        (ProtoJsonCodec(), b"{not json"),
        (ProtoJsonCodec(), b'{"protocolVersion": 5}'),
        (ProtoJsonCodec(), b"\xff\xfe"),
    ],
    ids=["garbage", "invalid-utf8", "bad-json", "wrong-type", "not-utf8-json"],
)
def test_undecodable_requests_are_the_catalog_malformed_request(codec, data):
    with pytest.raises(CatalogError) as info:
        codec.decode(data, pb.ExecuteCommandRequest)
    assert (info.value.code, info.value.message) == (
        Code.INVALID_ARGUMENT,
        "request envelope is malformed",
    )


def test_preserialized_events_are_written_as_they_are_or_as_json():
    event = pb.GatewayEvent(event_type="gateway.server_time", request_id="r1")
    wrapped = Preserialized(event.SerializeToString(), pb.GatewayEvent)
    assert ProtoBinaryCodec().encode(wrapped) == event.SerializeToString()
    assert ProtoJsonCodec().decode(ProtoJsonCodec().encode(wrapped), pb.GatewayEvent) == event


@pytest.mark.parametrize(
    ("content_type", "stream", "supported"),
    [
        ("application/proto", False, True),
        ("application/json", False, True),
        ("application/json; charset=utf-8", False, True),
        ("application/grpc", False, True),
        ("application/grpc+proto", True, True),
        ("application/grpc-web+proto", False, True),
        ("application/grpc-web+json", True, True),
        ("application/connect+proto", True, True),
        ("application/connect+proto", False, False),
        ("application/proto", True, False),
        ("application/grpc-web-text", False, False),
        ("application/grpc+xml", False, False),
        ("text/plain", False, False),
        ("", False, False),
    ],
)
def test_content_types(content_type, stream, supported):
    assert supported_content_type(content_type, stream=stream) is supported


def test_cors_allows_exact_origins_only():
    policy = CorsPolicy(["https://play.example.com"])
    assert policy and policy.allows(b"https://play.example.com")
    assert not policy.allows(b"https://play.example.com.evil.test")
    assert not policy.allows(b"null")
    assert not CorsPolicy([])


@pytest.mark.parametrize(
    ("address", "ip"),
    [("127.0.0.1:5000", "127.0.0.1"), ("::1:5000", "::1"), ("[::ffff:10.0.0.1]:1", "10.0.0.1"),
     (None, "unknown"), ("garbage", "unknown")],
)  # fmt: skip
def test_peer_ip_comes_from_the_transport_address(address, ip):
    assert peer_ip_from_address(address) == ip


def test_sampler_default_applies_only_without_exporter_and_without_operator_choice():
    env: dict[str, str] = {}
    default_sampler_without_exporter("none", env)
    assert env == {"OTEL_TRACES_SAMPLER": "parentbased_always_off"}
    chosen = {"OTEL_TRACES_SAMPLER": "traceidratio"}
    default_sampler_without_exporter("none", chosen)
    assert chosen == {"OTEL_TRACES_SAMPLER": "traceidratio"}
    exporting: dict[str, str] = {}
    default_sampler_without_exporter("otlp", exporting)
    assert exporting == {}


def test_a_taken_port_is_refused_before_envoy_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port} "):
            resolve_listen_address(HostPort("127.0.0.1", port))


def test_port_zero_picks_a_free_port_and_empty_host_listens_everywhere():
    host, port = resolve_listen_address(HostPort("", 0))
    assert host in ("::", "0.0.0.0") and port > 0


def test_envoy_config_keeps_streams_open_and_never_shares_the_port():
    spec = LaunchSpec(
        service="edge-grpc",
        app="edge_grpc.asgi:app",
        addr=HostPort("", 9090),
        shutdown_timeout=timedelta(seconds=5),
        headers_timeout=timedelta(seconds=5),
        max_connection_idle=timedelta(minutes=5),
        max_connection_age=timedelta(hours=1),
    )
    config = envoy_config(spec, "::", 9090)
    assert "admin" not in config
    (listener,) = config["static_resources"]["listeners"]
    assert listener["enable_reuse_port"] is False
    assert listener["address"]["socket_address"] == {
        "address": "::", "port_value": 9090, "ipv4_compat": True
    }  # fmt: skip
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["stream_idle_timeout"] == "0s"
    assert hcm["http2_protocol_options"]["connection_keepalive"]["interval"] == "60s"
    assert hcm["common_http_protocol_options"] == {
        "idle_timeout": "300.0s",
        "max_connection_duration": "3600.0s",
    }
    assert hcm["drain_timeout"] == "5.0s"
