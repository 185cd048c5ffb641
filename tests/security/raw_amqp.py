"""A raw-socket AMQP 0-9-1 client for hostile-input tests.

Frames are built and parsed with pamqp, an implementation independent of
Pigeon's codec, so the tests do not grade Pigeon with its own parser.
Hostile bytes are written by hand.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
import uuid
from typing import Any

import pika
from pamqp import commands, frame, header

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def raw_frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


def method_payload(class_id: int, method_id: int, arguments: bytes = b"") -> bytes:
    return struct.pack(">HH", class_id, method_id) + arguments


def content_header(body_size: int, class_id: int = 60) -> bytes:
    """A content header payload with no properties."""
    return struct.pack(">HHQH", class_id, 0, body_size, 0)


def plain(user: str, password: str) -> str:
    return f"\0{user}\0{password}"


class Closed(Exception):
    """The broker closed the socket."""


class RawClient:
    def __init__(
        self, port: int, *, timeout: float = 5.0, sock: socket.socket | None = None
    ) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_method(self, method: Any, channel: int = 0) -> None:
        self.send(frame.marshal(method, channel))

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        self.buffer += data

    def read_frame(self) -> tuple[int, Any]:
        """The next frame as (channel, pamqp frame object)."""
        while True:
            if self.buffer:
                try:
                    used, channel, value = frame.unmarshal(self.buffer)
                except Exception:  # incomplete: read more
                    value = None
                if value is not None:
                    self.buffer = self.buffer[used:]
                    return channel, value
            self._fill()

    def read_raw(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def expect(self, kind: type, channel: int | None = None) -> Any:
        """Read frames until one of ``kind`` arrives (heartbeats and others skipped)."""
        while True:
            number, value = self.read_frame()
            if isinstance(value, kind) and (channel is None or number == channel):
                return value

    def expect_connection_close(self) -> commands.Connection.Close:
        close = self.expect(commands.Connection.Close)
        with contextlib.suppress(OSError):
            self.send_method(commands.Connection.CloseOk())
        return close

    def expect_eof(self, timeout: float = 5.0) -> None:
        """The broker drops the socket within ``timeout`` (frames before that are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return
            if not data:
                return
        raise AssertionError(f"the broker kept the socket open for {timeout} s")

    # -- the handshake ------------------------------------------------------------------

    def start(self) -> commands.Connection.Start:
        self.send(PROTOCOL_HEADER)
        return self.expect(commands.Connection.Start)

    def login(
        self,
        user: str = "guest",
        password: str = "guest",
        *,
        client_properties: dict[str, Any] | None = None,
    ) -> commands.Connection.Tune:
        self.start()
        self.send_method(
            commands.Connection.StartOk(
                client_properties=client_properties or {"product": "raw"},
                mechanism="PLAIN",
                response=plain(user, password),
            )
        )
        return self.expect(commands.Connection.Tune)

    def handshake(
        self,
        user: str = "guest",
        password: str = "guest",
        vhost: str = "/",
        *,
        frame_max: int = 131072,
        channel_max: int = 2047,
        heartbeat: int = 0,
    ) -> commands.Connection.Tune:
        tune = self.login(user, password)
        self.send_method(
            commands.Connection.TuneOk(
                channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat
            )
        )
        self.send_method(commands.Connection.Open(virtual_host=vhost))
        self.expect(commands.Connection.OpenOk)
        return tune

    def open_channel(self, number: int = 1) -> None:
        self.send_method(commands.Channel.Open(), number)
        self.expect(commands.Channel.OpenOk, number)

    def publish(self, channel: int, exchange: str, routing_key: str, body: bytes) -> None:
        self.send_method(
            commands.Basic.Publish(exchange=exchange, routing_key=routing_key), channel
        )
        self.send(frame.marshal(header.ContentHeader(0, len(body)), channel))
        self.send(raw_frame(3, channel, body))


def assert_serving(port: int) -> None:
    """Another client connects, declares, publishes and gets its message back."""
    params = pika.ConnectionParameters(
        "127.0.0.1", port, socket_timeout=5, blocked_connection_timeout=5
    )
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        queue = f"alive-{uuid.uuid4().hex[:10]}"
        channel.queue_declare(queue, auto_delete=False)
        channel.basic_publish("", queue, b"still here")
        method, _, body = channel.basic_get(queue, auto_ack=True)
        assert method is not None and body == b"still here"
        channel.queue_delete(queue)
    finally:
        connection.close()
