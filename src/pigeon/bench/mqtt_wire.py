"""The MQTT packets a benchmark client sends, encoded once, and a reader of what it gets.

Only what a load generator needs: CONNECT (3.1.1 and 5.0), SUBSCRIBE, PUBLISH
QoS 0/1, PUBACK, PINGREQ and DISCONNECT out; CONNACK, SUBACK, PUBLISH, PUBACK,
PINGRESP and DISCONNECT in. Like ``pigeon.bench.wire`` it imports nothing of the
broker, so it measures Pigeon and Mosquitto the same way. Section numbers are
those of MQTT 3.1.1 (OASIS, 2014) and 5.0 (OASIS, 2019).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable

from pigeon.bench.wire import PREFIX, PREFIX_SIZE

V311 = 4  # protocol level byte [MQTT-3.1.2-2]
V5 = 5

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

PINGREQ_PACKET = b"\xc0\x00"  # §3.12
DISCONNECT_PACKET = b"\xe0\x00"  # §3.14; in 5.0 no reason code means 0x00 [§3.14.2.1]
_U16 = struct.Struct(">H")


class MqttError(Exception):
    """The broker sent bytes this client does not expect, or refused it."""


def varint(value: int) -> bytes:
    """The Remaining Length / Variable Byte Integer encoding (§2.2.3, 5.0 §1.5.5)."""
    if not 0 <= value <= 268_435_455:
        raise ValueError(f"remaining length out of range: {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def utf8(text: str) -> bytes:
    """A length-prefixed UTF-8 string (§1.5.3)."""
    raw = text.encode()
    return _U16.pack(len(raw)) + raw


def packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + varint(len(body)) + body


def connect(
    client_id: str,
    *,
    version: int = V311,
    keepalive: int = 60,
    clean: bool = True,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    """CONNECT (§3.1): no will; in 5.0 no properties (Receive Maximum stays 65,535)."""
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    head = utf8("MQTT") + bytes([version, flags]) + _U16.pack(keepalive)
    if version == V5:
        head += b"\x00"  # property length (5.0 §3.1.2.11)
    body = head + utf8(client_id)
    if username is not None:
        body += utf8(username)
    if password is not None:
        raw = password.encode()
        body += _U16.pack(len(raw)) + raw
    return packet(CONNECT << 4, body)


def subscribe(packet_id: int, topic_filter: str, qos: int, version: int = V311) -> bytes:
    """SUBSCRIBE (§3.8): the fixed header's flags must be 0010 [MQTT-3.8.1-1]."""
    props = b"\x00" if version == V5 else b""
    return packet(0x82, _U16.pack(packet_id) + props + utf8(topic_filter) + bytes([qos]))


def publish_head(topic: str, qos: int, size: int, version: int = V311) -> bytes:
    """A PUBLISH (§3.3) up to its payload; with QoS 1 it ends with a packet id of 0
    that ``PublishTemplate`` patches."""
    variable = utf8(topic) + (b"\x00\x00" if qos else b"") + (b"\x00" if version == V5 else b"")
    return bytes([(PUBLISH << 4) | (qos << 1)]) + varint(len(variable) + size) + variable


def puback(packet_id: int) -> bytes:
    """PUBACK (§3.4); in 5.0 a remaining length of 2 means reason code 0x00 (5.0 §3.4.2.1)."""
    return b"\x40\x02" + _U16.pack(packet_id)


def packet_id_of(seq: int) -> int:
    """The packet id of the ``seq``-th QoS 1 publish (from 1): 1..65535, never 0
    [MQTT-2.3.1-1]."""
    return (seq - 1) % 65535 + 1


class PublishTemplate:
    """One PUBLISH encoded once; ``batch`` repeats it and patches the payload prefix
    (sequence number, send time) and, for QoS 1, the packet id of each copy."""

    def __init__(self, topic: str, qos: int, size: int, version: int = V311) -> None:
        if size < PREFIX_SIZE:
            raise ValueError(f"message size must be at least {PREFIX_SIZE} bytes")
        head = publish_head(topic, qos, size, version)
        self.message = head + bytes(size)
        self.prefix_offset = len(head)
        self.id_offset = len(head) - (3 if version == V5 else 2) if qos else -1
        self._unit = bytearray(self.message)

    def batch(self, first_seq: int, count: int, timestamp_ns: int) -> bytearray:
        out = self._unit * count
        step = len(self.message)
        pack_into, offset, id_offset = PREFIX.pack_into, self.prefix_offset, self.id_offset
        for seq in range(first_seq, first_seq + count):
            pack_into(out, offset, seq, timestamp_ns)
            if id_offset >= 0:
                _U16.pack_into(out, id_offset, (seq - 1) % 65535 + 1)
                id_offset += step
            offset += step
        return out


Handler = Callable[[int, int, memoryview], None]  # (packet type, flags, body)


class PacketReader:
    """Feed it bytes; it counts PUBLISH deliveries (timing those sent in the recording
    window) and hands every other packet to ``on_packet``. ``acks`` collects the
    PUBACKs owed for QoS 1 deliveries, for the caller to write once per read."""

    def __init__(self, on_packet: Handler, version: int = V311) -> None:
        self._buf = bytearray()
        self._on_packet = on_packet
        self._v5 = version == V5
        self.delivered = 0
        self.latencies: array[int] = array("q")
        self.record_from_ns = 0
        self.record_until_ns = 1 << 62
        self.acks = bytearray()

    def feed(self, data: bytes, now_ns: int) -> None:
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        view = memoryview(buf)
        try:
            while end - pos >= 2:
                length, at = _remaining_length(buf, pos + 1, end)
                if at < 0 or at + length > end:
                    break
                first = buf[pos]
                if first >> 4 == PUBLISH:
                    self._publish(view, first, at, length, now_ns)
                else:
                    self._on_packet(first >> 4, first & 0x0F, view[at : at + length])
                pos = at + length
        finally:
            view.release()
        del buf[:pos]

    def _publish(self, view: memoryview, first: int, at: int, length: int, now_ns: int) -> None:
        qos = (first >> 1) & 3
        topic_len = _U16.unpack_from(view, at)[0]
        pos = at + 2 + topic_len
        if qos:
            self.acks += b"\x40\x02" + bytes(view[pos : pos + 2])
            pos += 2
        if self._v5:
            props, pos = _remaining_length(view, pos, at + length)
            pos += props
        self.delivered += 1
        if at + length - pos >= PREFIX_SIZE:
            sent = PREFIX.unpack_from(view, pos)[1]
            if self.record_from_ns <= sent < self.record_until_ns:
                self.latencies.append(now_ns - sent)


def _remaining_length(buf: bytearray | memoryview, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it), or (0, -1) when the bytes are not all here yet."""
    value, shift = 0, 0
    for i in range(pos, min(end, pos + 4)):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    if end - pos >= 4:
        raise MqttError("malformed remaining length (more than 4 bytes)")
    return 0, -1
