"""AMQP 0-9-1 wire codec: content properties and frames.

Pure functions over bytes; no I/O. Method arguments are in the generated
``methods`` module, field tables in ``tables``, and the reader that splits a
byte stream into frames in ``frames``. Malformed input raises
:class:`HardError` with the reply code RabbitMQ answers with (501 FRAME_ERROR
for anything that does not parse).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from struct import Struct
from struct import error as StructError
from typing import TYPE_CHECKING, Any

from pigeon.protocols.amqp091.replies import HardError, ReplyCode
from pigeon.protocols.amqp091.tables import encode_table, read_table

if TYPE_CHECKING:
    from pigeon.protocols.amqp091.methods import Method

Buffer = bytes | bytearray | memoryview

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_MIN_SIZE = 4096
# Frame header (type, channel, size) and the end octet: what frame_max counts
# on top of the payload (amqp0-9-1 §4.2.3).
FRAME_OVERHEAD = 8
HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"

_FRAME_HEAD = Struct(">BHI")
_CONTENT_HEAD = Struct(">HHQ")
_U8 = Struct(">B")
_U16 = Struct(">H")
_U64 = Struct(">Q")

# --------------------------------------------------------------------------- properties


@dataclass(slots=True)
class BasicProperties:
    """AMQP 0-9-1 basic properties as decoded (amqp0-9-1 §4.2.6.1, basic class).

    Protocol-specific: :mod:`pigeon.protocols.amqp091.convert` turns them into the
    core's neutral properties and back. Never changed in place once decoded (the
    connection shares one object between messages with the same wire bytes).
    """

    content_type: str | None = None
    content_encoding: str | None = None
    headers: dict[str, Any] | None = None
    delivery_mode: int | None = None
    priority: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    expiration: str | None = None
    message_id: str | None = None
    timestamp: int | None = None
    type: str | None = None
    user_id: str | None = None
    app_id: str | None = None
    cluster_id: str | None = None

    def copy(self, **changes: Any) -> BasicProperties:
        return replace(self, **changes)


Properties = BasicProperties  # the name the connection and older callers use

# Basic properties in flag order: bit 15 is the first (amqp0-9-1 §4.2.6.1).
_PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)
_TABLE_FLAG = 1 << 13
_OCTET_FLAGS = (1 << 12) | (1 << 11)
_TIMESTAMP_FLAG = 1 << 6
# Bit 0 would announce a second flag word; basic has only 14 properties, so
# it and bit 1 are never valid (RabbitMQ crashes the connection on them).
_UNKNOWN_FLAGS = 0x0003


def _shortstr_at(data: Buffer, off: int) -> tuple[str, int]:
    end = off + 1 + data[off]
    if end > len(data):
        raise ValueError("short string runs past the end")
    return str(data[off + 1 : end], "utf-8", "surrogateescape"), end


def decode_properties(data: Buffer) -> tuple[int, Properties]:
    """Decode a content header payload into ``(body_size, properties)``.

    The class id and weight are not checked here (the connection does, to
    answer 505 as RabbitMQ does). Raises HardError 501 on malformed input.
    """
    try:
        _, _, body_size = _CONTENT_HEAD.unpack_from(data, 0)
        (flags,) = _U16.unpack_from(data, 12)
        props = _decode_property_list(data, flags, 14)
    except (StructError, ValueError, IndexError, RecursionError) as exc:
        raise HardError(ReplyCode.FRAME_ERROR, f"cannot decode content header: {exc}") from None
    return body_size, props


def decode_encoded_properties(data: Buffer) -> Properties:
    """Decode property flags and list, the form :func:`encode_properties` makes
    (a content header payload after its first 12 bytes). HardError 501 if bad."""
    try:
        (flags,) = _U16.unpack_from(data, 0)
        return _decode_property_list(data, flags, 2)
    except (StructError, ValueError, IndexError, RecursionError) as exc:
        raise HardError(ReplyCode.FRAME_ERROR, f"cannot decode content header: {exc}") from None


def _decode_property_list(data: Buffer, flags: int, off: int) -> Properties:
    if flags & _UNKNOWN_FLAGS:
        raise ValueError(f"unknown property flags {flags & _UNKNOWN_FLAGS:#06x}")
    props = Properties()
    bit = 1 << 15
    for name in _PROPERTY_NAMES:
        if not flags:  # the rest are absent (most messages set few properties)
            break
        if flags & bit:
            flags ^= bit
            value: Any
            if bit == _TABLE_FLAG:
                value, off = read_table(data, off)
            elif bit & _OCTET_FLAGS:
                value, off = data[off], off + 1
            elif bit == _TIMESTAMP_FLAG:
                (value,), off = _U64.unpack_from(data, off), off + 8
            else:
                value, off = _shortstr_at(data, off)
            setattr(props, name, value)
        bit >>= 1
    if off != len(data):
        raise ValueError(f"properties end at {off}, the payload at {len(data)}")
    return props


def encode_properties(props: Properties) -> bytes:
    """The property flags and list of a content header (no class id or size)."""
    flags = 0
    out: list[bytes] = [b""]
    bit = 1 << 15
    for name in _PROPERTY_NAMES:
        value = getattr(props, name)
        if value is not None:
            flags |= bit
            if bit == _TABLE_FLAG:
                out.append(encode_table(value))
            elif bit & _OCTET_FLAGS:
                out.append(_U8.pack(value))
            elif bit == _TIMESTAMP_FLAG:
                out.append(_U64.pack(value))
            else:
                raw = value.encode("utf-8", "surrogateescape")
                if len(raw) > 255:
                    raise ValueError(f"property {name} longer than 255 bytes")
                out.append(_U8.pack(len(raw)) + raw)
        bit >>= 1
    out[0] = _U16.pack(flags)
    return b"".join(out)


def encode_content_header(class_id: int, body_size: int, encoded_props: bytes) -> bytes:
    """A content header frame *payload*: class id, weight 0, body size, properties."""
    return _CONTENT_HEAD.pack(class_id, 0, body_size) + encoded_props


# --------------------------------------------------------------------------- frames


def encode_frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return b"".join((_FRAME_HEAD.pack(frame_type, channel, len(payload)), payload, b"\xce"))


def encode_method_frame(channel: int, method: Method) -> bytes:
    return encode_frame(FRAME_METHOD, channel, method.encode())


def _body_frames(channel: int, body: bytes, frame_max: int, out: list[bytes]) -> None:
    """Append body frames to ``out``, split so no frame exceeds frame_max."""
    size = len(body)
    chunk = frame_max - FRAME_OVERHEAD if frame_max else size
    if size <= chunk:
        if size:
            out.append(_FRAME_HEAD.pack(FRAME_BODY, channel, size))
            out.append(body)
            out.append(b"\xce")
        return
    view = memoryview(body)
    for start in range(0, size, chunk):
        part = view[start : start + chunk]
        out.append(_FRAME_HEAD.pack(FRAME_BODY, channel, len(part)))
        out.append(bytes(part))
        out.append(b"\xce")


def encode_content_frames(
    channel: int, method_payload: bytes, encoded_props: bytes, body: bytes, frame_max: int
) -> list[bytes]:
    """Method, content header and body frames (none for an empty body, §4.2.6.2),
    as pieces to be joined by the writer. ``frame_max`` 0 means no limit."""
    class_id = method_payload[0] << 8 | method_payload[1]
    header = encode_content_header(class_id, len(body), encoded_props)
    out = [
        encode_frame(FRAME_METHOD, channel, method_payload),
        encode_frame(FRAME_HEADER, channel, header),
    ]
    _body_frames(channel, body, frame_max, out)
    return out


# (channel, consumer tag, exchange, routing key, properties' length) -> what
# encode_deliver needs for them: a consumer's deliveries repeat all five, so
# their encoding and checks are done once. Emptied when full, like the
# connection's caches.
_DeliverKey = tuple[int, str, str, str, int]
_DELIVER_TEMPLATES: dict[_DeliverKey, tuple[bytes, bytes, Struct]] = {}
_DELIVER_TEMPLATE_ENTRIES = 512
_DELIVER_IDS = _U16.pack(60) + _U16.pack(60)


def _deliver_template(key: _DeliverKey) -> tuple[bytes, bytes, Struct]:
    """basic.deliver's frame up to the consumer tag (``head``); from the exchange
    to the content header's channel (``mid``); and the Struct that packs
    head, delivery tag, redelivered, mid, the content header's size, class,
    weight, body size and properties, the header's frame end, and the head of
    the body frame (amqp0-9-1 §4.2.3, §4.2.6.1)."""
    channel, consumer_tag, exchange, routing_key, props_size = key
    tag = consumer_tag.encode("utf-8", "surrogateescape")
    ex = exchange.encode("utf-8", "surrogateescape")
    rkey = routing_key.encode("utf-8", "surrogateescape")
    if len(tag) > 255 or len(ex) > 255 or len(rkey) > 255:
        raise ValueError("short string longer than 255 bytes")
    method_size = 16 + len(tag) + len(ex) + len(rkey)
    head = b"".join(
        (
            _FRAME_HEAD.pack(FRAME_METHOD, channel, method_size),
            _DELIVER_IDS,
            bytes((len(tag),)),
            tag,
        )
    )
    mid = b"".join(
        (bytes((len(ex),)), ex, bytes((len(rkey),)), rkey, bytes((FRAME_END, FRAME_HEADER)))
    )
    mid += _U16.pack(channel)
    layout = Struct(f">{len(head)}sQB{len(mid)}sIHHQ{props_size}sBBHI")
    if len(_DELIVER_TEMPLATES) >= _DELIVER_TEMPLATE_ENTRIES:
        _DELIVER_TEMPLATES.clear()
    template = _DELIVER_TEMPLATES[key] = head, mid, layout
    return template


def encode_deliver(
    channel: int,
    consumer_tag: str,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    routing_key: str,
    encoded_props: bytes,
    body: bytes,
    frame_max: int,
) -> tuple[bytes, ...]:
    """basic.deliver + content header + body frames, as pieces for one join.

    The hottest encode in the broker: everything up to the body in one
    struct pack, no method object.
    """
    key = channel, consumer_tag, exchange, routing_key, len(encoded_props)
    template = _DELIVER_TEMPLATES.get(key)
    if template is None:
        template = _deliver_template(key)
    head, mid, layout = template
    size = len(body)
    # The usual case: the body fits one frame (§4.2.6.2), whose head ends the pack.
    fits = bool(size) and (size <= frame_max - FRAME_OVERHEAD or not frame_max)
    packed = layout.pack(
        head,
        delivery_tag,
        1 if redelivered else 0,
        mid,
        12 + len(encoded_props),
        60,
        0,
        size,
        encoded_props,
        FRAME_END,
        FRAME_BODY,
        channel,
        size,
    )
    if fits:
        return packed, body, b"\xce"
    # No body frame (§4.2.6.2), or several: the packed body frame head is cut off.
    out = [packed[: -_FRAME_HEAD.size]]
    _body_frames(channel, body, frame_max, out)
    return tuple(out)
