"""Small helpers shared by the client-level (integration) tests.

Keep this module small and stable: other test files import from it.
Everything here talks to a broker only through real clients or sockets.
"""

from __future__ import annotations

import os
import socket
import struct
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pamqp.encode
import pamqp.frame
import pamqp.header
import pamqp.heartbeat
import pika
from pamqp import commands
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker
from pika.spec import Basic, BasicProperties

T = TypeVar("T")

#: True when the tests run against another broker (for example RabbitMQ)
EXTERNAL = bool(os.environ.get("PIGEON_TEST_AMQP_URL"))

Message = tuple[Basic.GetOk, BasicProperties, bytes]


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises ``AssertionError`` when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        if interval:
            time.sleep(interval)


def process_until(
    connection: pika.BlockingConnection, predicate: Callable[[], T], timeout: float = 5.0
) -> T:
    """Run pika's event loop (consumer callbacks) until ``predicate`` is truthy."""
    return wait_until(
        lambda: predicate() or connection.process_data_events(time_limit=0.02) or predicate(),
        timeout,
        interval=0,
    )


def process_for(connection: pika.BlockingConnection, seconds: float) -> None:
    """Run pika's event loop for ``seconds``: to show something does *not* happen."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        connection.process_data_events(time_limit=min(left, 0.05))


def get_one(
    channel: BlockingChannel, queue: str, timeout: float = 5.0, auto_ack: bool = True
) -> Message:
    """``basic.get`` from ``queue`` until a message arrives (or fail after ``timeout``)."""

    def attempt() -> Message | None:
        method, properties, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is None:
            return None
        return method, properties, body

    message = wait_until(attempt, timeout)
    assert message is not None
    return message


def drain(
    channel: BlockingChannel, queue: str, n: int, timeout: float = 5.0, auto_ack: bool = True
) -> list[bytes]:
    """Fetch exactly ``n`` message bodies from ``queue`` with ``basic.get``, in order."""
    deadline = time.monotonic() + timeout
    return [
        get_one(channel, queue, max(deadline - time.monotonic(), 0.0), auto_ack)[2]
        for _ in range(n)
    ]


def drain_all(channel: BlockingChannel, queue: str, timeout: float = 5.0) -> list[bytes]:
    """Every body in ``queue``, including those still on their way from this channel.

    Publishes a marker to ``queue`` through the default exchange and fetches up
    to it: a broker keeps one channel's messages to one queue in order, so
    everything this channel routed there before comes first. Message counts in
    ``queue.declare-ok`` cannot be used for this: RabbitMQ may report them late.
    """
    marker = f"end-marker-{uuid.uuid4().hex}".encode()
    channel.basic_publish("", queue, marker)
    result: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        body = get_one(channel, queue, max(deadline - time.monotonic(), 0.0))[2]
        if body == marker:
            return result
        result.append(body)


def url_with(
    amqp_url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    vhost: str | None = None,
) -> str:
    """``amqp_url`` with the user, password or vhost replaced."""
    parts = urllib.parse.urlsplit(amqp_url)
    user = urllib.parse.unquote(parts.username or "guest") if username is None else username
    pwd = urllib.parse.unquote(parts.password or "guest") if password is None else password
    path = parts.path if vhost is None else "/" + urllib.parse.quote(vhost, safe="")
    netloc = (
        f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(pwd, safe='')}"
        f"@{parts.hostname}:{parts.port or 5672}"
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, parts.query, ""))


def host_port(amqp_url: str) -> tuple[str, int]:
    """The broker's (host, port), for raw-socket tests."""
    parts = urllib.parse.urlsplit(amqp_url)
    return parts.hostname or "127.0.0.1", parts.port or 5672


def credentials(amqp_url: str) -> tuple[str, str]:
    """The (username, password) of ``amqp_url`` (guest/guest when absent)."""
    parts = urllib.parse.urlsplit(amqp_url)
    return (
        urllib.parse.unquote(parts.username or "guest"),
        urllib.parse.unquote(parts.password or "guest"),
    )


def parameters(amqp_url: str, **params: Any) -> pika.URLParameters:
    """``pika.URLParameters`` for ``amqp_url`` with attributes overridden by ``params``.

    Example: ``parameters(url, heartbeat=1, channel_max=16)``.
    """
    result = pika.URLParameters(amqp_url)
    # Short timeouts: a broken broker should fail a test, not hang it.
    result.socket_timeout = 5
    result.blocked_connection_timeout = 10
    for name, value in params.items():
        setattr(result, name, value)
    return result


@contextmanager
def connect(amqp_url: str, **params: Any) -> Iterator[pika.BlockingConnection]:
    """A pika ``BlockingConnection``, closed on exit if still open."""
    connection = pika.BlockingConnection(parameters(amqp_url, **params))
    try:
        yield connection
    finally:
        if connection.is_open:
            connection.close()


def await_channel_close(
    channel: BlockingChannel, action: Callable[[], object]
) -> ChannelClosedByBroker:
    """Run ``action`` on ``channel`` and return the broker's channel close it caused.

    Works for synchronous methods (pika raises at once) and for asynchronous ones
    such as ``basic_publish`` or ``basic_ack``: a broker handles one channel's
    methods in order, so the close comes before the answer to the passive
    declare we send after ``action``.
    """
    try:
        action()
        channel.exchange_declare("amq.direct", passive=True)
    except ChannelClosedByBroker as error:
        return error
    raise AssertionError("the broker did not close the channel")


class RawClient:
    """An AMQP 0-9-1 client over a plain socket, for what pika cannot express.

    Frames are encoded and decoded with pamqp; ``read_frame`` also returns each
    frame's size on the wire so tests can check ``frame_max``.
    """

    def __init__(self, amqp_url: str, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(host_port(amqp_url), timeout=timeout)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, channel: int, value: pamqp.frame.FrameTypes) -> None:
        self.sock.sendall(pamqp.frame.marshal(value, channel))

    def _fill(self, size: int, deadline: float) -> None:
        while len(self.buffer) < size:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the broker closed the socket")
            self.buffer += data

    def read_frame(self, timeout: float = 5.0) -> tuple[int, int, pamqp.frame.FrameTypes]:
        """The next frame as (size on the wire, channel, frame)."""
        deadline = time.monotonic() + timeout
        self._fill(7, deadline)
        size = struct.unpack(">I", self.buffer[3:7])[0] + 8
        self._fill(size, deadline)
        raw, self.buffer = self.buffer[:size], self.buffer[size:]
        _, channel, frame = pamqp.frame.unmarshal(raw)
        return size, channel, frame

    def expect(self, *classes: type[Any], timeout: float = 5.0) -> Any:
        """The next frame other than a heartbeat; it must be one of ``classes``."""
        while True:
            _, _, frame = self.read_frame(timeout)
            if not isinstance(frame, pamqp.heartbeat.Heartbeat):
                assert isinstance(frame, classes), f"expected {classes}, got {frame!r}"
                return frame

    def is_closed_by_peer(self, timeout: float = 5.0) -> bool:
        """Read (and drop) frames until the broker closes the socket or ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(len(self.buffer) + 1, deadline)
                self.buffer = b""
        except (EOFError, ConnectionResetError):
            return True
        except TimeoutError:
            return False

    def login(self, username: str, password: str, mechanism: str = "PLAIN") -> Any:
        """Protocol header, then start-ok; returns the broker's answer (tune or close).

        The broker's ``connection.start`` is kept in ``self.start``.
        """
        self.sock.sendall(pamqp.frame.marshal(pamqp.header.ProtocolHeader(), 0))
        self.start = self.expect(commands.Connection.Start)
        if mechanism == "AMQPLAIN":
            # AMQPLAIN's response is a field table without its length prefix.
            table = pamqp.encode.field_table({"LOGIN": username, "PASSWORD": password})
            response = table[4:].decode("latin-1")
        else:
            response = f"\0{username}\0{password}"
        # Without this capability RabbitMQ drops a failed login without a close.
        properties: dict[str, Any] = {
            "product": "raw",
            "capabilities": {"authentication_failure_close": True},
        }
        self.send(0, commands.Connection.StartOk(properties, mechanism, response, "en_US"))
        return self.expect(commands.Connection.Tune, commands.Connection.Close)

    def handshake(
        self,
        username: str,
        password: str,
        *,
        mechanism: str = "PLAIN",
        vhost: str = "/",
        heartbeat: int = 0,
        frame_max: int = 0,
        channel_max: int = 0,
    ) -> commands.Connection.Tune:
        """Log in, send tune-ok and ``connection.open``; returns the broker's tune.

        The caller reads the answer to ``connection.open`` (open-ok or close).
        Zero for ``frame_max``/``channel_max`` means "accept the broker's proposal".
        """
        tune = self.login(username, password, mechanism)
        assert isinstance(tune, commands.Connection.Tune), f"login refused: {tune!r}"
        self.send(
            0,
            commands.Connection.TuneOk(
                channel_max or tune.channel_max, frame_max or tune.frame_max, heartbeat
            ),
        )
        self.send(0, commands.Connection.Open(vhost))
        return tune
