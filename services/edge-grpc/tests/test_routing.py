"""CompositeRouter and DownstreamExecutor: exact-match routing and the error mapping."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from edge_grpc.routing import CompositeRouter, DownstreamExecutor, DuplicateRouteError
from edgecore.backend.commands import BackendRouter
from edgecore.catalog import MESSAGE_TYPES
from edgecore.downstream import (
    AuthenticatedCommand,
    DownstreamContractError,
    DownstreamResult,
    DownstreamUnavailableError,
)
from edgecore.errors import EdgeError, GrpcCode, Reject
from edgecore.fbjson import default_codec


def command(message_type: str = "test.echo", payload: bytes = b"abc") -> AuthenticatedCommand:
    return AuthenticatedCommand(
        user_id="user-1",
        device_session_id="session-1",
        message_type=message_type,
        payload=payload,
        request_id="request-1",
    )


class Echo:
    def __init__(self) -> None:
        self.seen: list[AuthenticatedCommand] = []

    async def execute(self, cmd: AuthenticatedCommand) -> DownstreamResult:
        self.seen.append(cmd)
        return DownstreamResult("ok", cmd.payload)


class Raises:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def execute(self, cmd: AuthenticatedCommand) -> DownstreamResult:
        raise self.exc


class Sleeps:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.cancelled = False

    async def execute(self, cmd: AuthenticatedCommand) -> DownstreamResult:
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return DownstreamResult("ok", b"")


class Returns:
    def __init__(self, value: object) -> None:
        self.value = value

    async def execute(self, cmd: AuthenticatedCommand) -> object:
        return self.value


def executor(client: object, *, timeout: float = 1.0) -> DownstreamExecutor:
    return DownstreamExecutor(
        CompositeRouter({"test.echo": client}),  # type: ignore[dict-item]
        timeout=timedelta(seconds=timeout),
    )


async def reject_of(ex: DownstreamExecutor, cmd: AuthenticatedCommand) -> EdgeError:
    with pytest.raises(EdgeError) as info:
        await ex.execute(cmd)
    return info.value


# --- CompositeRouter -------------------------------------------------------------------------


def test_router_is_exact_match_only():
    echo = Echo()
    router = CompositeRouter({"user.account.get": echo})
    assert router.resolve("user.account.get") is echo
    for near_miss in ("user.account", "user.account.get.x", "USER.ACCOUNT.GET", "user.*", ""):
        assert router.resolve(near_miss) is None
    assert router.is_routed("user.account.get")
    assert not router.is_routed("user.account")


def test_router_refuses_a_message_type_routed_twice():
    router = CompositeRouter({"a.b": Echo()})
    with pytest.raises(DuplicateRouteError):
        router.add("a.b", Echo())
    with pytest.raises(ValueError, match="message_type"):
        router.add("", Echo())


def test_router_includes_the_18_backend_routes():
    router = CompositeRouter()
    backend = BackendRouter(None, default_codec())
    router.include(backend, MESSAGE_TYPES)
    assert len(router) == 18
    assert router.message_types == frozenset(MESSAGE_TYPES)
    for message_type in MESSAGE_TYPES:
        assert router.resolve(message_type) is backend.resolve(message_type)
    router.add("bench.echo", Echo())  # composes with live routes
    with pytest.raises(DuplicateRouteError):
        router.add("user.account.get", Echo())


def test_include_refuses_a_type_the_router_does_not_resolve():
    with pytest.raises(ValueError, match=r"does not resolve 'nope\.nope'"):
        CompositeRouter().include(BackendRouter(None, default_codec()), ["nope.nope"])


# --- DownstreamExecutor ----------------------------------------------------------------------


async def test_routed_command_reaches_its_client_unchanged():
    echo = Echo()
    cmd = command(payload=b"\x00payload")
    result = await executor(echo).execute(cmd)
    assert result == DownstreamResult("ok", b"\x00payload")
    assert echo.seen == [cmd]


async def test_unrouted_message_type_is_unimplemented():
    error = await reject_of(executor(Echo()), command("test.other"))
    assert error.grpc_code is GrpcCode.UNIMPLEMENTED
    assert error.message == "message_type is not routed"


@pytest.mark.parametrize(
    "exc",
    [DownstreamUnavailableError("backend unreachable: ConnectError"), TimeoutError()],
    ids=["unavailable", "adapter-timeout"],
)
async def test_unavailable_downstream_is_unavailable(exc: BaseException):
    error = await reject_of(executor(Raises(exc)), command())
    assert error.grpc_code is GrpcCode.UNAVAILABLE
    assert error.message == "downstream service is unavailable"


async def test_slow_downstream_is_cut_at_the_timeout():
    slow = Sleeps(5.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    error = await reject_of(executor(slow, timeout=0.2), command())
    elapsed = loop.time() - started
    assert error.grpc_code is GrpcCode.UNAVAILABLE
    assert error.message == "downstream service is unavailable"
    assert 0.15 <= elapsed < 3.0  # cut by the timeout, long before the 5 s sleep
    assert slow.cancelled


@pytest.mark.parametrize(
    "exc",
    [
        DownstreamContractError("backend answer is not a JSON object"),
        RuntimeError("boom"),
        KeyError("x"),
    ],
    ids=["contract", "runtime-error", "key-error"],
)
async def test_contract_violations_and_surprises_are_internal(exc: BaseException):
    error = await reject_of(executor(Raises(exc)), command())
    assert error.grpc_code is GrpcCode.INTERNAL
    assert error.message == "internal error"


async def test_a_result_that_is_not_a_downstream_result_is_internal():
    error = await reject_of(executor(Returns({"result_code": "ok"})), command())
    assert error.grpc_code is GrpcCode.INTERNAL


async def test_an_empty_result_code_is_a_contract_violation():
    class Blank:
        async def execute(self, cmd: AuthenticatedCommand) -> DownstreamResult:
            return DownstreamResult("  ", b"")  # raises DownstreamContractError

    error = await reject_of(executor(Blank()), command())
    assert error.grpc_code is GrpcCode.INTERNAL


async def test_edge_error_from_an_adapter_passes_through():
    malformed = EdgeError(
        Reject.MALFORMED_REQUEST, "payload_bytes is not a valid user.AccountGetRequest"
    )
    error = await reject_of(executor(Raises(malformed)), command())
    assert error is malformed
    assert error.grpc_code is GrpcCode.INVALID_ARGUMENT


async def test_route_resolution_failure_is_internal():
    class Broken:
        def resolve(self, message_type: str) -> None:
            raise RuntimeError("router bug")

    ex = DownstreamExecutor(Broken(), timeout=timedelta(seconds=1))
    error = await reject_of(ex, command())
    assert error.grpc_code is GrpcCode.INTERNAL
    assert error.message == "internal error"


async def test_cancellation_of_the_caller_is_not_swallowed():
    slow = Sleeps(5.0)
    task = asyncio.create_task(executor(slow, timeout=10).execute(command()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slow.cancelled


async def test_backend_routes_without_a_backend_fail_closed_as_unavailable():
    """GATEWAY_BACKEND_HTTP_URL unset: the routes stay mounted and answer UNAVAILABLE."""
    router = CompositeRouter()
    router.include(BackendRouter(None, default_codec()), MESSAGE_TYPES)
    ex = DownstreamExecutor(router, timeout=timedelta(seconds=1))
    payload = default_codec().encode("user.AccountGetRequest", {})
    error = await reject_of(ex, command("user.account.get", payload))
    assert (error.grpc_code, error.message) == (
        GrpcCode.UNAVAILABLE,
        "downstream service is unavailable",
    )
    unknown = await reject_of(ex, command("user.account.gone", payload))
    assert unknown.grpc_code is GrpcCode.UNIMPLEMENTED
    garbage = await reject_of(ex, command("user.account.get", b"\x01\x02"))
    assert (garbage.grpc_code, garbage.message) == (
        GrpcCode.INVALID_ARGUMENT,
        "payload_bytes is not a valid user.AccountGetRequest",
    )


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        DownstreamExecutor(CompositeRouter(), timeout=timedelta(0))
