"""A raw MQTT test client: exact bytes out, exact bytes back, over a real socket.

Packets are built with Pigeon's codec where that is convenient (a well-formed
CONNECT, SUBSCRIBE, PUBLISH) and written as literal bytes where the point of a
test is a malformed packet. Every read has a deadline; nothing sleeps.
"""

from __future__ import annotations

import socket
import struct
import time

from pigeon.protocols.mqtt.codec import encode
from pigeon.protocols.mqtt.packets import MQTT_5, Connect, Packet

TIMEOUT = 5.0

# The raw tests' broker (conftest.py): limits low enough for a test to reach.
MAX_PACKET = 4096
MAX_CONNECT = 1024
MAX_CLIENT_ID = 64
MAX_TOPIC = 200
MAX_LEVELS = 8
CONNECT_TIMEOUT = 1.0

# Its CONNACK to a 5.0 client: session present 0, success, then the properties (§3.2.2.3):
# Receive Maximum 65,535, Topic Alias Maximum 64, Retain Available, Maximum Packet Size
# 4096, Shared, Subscription Identifier and Wildcard Subscription Available.
CONNACK_5 = bytes.fromhex("20 16 00 00 13 21 ff ff 22 00 40 25 01 27 00 00 10 00 28 01 29 01 2a 01")
CONNACK_311 = b"\x20\x02\x00\x00"


def string(text: bytes) -> bytes:
    """A two-byte-length-prefixed string (§1.5.4)."""
    return struct.pack(">H", len(text)) + text


def packet(first: int, body: bytes) -> bytes:
    """A fixed header (type and flags, Remaining Length) and ``body``."""
    return bytes([first]) + remaining_length(len(body)) + body


def remaining_length(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def connect_bytes(version: int, client_id: str, **kw: object) -> bytes:
    return encode(Connect(version, client_id, **kw), version)  # type: ignore[arg-type]


class RawClient:
    """One TCP connection to the broker; reads whole packets by their fixed header."""

    def __init__(self, port: int, version: int = MQTT_5) -> None:
        self.version = version
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_packet(self, packet: Packet) -> None:
        self.send(encode(packet, self.version))

    def connect(self, client_id: str, **kw: object) -> bytes:
        """CONNECT; the CONNACK must say success. Returns the CONNACK's bytes."""
        self.send(connect_bytes(self.version, client_id, **kw))
        connack = self.read_packet()
        assert connack[0] == 0x20, connack
        reason_at = 3 if connack[1] < 0x80 else 4
        assert connack[reason_at] == 0x00, connack
        return connack

    def _fill(self, size: int, deadline: float) -> bool:
        while len(self._buffer) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {size} bytes, have {self._buffer!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue  # the deadline check above raises
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return False
            self._buffer += chunk
        return True

    def read_packet(self, timeout: float = TIMEOUT) -> bytes:
        """The next whole packet, fixed header included."""
        deadline = time.monotonic() + timeout
        size = 2
        while True:
            if not self._fill(size, deadline):
                raise AssertionError(f"connection closed; unread {self._buffer!r}")
            byte = self._buffer[size - 1]
            if byte < 0x80 or size == 5:
                break
            size += 1
        length, shift = 0, 0
        for byte in self._buffer[1:size]:
            length |= (byte & 0x7F) << shift
            shift += 7
        total = size + length
        if not self._fill(total, deadline):
            raise AssertionError(f"connection closed inside a packet: {self._buffer!r}")
        data, self._buffer = self._buffer[:total], self._buffer[total:]
        return data

    def expect(self, expected: bytes, timeout: float = TIMEOUT) -> None:
        got = self.read_packet(timeout)
        assert got == expected, f"expected {expected.hex(' ')}, got {got.hex(' ')}"

    def expect_closed(self, timeout: float = TIMEOUT) -> None:
        """The broker closes the connection and sends nothing (more)."""
        deadline = time.monotonic() + timeout
        if self._fill(len(self._buffer) + 1, deadline):
            raise AssertionError(f"expected the connection closed, got {self._buffer!r}")
        assert self._buffer == b"", f"unread bytes before the close: {self._buffer!r}"

    def expect_then_closed(self, expected: bytes, timeout: float = TIMEOUT) -> None:
        self.expect(expected, timeout)
        self.expect_closed(timeout)

    def ping(self) -> None:
        """A round trip: the connection is alive and everything before it was handled."""
        self.send(b"\xc0\x00")
        self.expect(b"\xd0\x00")
