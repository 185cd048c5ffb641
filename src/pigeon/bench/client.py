"""A minimal AMQP 0-9-1 client connection over ``asyncio.Protocol``, one channel.

Enough for a benchmark: the handshake, synchronous setup calls, raw writes of
pre-encoded publish batches, confirm callbacks and multiple-acks of deliveries
every N messages. Heartbeats are disabled (``tune-ok`` heartbeat 0) because runs
are short and the hot loop should not carry timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit

from pigeon.bench import wire
from pigeon.bench.scanner import FrameScanner

CHANNEL = 1
MAX_FRAME = 131072
_TUNE = struct.Struct(">HIH")
_CLOSE = struct.Struct(">H")


class BrokerClosed(Exception):
    """The broker closed the connection or channel (or the socket went away)."""


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    user: str
    password: str
    vhost: str

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        parts = urlsplit(url)
        if parts.scheme != "amqp":
            raise ValueError(f"only amqp:// URLs are supported, got {url!r}")
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5672,
            user=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            vhost=vhost,
        )


class AmqpClient(asyncio.Protocol):
    """One connection with channel 1 open. Create with ``await AmqpClient.connect(url)``."""

    def __init__(self) -> None:
        self.scanner = FrameScanner(self._on_method, self._on_confirm)
        self.on_confirm: Callable[[int, bool, bool], None] = _ignore_confirm
        self.on_writable: Callable[[], None] = _nothing
        self.ack_every = 0  # >0: ack deliveries with multiple=True after this many
        self.acked = 0
        self.frame_max = MAX_FRAME
        self.can_write = True
        self.error: BaseException | None = None
        self._transport: asyncio.Transport | None = None
        self._waiters: list[tuple[tuple[int, int], asyncio.Future[bytes]]] = []
        self._lost: asyncio.Future[None] | None = None

    @classmethod
    async def connect(cls, url: BrokerUrl, timeout: float = 10.0) -> AmqpClient:
        loop = asyncio.get_running_loop()
        _, client = await asyncio.wait_for(loop.create_connection(cls, url.host, url.port), timeout)
        await asyncio.wait_for(client._handshake(url), timeout)
        return client

    async def _handshake(self, url: BrokerUrl) -> None:
        await self._request(wire.PROTOCOL_HEADER, wire.CONNECTION_START)
        tune = await self._request(wire.start_ok(url.user, url.password), wire.CONNECTION_TUNE)
        channel_max, frame_max, _ = _TUNE.unpack_from(tune)
        self.frame_max = min(frame_max or MAX_FRAME, MAX_FRAME)
        self.write(wire.tune_ok(min(channel_max or 2047, 2047), self.frame_max, 0))
        await self.call(wire.connection_open(url.vhost), wire.CONNECTION_OPEN)
        await self.call(wire.channel_open(CHANNEL), wire.CHANNEL_OPEN)

    # --- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check.
        self._transport = tcp = cast(asyncio.Transport, transport)
        self._lost = asyncio.get_running_loop().create_future()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tcp.set_write_buffer_limits(high=1 << 20)

    def data_received(self, data: bytes) -> None:
        scanner = self.scanner
        try:
            scanner.feed(data, time.monotonic_ns())
        except Exception as exc:  # malformed input: stop this connection, report it
            self._fail(exc)
            return
        if self.ack_every and scanner.delivered - self.acked >= self.ack_every:
            self.acked = scanner.delivered
            self.write(wire.basic_ack(CHANNEL, scanner.last_tag, True))

    def pause_writing(self) -> None:
        self.can_write = False

    def resume_writing(self) -> None:
        self.can_write = True
        self.on_writable()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or BrokerClosed("connection closed by the broker"))
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    # --- requests -----------------------------------------------------------

    def write(self, data: bytes | bytearray) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    async def call(self, frame: bytes, ident: tuple[int, int], timeout: float = 10.0) -> bytes:
        """Send a synchronous method and return the arguments of its ``-ok``."""
        return await asyncio.wait_for(self._request(frame, wire.REPLY_TO[ident]), timeout)

    async def _request(self, data: bytes, reply: tuple[int, int]) -> bytes:
        if self.error is not None:
            raise BrokerClosed(str(self.error))
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters.append((reply, future))
        self.write(data)
        return await future

    async def close(self, timeout: float = 5.0) -> None:
        """Close politely (connection.close, wait for close-ok), then drop the socket."""
        if self._transport is None:
            return
        if self.error is None:
            with contextlib.suppress(TimeoutError, BrokerClosed):
                closing = self.call(wire.connection_close(), wire.CONNECTION_CLOSE)
                await asyncio.wait_for(closing, timeout)
        self._transport.close()
        if self._lost is not None:
            await asyncio.wait_for(asyncio.shield(self._lost), timeout)

    # --- incoming methods ---------------------------------------------------

    def _on_method(self, channel: int, ident: tuple[int, int], args: bytes) -> None:
        if ident in (wire.CONNECTION_CLOSE, wire.CHANNEL_CLOSE):
            code = _CLOSE.unpack_from(args)[0]
            text = args[3 : 3 + args[2]].decode(errors="replace")
            if ident == wire.CONNECTION_CLOSE:
                self.write(wire.method(0, wire.CONNECTION_CLOSE_OK))
            else:
                self.write(wire.method(channel, wire.CHANNEL_CLOSE_OK))
            self._fail(BrokerClosed(f"broker closed {ident}: {code} {text}"))
            return
        for index, (reply, future) in enumerate(self._waiters):
            if reply == ident:
                del self._waiters[index]
                if not future.done():
                    future.set_result(args)
                return

    def _on_confirm(self, tag: int, multiple: bool, nack: bool) -> None:
        self.on_confirm(tag, multiple, nack)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        waiters, self._waiters = self._waiters, []
        for _, future in waiters:
            if not future.done():
                future.set_exception(BrokerClosed(str(exc)))
        self.on_writable()  # wake a publisher blocked on this connection
        if self._transport is not None and not isinstance(exc, BrokerClosed):
            self._transport.close()


def _ignore_confirm(tag: int, multiple: bool, nack: bool) -> None:
    pass


def _nothing() -> None:
    pass
