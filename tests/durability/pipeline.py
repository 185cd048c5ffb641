"""A client that sends thousands of methods back to back, without waiting for replies.

pika's blocking client waits for each reply before the next request; a client
that pipelines (many at once, as the attack run did) is what makes a broker
answer thousands of declares in one loop turn. Frames are encoded and decoded
with pamqp; a thread sends while the caller reads the replies, so neither side
can stall the other on a full socket buffer.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TypeVar

import pamqp.frame
import pamqp.header
import pamqp.heartbeat
from pamqp import commands
from pamqp.frame import FrameTypes as Frame

CHANNEL = 1
F = TypeVar("F")


class Pipeline:
    """One connection to the broker on ``port`` with channel 1 open, as guest."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buffer = b""
        self.sock.sendall(pamqp.frame.marshal(pamqp.header.ProtocolHeader(), 0))
        self.expect(commands.Connection.Start)
        self.send_now(0, commands.Connection.StartOk({}, "PLAIN", "\0guest\0guest", "en_US"))
        tune = self.expect(commands.Connection.Tune)
        self.send_now(0, commands.Connection.TuneOk(tune.channel_max, tune.frame_max, 0))
        self.send_now(0, commands.Connection.Open("/"))
        self.expect(commands.Connection.OpenOk)
        self.send_now(CHANNEL, commands.Channel.Open())
        self.expect(commands.Channel.OpenOk)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send_now(self, channel: int, frame: Frame) -> None:
        self.sock.sendall(pamqp.frame.marshal(frame, channel))

    def send_all(self, frames: Sequence[Frame]) -> threading.Thread:
        """Send ``frames`` on channel 1 from a thread; read the replies meanwhile."""
        data = b"".join(pamqp.frame.marshal(frame, CHANNEL) for frame in frames)
        sender = threading.Thread(target=self.sock.sendall, args=(data,), daemon=True)
        sender.start()
        return sender

    def frames(self) -> Iterator[Frame]:
        """Frames from the broker, heartbeats left out, until the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            self._fill(7, deadline)
            size = struct.unpack(">I", self.buffer[3:7])[0] + 8
            self._fill(size, deadline)
            raw, self.buffer = self.buffer[:size], self.buffer[size:]
            _, _, frame = pamqp.frame.unmarshal(raw)
            if not isinstance(frame, pamqp.heartbeat.Heartbeat):
                yield frame

    def expect(self, kind: type[F]) -> F:
        frame = next(self.frames())
        assert isinstance(frame, kind), f"expected {kind.__name__}, got {frame!r}"
        return frame

    def replies(self, count: int, kind: type[F]) -> F:
        """Read until the ``count``-th frame of ``kind`` and return it; anything that
        is not a reply the caller expects (a channel.close) fails the test."""
        seen = 0
        for frame in self.frames():
            assert not isinstance(frame, commands.Channel.Close | commands.Connection.Close), (
                f"the broker refused: {frame!r}"
            )
            if isinstance(frame, kind):
                seen += 1
                if seen == count:
                    return frame
        raise AssertionError("unreachable")

    def _fill(self, size: int, deadline: float) -> None:
        while len(self.buffer) < size:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError("the broker closed the socket")
            self.buffer += data
