"""A trivial AMQP 0-9-1 server for measuring the load generator's own ceiling.

It answers the handshake and every setup method with its ``-ok``, swallows
publishes (counting them) and, on channels in confirm mode, acks them with
``multiple=True`` once per read. With ``flood=True`` a ``basic.consume`` makes it
push pre-encoded deliveries as fast as the socket takes them, which measures the
consuming side. It routes nothing and stores nothing.

    python -m benchmarks.sink --port 5699 [--flood-size 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import struct
import sys
import time
from collections.abc import AsyncIterator
from typing import cast

if not __package__:  # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pigeon.bench import wire

_HEAD = struct.Struct(">BHI")
_IDS = struct.Struct(">HH")
_FLOOD_BATCH = 256

# Setup methods whose reply carries no arguments (amqp0-9-1 §1.4-1.8).
_EMPTY_REPLIES = {
    wire.EXCHANGE_DECLARE: wire.EXCHANGE_DECLARE_OK,
    wire.EXCHANGE_DELETE: wire.EXCHANGE_DELETE_OK,
    wire.QUEUE_BIND: wire.QUEUE_BIND_OK,
    wire.BASIC_QOS: wire.BASIC_QOS_OK,
    wire.CONFIRM_SELECT: wire.CONFIRM_SELECT_OK,
    wire.CHANNEL_CLOSE: wire.CHANNEL_CLOSE_OK,
}


class SinkStats:
    """Counters shared by all connections of one sink."""

    def __init__(self) -> None:
        self.connections = 0
        self.published = 0
        self.delivered = 0


class SinkConnection(asyncio.Protocol):
    def __init__(self, stats: SinkStats, flood_size: int) -> None:
        self._stats = stats
        self._flood_size = flood_size
        self._buf = bytearray()
        self._header_seen = False
        self._confirming: dict[int, int] = {}  # channel -> publishes so far
        self._transport: asyncio.Transport | None = None
        self._flood: wire.MessageTemplate | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        self._stats.connections += 1

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        if not self._header_seen:
            if len(buf) < 8:
                return
            self._header_seen = True
            pos = 8
            self._write(wire.connection_start())
        out = bytearray()
        published = 0
        end_of_data = len(buf)
        while end_of_data - pos >= 8:
            kind, channel, size = _HEAD.unpack_from(buf, pos)
            end = pos + 7 + size
            if end >= end_of_data:
                break
            if kind == wire.FRAME_METHOD:
                ident = _IDS.unpack_from(buf, pos + 7)
                if ident == wire.BASIC_PUBLISH:
                    published += 1
                    if channel in self._confirming:
                        self._confirming[channel] += 1
                else:
                    out += self._reply(channel, ident, bytes(buf[pos + 11 : end]))
            pos = end + 1
        del buf[:pos]
        self._stats.published += published
        if published:
            for channel, tag in self._confirming.items():
                out += wire.basic_ack(channel, tag, True)
        if out:
            self._write(out)

    def _reply(self, channel: int, ident: tuple[int, int], args: bytes) -> bytes:
        if ident == wire.CONNECTION_START_OK:
            return wire.connection_tune(2047, 131072, 0)
        if ident == wire.CONNECTION_OPEN:
            return wire.method(0, wire.CONNECTION_OPEN_OK, wire.shortstr(""))
        if ident == wire.CHANNEL_OPEN:
            return wire.method(channel, wire.CHANNEL_OPEN_OK, wire.longstr(b""))
        if ident == wire.QUEUE_DECLARE:
            name = args[3 : 3 + args[2]].decode() or f"sink-{id(self)}"
            return wire.queue_declare_ok(channel, name)
        if ident == wire.QUEUE_DELETE:
            return wire.method(channel, wire.QUEUE_DELETE_OK, b"\x00\x00\x00\x00")
        if ident == wire.BASIC_CONSUME:
            queue_end = 3 + args[2]
            tag = args[queue_end + 1 : queue_end + 1 + args[queue_end]].decode() or "sink"
            if self._flood_size:
                self._start_flood(channel, tag)
            return wire.basic_consume_ok(channel, tag)
        if ident == wire.CONFIRM_SELECT:
            self._confirming[channel] = 0
        if ident == wire.CONNECTION_CLOSE:
            asyncio.get_running_loop().call_soon(self._close)
            return wire.method(0, wire.CONNECTION_CLOSE_OK)
        reply = _EMPTY_REPLIES.get(ident)
        return wire.method(channel, reply) if reply else b""

    def _start_flood(self, channel: int, tag: str) -> None:
        # Delivery tag 1 on every message: the sink ignores acks, and the load
        # generator only uses the tag to ack with multiple=True.
        head = wire.basic_deliver_head(channel, tag, 1, "sink")
        self._flood = wire.MessageTemplate(head, self._flood_size, False, 131072)
        asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        transport = self._transport
        if self._flood is None or self._paused or transport is None or transport.is_closing():
            return
        transport.write(self._flood.batch(0, _FLOOD_BATCH, time.monotonic_ns()))
        self._stats.delivered += _FLOOD_BATCH
        asyncio.get_running_loop().call_soon(self._pump)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        asyncio.get_running_loop().call_soon(self._pump)

    def connection_lost(self, exc: Exception | None) -> None:
        self._flood = None

    def _write(self, data: bytes | bytearray) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _close(self) -> None:
        self._flood = None
        if self._transport is not None:
            self._transport.close()


class Sink:
    """A running sink server; ``url`` is its loopback AMQP URL."""

    def __init__(self, server: asyncio.Server, stats: SinkStats) -> None:
        self.server = server
        self.stats = stats
        self.port: int = server.sockets[0].getsockname()[1]
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"


@contextlib.asynccontextmanager
async def serve(port: int = 0, flood_size: int = 0) -> AsyncIterator[Sink]:
    """Serve on 127.0.0.1:``port`` (0 picks a free one) until the block exits."""
    stats = SinkStats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkConnection(stats, flood_size), "127.0.0.1", port)
    try:
        yield Sink(server, stats)
    finally:
        server.close()
        await server.wait_closed()


async def _serve_forever(port: int, flood_size: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(port, flood_size) as sink:
        print(sink.url, flush=True)
        await stop.wait()
        print(f"published {sink.stats.published} delivered {sink.stats.delivered}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sink", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--flood-size",
        type=int,
        default=0,
        help="on basic.consume, push deliveries of this body size",
    )
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    coro = _serve_forever(args.port, args.flood_size)
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.run(coro)
            return
    asyncio.run(coro)


if __name__ == "__main__":
    main()
