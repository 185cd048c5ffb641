"""MQTT packets as bytes, for the kill -9 tests where a client library would hide the
flow (it would never send PUBREL to a broker that forgot the PUBLISH, nor resend a
PUBLISH it saw PUBREC for). Written from the standards' packet layouts (3.1.1 §3,
5.0 §3), independently of the broker's codec."""

from __future__ import annotations

import socket
import struct
import time

# Packet types (the fixed header's high nibble).
CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK = 2, 3, 4, 5, 6, 7, 9


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!H", len(data)) + data


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _length(len(body)) + body


def connect(client_id: str, *, version: int = 4, clean: bool = False, expiry: int = 0) -> bytes:
    flags = 0x02 if clean else 0
    body = _text("MQTT") + bytes([version, flags]) + struct.pack("!H", 60)
    if version == 5:
        props = b"\x11" + struct.pack("!I", expiry) if expiry else b""
        body += _length(len(props)) + props
    return packet(0x10, body + _text(client_id))


def publish(
    topic: str, payload: bytes, *, qos: int, packet_id: int, version: int = 4, dup: bool = False
) -> bytes:
    body = _text(topic) + struct.pack("!H", packet_id)
    if version == 5:
        body += b"\x00"
    return packet(0x30 | (0x08 if dup else 0) | qos << 1, body + payload)


def subscribe(topic_filter: str, qos: int, *, packet_id: int = 1, version: int = 4) -> bytes:
    body = struct.pack("!H", packet_id) + (b"\x00" if version == 5 else b"")
    return packet(0x82, body + _text(topic_filter) + bytes([qos]))


def ack(kind: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC, PUBREL (flags 0010) or PUBCOMP of a packet id."""
    return packet(kind << 4 | (0x02 if kind == PUBREL else 0), struct.pack("!H", packet_id))


class RawClient:
    """A socket that reads whole MQTT packets, each as (type, flags, body)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float = 10.0) -> tuple[int, int, bytes]:
        deadline = time.monotonic() + timeout
        while True:
            found = self._split()
            if found is not None:
                return found
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the broker closed the connection")
            self.buffer += data

    def _split(self) -> tuple[int, int, bytes] | None:
        buffer = self.buffer
        length, shift, at = 0, 0, 1
        while True:
            if at >= len(buffer):
                return None
            byte = buffer[at]
            length |= (byte & 0x7F) << shift
            shift += 7
            at += 1
            if not byte & 0x80:
                break
        if len(buffer) < at + length:
            return None
        self.buffer = buffer[at + length :]
        return buffer[0] >> 4, buffer[0] & 0x0F, buffer[at : at + length]

    def expect(self, kind: int) -> bytes:
        got, _, body = self.read()
        assert got == kind, f"expected packet type {kind}, got {got}: {body!r}"
        return body

    def close(self) -> None:
        self.sock.close()


def publish_fields(body: bytes, flags: int, version: int = 4) -> tuple[str, int | None, bytes]:
    """Topic, packet id (None at QoS 0) and payload of a PUBLISH body."""
    (size,) = struct.unpack_from("!H", body)
    topic = body[2 : 2 + size].decode()
    at = 2 + size
    packet_id = None
    if flags & 0x06:
        (packet_id,) = struct.unpack_from("!H", body, at)
        at += 2
    if version == 5:
        props, shift = 0, 0
        while True:
            byte = body[at]
            at += 1
            props |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        at += props
    return topic, packet_id, body[at:]
