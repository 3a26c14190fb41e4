"""The hot-path ReplayStore: ``SET key 1 NX PX ttl`` over one pipelined RESP connection.

Same contract as ``edgecore.replay.RedisReplayStore``, byte for byte on the
Redis side: one ``SET <key> 1 NX PX <ttl>`` per (device_session_id,
request_id), the key from ``edgecore.replay.replay_key``, the TTL clamped to
``MIN_RESERVATION``, and every failure a ``ReplayStoreUnavailableError`` (the
pipeline fails closed with UNAVAILABLE "replay store is unavailable"), each
reservation bounded by GATEWAY_REPLAY_REDIS_RESERVE_TIMEOUT.

Why not redis-py here: the benchmark (docs/edge-grpc.md) showed redis-py's
per-command machinery (pool checkout, retry wrapper, parser objects, a read
task per reply) costing more CPU than the rest of the verification pipeline
together. This store needs one command, so it speaks RESP itself: one TCP
connection, commands written as they come (naturally pipelined: many
reservations in flight, replies matched in order), replies parsed straight
from the socket buffer. Everything else (start-up PING, health, the
session-events reader) keeps using redis-py.

Failure handling, all fail-closed:

* connect, ``AUTH`` and ``SELECT`` are bounded by the operation timeout; one
  attempt is shared by every waiting caller, and after a failure new
  attempts wait ``reconnect_backoff`` (callers fail at once meanwhile);
* an error reply (``-READONLY``, ``-OOM``, ...) fails that reservation;
* a reply that is not RESP, or not one of the expected kinds, closes the
  connection and fails everything in flight on it;
* a reservation that times out first lets the loop read what the socket
  holds: when this process was not scheduled for a while (CPU starvation),
  Redis's replies are waiting there, and a reply that arrived is used, not
  failed. Only when Redis has sent nothing for a whole reserve timeout while
  commands waited does it count as stopped answering: the connection is
  aborted, everything in flight on it fails, the next reservation reconnects;
* a lost connection fails everything in flight on it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Final, cast

from edgecore.clock import wall_clock_ms
from edgecore.config.sections import RedisSettings
from edgecore.replay import (
    MIN_RESERVATION,
    ReplayStoreUnavailableError,
    Reservation,
    epoch_key,
    floor_from_reply,
    replay_key,
)

__all__ = ["RespConnection", "RespError", "RespReplayStore", "encode_command"]

_log = logging.getLogger("edge_grpc.replay")

_MIN_TTL_MS: Final = int(MIN_RESERVATION.total_seconds() * 1000)
_MAX_WRITE_BUFFER: Final = 8 << 20  # Redis is not reading: fail closed instead of buffering
_MAX_REPLY_LINE: Final = 64 << 10
_CRLF: Final = b"\r\n"
OK: Final = b"OK"


class RespError(Exception):
    """An error reply (``-ERR ...``, ``-WRONGPASS ...``); its first word is safe to log."""

    @property
    def kind(self) -> str:
        return (self.args[0] if self.args else "ERR").split(" ", 1)[0][:32]


class _ProtocolViolationError(Exception):
    pass


def encode_command(*parts: bytes) -> bytes:
    """A RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class RespConnection(asyncio.Protocol):
    """One connection; ``send`` returns a future of the reply, replies matched in order.

    Replies: ``+simple`` -> bytes, ``$bulk`` -> bytes, ``$-1`` nil -> None,
    ``:integer`` -> int, ``-error`` -> RespError (as the value, not raised).
    """

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._pending: collections.deque[tuple[asyncio.Future[object], float]] = collections.deque()
        self._buffer = bytearray()
        self._outgoing: list[bytes] = []
        self.closed = False
        self.lost_reason = ""
        self.last_reply_at = 0.0  # loop time of the last reply read (0: none yet)

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, so no isinstance).
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost_reason = self.lost_reason or (type(exc).__name__ if exc else "closed")
        self._fail_all(self.lost_reason)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        try:
            consumed = self._parse(buffer)
        except _ProtocolViolationError as exc:
            self.abort(f"protocol violation: {exc}")
            return
        if consumed:
            del buffer[:consumed]

    def eof_received(self) -> bool:
        self.lost_reason = self.lost_reason or "EOF"
        return False  # close the transport

    # -- API

    def send(self, payload: bytes) -> asyncio.Future[object]:
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            raise ReplayStoreUnavailableError(self.lost_reason or "connection closed")
        if transport.get_write_buffer_size() > _MAX_WRITE_BUFFER:
            self.abort("write buffer full")
            raise ReplayStoreUnavailableError("write buffer full")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        self._pending.append((future, loop.time()))
        # Commands issued during one loop iteration leave in one send().
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(payload)
        return future

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        transport = self._transport
        if outgoing and transport is not None and not self.closed:
            transport.write(outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))

    def silent_for(self, now: float) -> float:
        """How long Redis has sent nothing while a command waited (0 when none waits)."""
        if not self._pending:
            return 0.0
        return now - max(self._pending[0][1], self.last_reply_at)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def abort(self, reason: str) -> None:
        if not self.lost_reason:
            self.lost_reason = reason
        self.closed = True
        if self._transport is not None:
            self._transport.abort()
        self._fail_all(reason)

    # -- internals

    def _fail_all(self, reason: str) -> None:
        pending, self._pending = self._pending, collections.deque()
        for future, _ in pending:
            if not future.done():
                future.set_exception(ReplayStoreUnavailableError(reason))
                # Retrieved: a caller that timed out no longer awaits it, and the
                # reservation's own reply is never awaited (only the epoch's is).
                future.exception()

    def _resolve(self, value: object) -> None:
        if not self._pending:
            raise _ProtocolViolationError("reply without a command")
        future, _ = self._pending.popleft()
        self.last_reply_at = future.get_loop().time()
        if not future.done():  # a caller that was cancelled
            future.set_result(value)

    def _parse(self, buffer: bytearray) -> int:
        position = 0
        size = len(buffer)
        while position < size:
            end = buffer.find(_CRLF, position)
            if end < 0:
                if size - position > _MAX_REPLY_LINE:
                    raise _ProtocolViolationError("reply line too long")
                break
            kind = buffer[position]
            value: object
            if kind == 0x2B:  # +simple
                value = bytes(buffer[position + 1 : end])
                position = end + 2
            elif kind == 0x24:  # $bulk
                length = _int(buffer, position + 1, end)
                if length < 0:
                    value = None
                    position = end + 2
                else:
                    stop = end + 2 + length
                    if stop + 2 > size:
                        break
                    if buffer[stop : stop + 2] != _CRLF:
                        raise _ProtocolViolationError("bulk string not terminated")
                    value = bytes(buffer[end + 2 : stop])
                    position = stop + 2
            elif kind == 0x2D:  # -error
                value = RespError(buffer[position + 1 : end].decode("utf-8", "replace"))
                position = end + 2
            elif kind == 0x3A:  # :integer
                value = _int(buffer, position + 1, end)
                position = end + 2
            else:
                raise _ProtocolViolationError(f"unexpected reply type {chr(kind)!r}")
            self._resolve(value)
        return position


def _int(buffer: bytearray, start: int, end: int) -> int:
    try:
        return int(buffer[start:end])
    except ValueError:
        raise _ProtocolViolationError("malformed length or integer") from None


class RespReplayStore:
    """``edgecore.pipeline.ReplayStore`` over ``RespConnection`` (see the module docstring)."""

    def __init__(
        self,
        redis: RedisSettings,
        *,
        key_prefix: str,
        reserve_timeout: timedelta,
        reconnect_backoff: timedelta = timedelta(milliseconds=100),
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._clock_ms = clock_ms
        self._epoch_key = epoch_key(key_prefix).encode()
        self._host = redis.master_addr.host or "127.0.0.1"
        self._port = redis.master_addr.port
        self._password = redis.password.encode()
        self._db = redis.db
        self._connect_timeout = redis.operation_timeout.total_seconds()
        self._prefix = key_prefix
        self._timeout = reserve_timeout.total_seconds()
        self._backoff = reconnect_backoff.total_seconds()
        self._connection: RespConnection | None = None
        self._connecting: asyncio.Future[RespConnection] | None = None
        self._retry_after = 0.0
        self._closed = False
        self.connects = 0  # successful connections made (tests read it)

    async def reserve(self, device_session_id: str, request_id: str, ttl: timedelta) -> Reservation:
        """Reserve the pair for ``ttl``; the reservation's outcome and the replay floor."""
        ttl_ms = max(int(ttl.total_seconds() * 1000), _MIN_TTL_MS)
        key = replay_key(self._prefix, device_session_id, request_id).encode()
        now_ms = self._clock_ms()
        command = encode_command(b"SET", key, b"1", b"NX", b"PX", b"%d" % ttl_ms)
        epoch = encode_command(b"SET", self._epoch_key, b"%d" % now_ms, b"NX", b"GET")
        connection = self._connection
        epoch_future: asyncio.Future[object] | None = None
        try:
            async with asyncio.timeout(self._timeout):
                if connection is None or connection.closed:
                    connection = await self._connect()
                # Both leave in the same write; the replies come back in order, so the
                # epoch's reply being in means the reservation's is too. shield: a
                # timeout must not cancel a reply that may be waiting in the socket.
                reply_future = connection.send(command)
                epoch_future = connection.send(epoch)
                await asyncio.shield(epoch_future)
        except TimeoutError:
            if connection is None or epoch_future is None:
                raise ReplayStoreUnavailableError("TimeoutError") from None
            if not await self._arrived_late(connection, epoch_future):
                raise ReplayStoreUnavailableError("TimeoutError") from None
        except OSError as exc:
            raise ReplayStoreUnavailableError(type(exc).__name__) from None
        reply, epoch_reply = reply_future.result(), epoch_future.result()
        for answer in (reply, epoch_reply):
            if isinstance(answer, RespError):
                raise ReplayStoreUnavailableError(f"error reply {answer.kind}")
        if reply != OK and reply is not None:
            raise ReplayStoreUnavailableError("unexpected reply to SET")
        return Reservation(reply == OK, floor_from_reply(epoch_reply, now_ms))

    async def _arrived_late(self, connection: RespConnection, last: asyncio.Future[object]) -> bool:
        """After a timeout: whether the reply came after all (the loop was stalled).

        Otherwise, and if Redis has been silent for a whole timeout while commands
        waited, the connection is given up on.
        """
        if not last.done():
            await asyncio.sleep(0)  # one loop turn: read whatever the socket holds
        if last.done():
            return last.exception() is None  # an exception: the connection failed
        if not connection.closed:
            now = asyncio.get_running_loop().time()
            if connection.silent_for(now) >= self._timeout:
                _log.warning(
                    "replay store connection stopped answering; reconnecting",
                    extra={"in_flight": connection.in_flight},
                )
                connection.abort("TimeoutError")
        return False

    async def _connect(self) -> RespConnection:
        if self._closed:
            raise ReplayStoreUnavailableError("replay store is closed")
        loop = asyncio.get_running_loop()
        if self._connecting is None:
            if loop.time() < self._retry_after:
                raise ReplayStoreUnavailableError("reconnect backoff")
            self._connecting = loop.create_task(self._open())
            self._connecting.add_done_callback(self._connected)
        # shield: a caller timing out must not cancel the attempt the others wait on.
        return await asyncio.shield(self._connecting)

    def _connected(self, attempt: asyncio.Future[RespConnection]) -> None:
        self._connecting = None
        if attempt.cancelled():
            return
        error = attempt.exception()
        if error is not None:
            self._retry_after = asyncio.get_running_loop().time() + self._backoff
            return
        self._connection = attempt.result()
        self.connects += 1

    async def _open(self) -> RespConnection:
        loop = asyncio.get_running_loop()
        connection: RespConnection | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(RespConnection, self._host, self._port)
                handshake = [connection.send(encode_command(b"AUTH", self._password))]
                if self._db:
                    handshake.append(connection.send(encode_command(b"SELECT", b"%d" % self._db)))
                replies = await asyncio.gather(*handshake)
        except (TimeoutError, OSError, ReplayStoreUnavailableError) as exc:
            if connection is not None:
                connection.abort("handshake failed")
            _log.warning("replay store connection failed", extra={"error": type(exc).__name__})
            raise ReplayStoreUnavailableError(f"connect {type(exc).__name__}") from None
        for reply in replies:
            if reply != OK:
                kind = reply.kind if isinstance(reply, RespError) else "unexpected reply"
                connection.abort(f"handshake {kind}")
                _log.warning("replay store handshake refused", extra={"error": kind})
                raise ReplayStoreUnavailableError(f"handshake {kind}")
        return connection

    async def aclose(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        if self._connection is not None:
            self._connection.abort("replay store is closed")
            self._connection = None
