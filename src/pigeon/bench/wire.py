"""AMQP 0-9-1 frames as bytes, built by hand for the load generator and the sink.

Only what a benchmark needs: the handshake and setup methods a client sends, the
replies a trivial server sends, and the publish message pre-encoded once per
message size so the hot loop only patches the 16-byte payload prefix
(sequence number, send timestamp in ns). Nothing here imports ``pigeon``: the
harness must measure any broker the same way.

Frame layout (amqp0-9-1 §2.3.5 / §4.2.3): type octet, channel short, size long,
payload, frame-end 0xCE. Method payload: class short, method short, arguments
(§4.2.4); content header: class, weight 0, body size longlong, property flags
(§4.2.6).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_HEAD = struct.Struct(">BHI")
METHOD_ID = struct.Struct(">HH")
# The 16-byte payload prefix every benchmark message starts with.
PREFIX = struct.Struct(">QQ")
PREFIX_SIZE = PREFIX.size

# (class-id, method-id) pairs the harness sends or recognises (amqp0-9-1 §1.4-1.8,
# confirm.* is RabbitMQ's extension, class 85).
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
EXCHANGE_DECLARE = (40, 10)
EXCHANGE_DECLARE_OK = (40, 11)
EXCHANGE_DELETE = (40, 20)
EXCHANGE_DELETE_OK = (40, 21)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
QUEUE_BIND = (50, 20)
QUEUE_BIND_OK = (50, 21)
QUEUE_DELETE = (50, 40)
QUEUE_DELETE_OK = (50, 41)
BASIC_QOS = (60, 10)
BASIC_QOS_OK = (60, 11)
BASIC_CONSUME = (60, 20)
BASIC_CONSUME_OK = (60, 21)
BASIC_PUBLISH = (60, 40)
BASIC_DELIVER = (60, 60)
BASIC_ACK = (60, 80)
BASIC_NACK = (60, 120)
CONFIRM_SELECT = (85, 10)
CONFIRM_SELECT_OK = (85, 11)

# The reply each synchronous request waits for.
REPLY_TO: dict[tuple[int, int], tuple[int, int]] = {
    CONNECTION_OPEN: CONNECTION_OPEN_OK,
    CONNECTION_CLOSE: CONNECTION_CLOSE_OK,
    CHANNEL_OPEN: CHANNEL_OPEN_OK,
    CHANNEL_CLOSE: CHANNEL_CLOSE_OK,
    EXCHANGE_DECLARE: EXCHANGE_DECLARE_OK,
    EXCHANGE_DELETE: EXCHANGE_DELETE_OK,
    QUEUE_DECLARE: QUEUE_DECLARE_OK,
    QUEUE_BIND: QUEUE_BIND_OK,
    QUEUE_DELETE: QUEUE_DELETE_OK,
    BASIC_QOS: BASIC_QOS_OK,
    BASIC_CONSUME: BASIC_CONSUME_OK,
    CONFIRM_SELECT: CONFIRM_SELECT_OK,
}

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_ACK_ARGS = struct.Struct(">HHQB")


def shortstr(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 255:
        raise ValueError(f"shortstr longer than 255 bytes: {value[:40]!r}...")
    return _U8.pack(len(raw)) + raw


def longstr(value: bytes) -> bytes:
    return _U32.pack(len(value)) + value


def table(values: Mapping[str, str | bool | int]) -> bytes:
    """A field table with the few value types the harness uses (§4.2.5.5)."""
    out = bytearray()
    for name, value in values.items():
        out += shortstr(name)
        if isinstance(value, bool):
            out += b"t" + _U8.pack(int(value))
        elif isinstance(value, int):
            out += b"l" + struct.pack(">q", value)
        else:
            out += b"S" + longstr(value.encode())
    return _U32.pack(len(out)) + bytes(out)


def bits(*flags: bool) -> bytes:
    """Consecutive bit arguments share one octet, least significant first (§4.2.5.2)."""
    value = 0
    for index, flag in enumerate(flags):
        value |= int(flag) << index
    return _U8.pack(value)


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    return FRAME_HEAD.pack(kind, channel, len(payload)) + payload + b"\xce"


def method(channel: int, ident: tuple[int, int], args: bytes = b"") -> bytes:
    return frame(FRAME_METHOD, channel, METHOD_ID.pack(*ident) + args)


# --- client -> server -------------------------------------------------------


def start_ok(user: str, password: str, product: str = "pigeon-bench") -> bytes:
    props = table({"product": product, "capabilities": "none"})
    response = b"\x00" + user.encode() + b"\x00" + password.encode()
    args = props + shortstr("PLAIN") + longstr(response) + shortstr("en_US")
    return method(0, CONNECTION_START_OK, args)


def tune_ok(channel_max: int, frame_max: int, heartbeat: int) -> bytes:
    return method(0, CONNECTION_TUNE_OK, struct.pack(">HIH", channel_max, frame_max, heartbeat))


def connection_open(vhost: str) -> bytes:
    return method(0, CONNECTION_OPEN, shortstr(vhost) + shortstr("") + bits(False))


def connection_close(code: int = 200, text: str = "bye") -> bytes:
    return method(0, CONNECTION_CLOSE, _U16.pack(code) + shortstr(text) + b"\x00" * 4)


def channel_open(channel: int) -> bytes:
    return method(channel, CHANNEL_OPEN, shortstr(""))


def exchange_declare(channel: int, name: str, kind: str, durable: bool) -> bytes:
    args = _U16.pack(0) + shortstr(name) + shortstr(kind)
    args += bits(False, durable, False, False, False) + table({})
    return method(channel, EXCHANGE_DECLARE, args)


def exchange_delete(channel: int, name: str) -> bytes:
    return method(channel, EXCHANGE_DELETE, _U16.pack(0) + shortstr(name) + bits(False, False))


def queue_declare(channel: int, name: str, durable: bool) -> bytes:
    args = _U16.pack(0) + shortstr(name) + bits(False, durable, False, False, False) + table({})
    return method(channel, QUEUE_DECLARE, args)


def queue_bind(channel: int, queue: str, exchange: str, routing_key: str) -> bytes:
    args = _U16.pack(0) + shortstr(queue) + shortstr(exchange) + shortstr(routing_key)
    return method(channel, QUEUE_BIND, args + bits(False) + table({}))


def queue_delete(channel: int, name: str) -> bytes:
    args = _U16.pack(0) + shortstr(name) + bits(False, False, False)
    return method(channel, QUEUE_DELETE, args)


def basic_qos(channel: int, prefetch_count: int) -> bytes:
    return method(channel, BASIC_QOS, struct.pack(">IH", 0, prefetch_count) + bits(False))


def basic_consume(channel: int, queue: str, tag: str, no_ack: bool) -> bytes:
    args = _U16.pack(0) + shortstr(queue) + shortstr(tag)
    return method(channel, BASIC_CONSUME, args + bits(False, no_ack, False, False) + table({}))


def basic_ack(channel: int, delivery_tag: int, multiple: bool) -> bytes:
    payload = _ACK_ARGS.pack(*BASIC_ACK, delivery_tag, int(multiple))
    return FRAME_HEAD.pack(FRAME_METHOD, channel, len(payload)) + payload + b"\xce"


def confirm_select(channel: int) -> bytes:
    return method(channel, CONFIRM_SELECT, bits(False))


# --- server -> client (the sink) --------------------------------------------


def connection_start() -> bytes:
    args = b"\x00\x09" + table({"product": "pigeon-bench-sink"})
    return method(0, CONNECTION_START, args + longstr(b"PLAIN") + longstr(b"en_US"))


def connection_tune(channel_max: int, frame_max: int, heartbeat: int) -> bytes:
    return method(0, CONNECTION_TUNE, struct.pack(">HIH", channel_max, frame_max, heartbeat))


def queue_declare_ok(channel: int, name: str) -> bytes:
    return method(channel, QUEUE_DECLARE_OK, shortstr(name) + struct.pack(">II", 0, 0))


def basic_consume_ok(channel: int, tag: str) -> bytes:
    return method(channel, BASIC_CONSUME_OK, shortstr(tag))


def basic_deliver_head(channel: int, tag: str, delivery_tag: int, routing_key: str) -> bytes:
    args = shortstr(tag) + _U64.pack(delivery_tag) + bits(False) + shortstr("")
    return method(channel, BASIC_DELIVER, args + shortstr(routing_key))


# --- the pre-encoded message ------------------------------------------------


class MessageTemplate:
    """One message (publish or deliver method, header, body) encoded once.

    ``batch`` repeats it and patches only each copy's payload prefix, so the cost
    per message in the hot loop is one ``struct.pack_into``.
    """

    def __init__(self, head: bytes, size: int, persistent: bool, frame_max: int) -> None:
        if size < PREFIX_SIZE:
            raise ValueError(f"message size must be at least {PREFIX_SIZE} bytes")
        # Properties: delivery-mode is flag bit 12 (§4.2.6.1, basic class fields).
        flags, props = (0x1000, b"\x02") if persistent else (0, b"")
        channel = _channel_of(head)
        header = frame(FRAME_HEADER, channel, struct.pack(">HHQH", 60, 0, size, flags) + props)
        chunk = max(frame_max - 8, PREFIX_SIZE) if frame_max else size
        body = bytes(size)
        bodies = b"".join(
            frame(FRAME_BODY, channel, body[i : i + chunk]) for i in range(0, size, chunk)
        )
        self.message = head + header + bodies
        self.prefix_offset = len(head) + len(header) + FRAME_HEAD.size
        self.size = size
        self._unit = bytearray(self.message)

    @classmethod
    def publish(
        cls,
        channel: int,
        exchange: str,
        routing_key: str,
        size: int,
        persistent: bool,
        frame_max: int = 131072,
    ) -> MessageTemplate:
        args = _U16.pack(0) + shortstr(exchange) + shortstr(routing_key) + bits(False, False)
        return cls(method(channel, BASIC_PUBLISH, args), size, persistent, frame_max)

    def batch(self, first_seq: int, count: int, timestamp_ns: int) -> bytearray:
        """``count`` messages with sequence numbers from ``first_seq``, one send time."""
        out = self._unit * count
        step = len(self.message)
        pack_into = PREFIX.pack_into
        offset = self.prefix_offset
        for seq in range(first_seq, first_seq + count):
            pack_into(out, offset, seq, timestamp_ns)
            offset += step
        return out


def _channel_of(encoded_frame: bytes) -> int:
    return int(_U16.unpack_from(encoded_frame, 1)[0])
