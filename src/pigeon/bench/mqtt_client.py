"""A minimal MQTT client connection over ``asyncio.Protocol`` for the load generator.

CONNECT and SUBSCRIBE wait for their answers; publishes are raw writes of
pre-encoded batches (``PublishTemplate``), PUBACKs for QoS 1 deliveries go out
once per read, PUBACKs for its own QoS 1 publishes are counted. It sends
PINGREQ every half keep-alive so that long runs and idle connections stay up.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit

from pigeon.bench import mqtt_wire as mw

_CONNACK_3 = {
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


class MqttRefused(mw.MqttError):
    """CONNACK or SUBACK said no."""


@dataclass(frozen=True)
class MqttUrl:
    host: str
    port: int
    user: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        parts = urlsplit(url)
        if parts.scheme != "mqtt":
            raise ValueError(f"only mqtt:// URLs are supported with --protocol mqtt, got {url!r}")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 1883,
            user=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )


def _nothing() -> None:
    pass


class MqttClient(asyncio.Protocol):
    """One MQTT connection. Create with ``await MqttClient.connect(url, client_id)``."""

    def __init__(self, version: int = mw.V311, keepalive: int = 60) -> None:
        self.version = version
        self.keepalive = keepalive
        self.reader = mw.PacketReader(self._on_packet, version)
        self.acked = 0  # PUBACKs received for our QoS 1 publishes
        self.on_puback: Callable[[], None] = _nothing
        self.on_writable: Callable[[], None] = _nothing
        self.can_write = True
        self.error: BaseException | None = None
        self._transport: asyncio.Transport | None = None
        self._waiter: tuple[int, asyncio.Future[bytes]] | None = None
        self._ping: asyncio.TimerHandle | None = None
        self._closed = False  # closed by us: losing the connection is no error

    @classmethod
    async def connect(
        cls,
        url: MqttUrl,
        client_id: str,
        *,
        version: int = mw.V311,
        keepalive: int = 60,
        timeout: float = 10.0,
    ) -> MqttClient:
        """Connect and wait for a CONNACK that accepts; ``TimeoutError`` when none comes."""
        loop = asyncio.get_running_loop()
        _, client = await asyncio.wait_for(
            loop.create_connection(lambda: cls(version, keepalive), url.host, url.port), timeout
        )
        packet = mw.connect(
            client_id, version=version, keepalive=keepalive, username=url.user,
            password=url.password,
        )  # fmt: skip
        try:
            answer = await asyncio.wait_for(client._call(packet, mw.CONNACK), timeout)
        except BaseException:
            client.abort()
            raise
        code = answer[1] if len(answer) > 1 else 255
        if code != 0:
            client.abort()
            reason = _CONNACK_3.get(code, "") if version == mw.V311 else ""
            raise MqttRefused(f"CONNACK refused: code 0x{code:02x} {reason}".rstrip())
        client._schedule_ping()
        return client

    async def subscribe(self, topic_filter: str, qos: int, timeout: float = 10.0) -> None:
        packet = mw.subscribe(1, topic_filter, qos, self.version)
        answer = await asyncio.wait_for(self._call(packet, mw.SUBACK), timeout)
        code = answer[-1] if answer else 0x80
        if code >= 0x80:  # 3.1.1 §3.9.3: 0x80 is failure; 5.0: reason codes >= 0x80
            raise MqttRefused(f"SUBACK refused {topic_filter!r}: code 0x{code:02x}")

    def write(self, data: bytes | bytearray) -> None:
        if self._transport is not None and self.error is None:
            self._transport.write(data)

    def close(self) -> None:
        """DISCONNECT (normal), then close the socket."""
        self._closed = True
        if self._ping is not None:
            self._ping.cancel()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(mw.DISCONNECT_PACKET)
            self._transport.close()

    def abort(self) -> None:
        self._closed = True
        if self._ping is not None:
            self._ping.cancel()
        if self._transport is not None:
            self._transport.abort()

    async def _call(self, packet: bytes, answer_type: int) -> bytes:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiter = (answer_type, future)
        self.write(packet)
        return await future

    def _schedule_ping(self) -> None:
        if self.keepalive > 0 and self.error is None:
            loop = asyncio.get_running_loop()
            self._ping = loop.call_later(self.keepalive / 2, self._send_ping)

    def _send_ping(self) -> None:
        self.write(mw.PINGREQ_PACKET)
        self._schedule_ping()

    # --- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        try:
            reader.feed(data, time.monotonic_ns())
        except mw.MqttError as exc:
            self._fail(exc)
            return
        if reader.acks:
            self.write(reader.acks)
            reader.acks = bytearray()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ping is not None:
            self._ping.cancel()
        if self._closed:
            return
        self._fail(exc or ConnectionResetError("the broker closed the connection"))

    def pause_writing(self) -> None:
        self.can_write = False

    def resume_writing(self) -> None:
        self.can_write = True
        self.on_writable()

    def _on_packet(self, kind: int, flags: int, body: memoryview) -> None:
        if kind == mw.PUBACK:
            self.acked += 1
            self.on_puback()
        elif self._waiter is not None and kind == self._waiter[0]:
            future = self._waiter[1]
            self._waiter = None
            if not future.done():
                future.set_result(bytes(body))
        elif kind == mw.DISCONNECT:
            code = body[0] if len(body) else 0
            self._fail(MqttRefused(f"the broker sent DISCONNECT (reason 0x{code:02x})"))
        elif kind != mw.PINGRESP:
            self._fail(mw.MqttError(f"unexpected packet type {kind}"))

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        if self._waiter is not None and not self._waiter[1].done():
            self._waiter[1].set_exception(exc)
        self._waiter = None
        self.on_writable()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()
