"""AMQP 0-9-1 wire codec: field tables, content properties, frames.

Pure functions over bytes; no I/O. Method arguments are in the generated
``methods`` module. Malformed input raises :class:`HardError` with the reply
code RabbitMQ answers with (501 FRAME_ERROR for anything that does not parse).

Field tables use RabbitMQ's type tags (rabbitmq.com/amqp-0-9-1-errata.html),
which pika and every client that talks to RabbitMQ use: ``s`` is a signed
16-bit and ``l`` a signed 64-bit integer, unlike the 0-9-1 spec's table. The
spec's ``U`` and ``L`` are accepted when decoding but never produced.
Decoded values are plain Python: ``T`` (timestamp) becomes a UTC
``datetime`` (as pika does), so that it is encoded back as a timestamp;
``S`` a ``str``, or ``bytes`` when it is not UTF-8; ``x`` ``bytes``;
``f``/``d`` ``float``; ``D`` ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from struct import Struct
from struct import error as StructError
from typing import TYPE_CHECKING, Any

from pigeon.core.message import Properties
from pigeon.protocols.amqp091.replies import HardError, ReplyCode

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
_FRAME_TYPES = frozenset({FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT})
MAX_TABLE_DEPTH = 100

_FRAME_HEAD = Struct(">BHI")
_CONTENT_HEAD = Struct(">HHQ")
_U8 = Struct(">B")
_I8 = Struct(">b")
_U16 = Struct(">H")
_I16 = Struct(">h")
_U32 = Struct(">I")
_I32 = Struct(">i")
_U64 = Struct(">Q")
_I64 = Struct(">q")
_F32 = Struct(">f")
_F64 = Struct(">d")
_DECIMAL = Struct(">Bi")

# --------------------------------------------------------------------------- field tables

_Decoder = Callable[[Buffer, int, int], tuple[Any, int]]


def _fixed(fmt: Struct, convert: Callable[[Any], Any] = lambda v: v) -> _Decoder:
    size = fmt.size

    def decode(data: Buffer, off: int, depth: int) -> tuple[Any, int]:
        return convert(fmt.unpack_from(data, off)[0]), off + size

    return decode


def _timestamp(seconds: int) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        # Beyond what datetime holds: clamp rather than refuse the frame.
        return datetime.max.replace(tzinfo=UTC)


def _long_string(data: Buffer, off: int, depth: int) -> tuple[Any, int]:
    (size,) = _U32.unpack_from(data, off)
    end = off + 4 + size
    if end > len(data):
        raise ValueError("long string runs past the end")
    raw = bytes(data[off + 4 : end])
    try:
        return raw.decode("utf-8"), end
    except UnicodeDecodeError:
        return raw, end


def _byte_array(data: Buffer, off: int, depth: int) -> tuple[Any, int]:
    (size,) = _U32.unpack_from(data, off)
    end = off + 4 + size
    if end > len(data):
        raise ValueError("byte array runs past the end")
    return bytes(data[off + 4 : end]), end


def _decimal(data: Buffer, off: int, depth: int) -> tuple[Any, int]:
    scale, value = _DECIMAL.unpack_from(data, off)
    return Decimal(value).scaleb(-scale), off + 5


def _array(data: Buffer, off: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_TABLE_DEPTH:
        raise ValueError("field tables nested too deeply")
    (size,) = _U32.unpack_from(data, off)
    off += 4
    end = off + size
    if end > len(data):
        raise ValueError("array runs past the end")
    items = []
    while off < end:
        decode = _DECODERS.get(data[off])
        if decode is None:
            raise ValueError(f"unknown field type {data[off]:#x} in an array")
        value, off = decode(data, off + 1, depth + 1)
        items.append(value)
    if off != end:
        raise ValueError("array items run past the array")
    return items, off


def _table(data: Buffer, off: int, depth: int) -> tuple[Any, int]:
    return read_table(data, off, depth + 1)


_DECODERS: dict[int, _Decoder] = {
    ord("t"): _fixed(_U8, bool),
    ord("b"): _fixed(_I8),
    ord("B"): _fixed(_U8),
    ord("s"): _fixed(_I16),
    ord("U"): _fixed(_I16),
    ord("u"): _fixed(_U16),
    ord("I"): _fixed(_I32),
    ord("i"): _fixed(_U32),
    ord("l"): _fixed(_I64),
    ord("L"): _fixed(_I64),
    ord("f"): _fixed(_F32),
    ord("d"): _fixed(_F64),
    ord("T"): _fixed(_U64, _timestamp),
    ord("D"): _decimal,
    ord("S"): _long_string,
    ord("x"): _byte_array,
    ord("A"): _array,
    ord("F"): _table,
    ord("V"): lambda data, off, depth: (None, off),
}


def read_table(data: Buffer, off: int = 0, depth: int = 0) -> tuple[dict[str, Any], int]:
    """Decode the field table (with its length prefix) at ``off``; return it and
    the offset after it.

    Malformed input raises ValueError, struct.error or IndexError; callers turn
    those into 501 FRAME_ERROR as RabbitMQ does ("cannot decode").
    """
    if depth > MAX_TABLE_DEPTH:
        raise ValueError("field tables nested too deeply")
    (size,) = _U32.unpack_from(data, off)
    off += 4
    end = off + size
    if end > len(data):
        raise ValueError("field table runs past the end")
    table: dict[str, Any] = {}
    while off < end:
        key_end = off + 1 + data[off]
        key = str(data[off + 1 : key_end], "utf-8", "surrogateescape")
        decode = _DECODERS.get(data[key_end])
        if decode is None:
            raise ValueError(f"unknown field type {data[key_end]:#x} for {key!r}")
        table[key], off = decode(data, key_end + 1, depth)
    if off != end:
        raise ValueError("field values run past the table")
    return table, off


def decode_table(data: Buffer) -> dict[str, Any]:
    """Decode ``data`` holding exactly one field table with its length prefix.

    Raises ValueError (or struct.error, IndexError) when it does not.
    """
    table, end = read_table(data)
    if end != len(data):
        raise ValueError(f"{len(data) - end} bytes after the field table")
    return table


def _encode_value(value: Any, out: list[bytes]) -> None:
    # bool before int: bool is an int subclass.
    if isinstance(value, bool):
        out.append(b"t\x01" if value else b"t\x00")
    elif isinstance(value, int):
        if -0x8000_0000 <= value < 0x8000_0000:
            out.append(b"I" + _I32.pack(value))
        elif -0x8000_0000_0000_0000 <= value < 0x8000_0000_0000_0000:
            out.append(b"l" + _I64.pack(value))
        else:
            raise ValueError(f"integer out of the signed 64-bit range: {value}")
    elif isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
        out.append(b"S" + _U32.pack(len(raw)))
        out.append(raw)
    elif isinstance(value, bytes | bytearray | memoryview):
        out.append(b"x" + _U32.pack(len(value)))
        out.append(bytes(value))
    elif isinstance(value, float):
        out.append(b"d" + _F64.pack(value))
    elif isinstance(value, Decimal):
        out.append(b"D" + _encode_decimal(value))
    elif isinstance(value, Mapping):
        out.append(b"F")
        out.append(encode_table(value))
    elif isinstance(value, list | tuple):
        items: list[bytes] = []
        for item in value:
            _encode_value(item, items)
        body = b"".join(items)
        out.append(b"A" + _U32.pack(len(body)))
        out.append(body)
    elif isinstance(value, datetime):
        # A naive datetime is taken as UTC, as pika does.
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        out.append(b"T" + _U64.pack(max(0, int(aware.timestamp()))))
    elif value is None:
        out.append(b"V")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} in a field table")


def _encode_decimal(value: Decimal) -> bytes:
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"cannot encode {value} as an AMQP decimal")
    scale = max(0, -exponent)
    if scale > 255:
        raise ValueError(f"decimal scale over 255: {value}")
    return _DECIMAL.pack(scale, int(value.scaleb(scale)))


def encode_table(table: Mapping[str, Any] | None) -> bytes:
    """Encode a field table, with its 32-bit length prefix; None is empty."""
    if not table:
        return b"\x00\x00\x00\x00"
    out: list[bytes] = []
    for key, value in table.items():
        raw = key.encode("utf-8", "surrogateescape")
        if len(raw) > 255:
            raise ValueError(f"field table key longer than 255 bytes: {key[:40]!r}...")
        out.append(_U8.pack(len(raw)))
        out.append(raw)
        _encode_value(value, out)
    body = b"".join(out)
    return _U32.pack(len(body)) + body


# --------------------------------------------------------------------------- properties

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
    if size and (size <= frame_max - FRAME_OVERHEAD or not frame_max):
        # The usual case: the body fits one frame (§4.2.6.2).
        return (
            layout.pack(
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
            ),
            body,
            b"\xce",
        )
    # No body frame (§4.2.6.2), or several: the packed body frame head is cut off.
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
        0,
        0,
        0,
    )
    out = [packed[: -_FRAME_HEAD.size]]
    _body_frames(channel, body, frame_max, out)
    return tuple(out)


# basic.publish's method frame up to its arguments (type, channel, size, class,
# method), then a content header frame up to its property flags, then a body
# frame's head: what the publish fast path reads in three unpacks.
_METHOD_HEAD = Struct(">BHIHH")
_HEADER_HEAD = Struct(">BHIHHQ")


class FrameReader:
    """Splits a byte stream into frames ``(type, channel, payload)``.

    Feed it bytes, then call :meth:`next_frame` (or iterate) until it returns
    None: the rest is incomplete (no exception for that: it is the normal
    case). Payloads are memoryviews into the received bytes, valid until the
    caller drops them. Frame size is checked against ``frame_max`` from the
    7-byte header, before any of the payload is buffered (amqp0-9-1 §4.2.3).
    """

    __slots__ = ("_buf", "_chunks", "_limit", "_need", "_pending", "_pos", "_view")

    def __init__(self, frame_max: int = FRAME_MIN_SIZE) -> None:
        self.frame_max = frame_max
        self._buf = b""
        self._view = memoryview(self._buf)
        self._pos = 0
        # Bytes received since _buf, joined only once the next frame is
        # complete, so a large frame arriving in many reads is copied once.
        self._chunks: list[bytes] = []
        self._pending = 0
        self._need = 0

    @property
    def frame_max(self) -> int:
        """The largest frame accepted, overhead included; 0 means no limit."""
        return self._limit + FRAME_OVERHEAD if self._limit != 0xFFFF_FFFF else 0

    @frame_max.setter
    def frame_max(self, frame_max: int) -> None:
        self._limit = frame_max - FRAME_OVERHEAD if frame_max else 0xFFFF_FFFF

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._pending += len(data)
        if len(self._buf) - self._pos + self._pending >= self._need:
            self._join()

    def _join(self) -> None:
        if self._pos < len(self._buf):
            self._chunks.insert(0, self._buf[self._pos :])
        # bytes, never a caller's bytearray: payload views must be hashable
        # (the connection's caches look them up without copying).
        chunks = self._chunks
        self._buf = chunks[0] if len(chunks) == 1 and type(chunks[0]) is bytes else b"".join(chunks)
        self._view = memoryview(self._buf)
        self._chunks = []
        self._pending = 0
        self._pos = 0

    def __iter__(self) -> Iterator[tuple[int, int, memoryview]]:
        while (frame := self.next_frame()) is not None:
            yield frame

    def next_frame(self) -> tuple[int, int, memoryview] | None:
        """The next complete frame, or None when the buffer holds none.

        Raises HardError 501 on a frame that breaks the framing; the stream
        is unusable after that.
        """
        buf = self._buf
        pos = self._pos
        end = len(buf)
        # Chunks still pending (see feed) cannot complete the next frame.
        if end - pos < 7:
            self._need = 7
            return None
        frame_type, channel, size = _FRAME_HEAD.unpack_from(buf, pos)
        if size > self._limit or frame_type not in _FRAME_TYPES or (frame_type == 8 and size):
            self._pos = end  # the stream is unusable from here
            raise _frame_error(frame_type, size, self._limit)
        frame_end = pos + 7 + size
        if frame_end >= end:
            self._need = frame_end + 1 - pos
            return None
        if buf[frame_end] != FRAME_END:
            self._pos = end
            raise HardError(
                ReplyCode.FRAME_ERROR,
                f"type {frame_type}: invalid frame end marker {buf[frame_end]:#x}",
            )
        self._pos = frame_end + 1
        return frame_type, channel, self._view[pos + 7 : frame_end]

    def peek_publish(self) -> tuple[int, bytes, bytes, bytes, int] | None:
        """The fast path's look at the buffer: a whole published message, or None.

        When the next frames are basic.publish, a basic content header of
        weight 0 and (unless it announces an empty body, §4.2.6.2) the whole
        body in a single frame, all on one channel, complete, within frame_max
        and well framed: ``(channel, publish arguments, property flags and
        list, body, end)``, the byte strings copied out of the buffer. Nothing
        is consumed; :meth:`skip_to` ``(end)`` does. Anything else, including
        every malformed input, is None: :meth:`next_frame` then takes the
        frames one by one and reports what is wrong with them.
        """
        buf = self._buf
        pos = self._pos
        end = len(buf)
        # The low octet of the method id first: a cheap no for every other frame.
        if end - pos < 11 or buf[pos + 10] != 40:
            return None
        frame_type, channel, size, class_id, method_id = _METHOD_HEAD.unpack_from(buf, pos)
        header = pos + 8 + size  # the content header frame
        limit = self._limit
        if (
            method_id != 40
            or class_id != 60
            or frame_type != FRAME_METHOD
            or size > limit
            or size < 4
            or header + 19 > end
            or buf[header - 1] != FRAME_END
        ):
            return None
        frame_type, header_channel, size, class_id, weight, body_size = _HEADER_HEAD.unpack_from(
            buf, header
        )
        body = header + 8 + size  # the body frame, or the end of the message
        if (
            frame_type != FRAME_HEADER
            or header_channel != channel
            or class_id != 60
            or weight
            or size > limit
            or size < 14
            or body > end
            or buf[body - 1] != FRAME_END
        ):
            return None
        if not body_size:
            return channel, buf[pos + 11 : header - 1], buf[header + 19 : body - 1], b"", body
        if body + 7 > end:
            return None
        frame_type, body_channel, size = _FRAME_HEAD.unpack_from(buf, body)
        stop = body + 8 + size
        if (
            frame_type != FRAME_BODY
            or body_channel != channel
            or size != body_size
            or size > limit
            or stop > end
            or buf[stop - 1] != FRAME_END
        ):
            return None
        return (
            channel,
            buf[pos + 11 : header - 1],
            buf[header + 19 : body - 1],
            buf[body + 7 : stop - 1],
            stop,
        )

    def skip_to(self, end: int) -> None:
        """Consume the buffer up to ``end``, an offset :meth:`peek_publish` gave."""
        self._pos = end


def _frame_error(frame_type: int, size: int, limit: int) -> HardError:
    if size > limit:
        text = f"type {frame_type}: frame of {size} bytes, the limit is {limit}"
    elif frame_type == FRAME_HEARTBEAT:
        text = f"heartbeat frame with a {size}-byte payload"
    else:
        text = f"type {frame_type}: unknown frame type"
    return HardError(ReplyCode.FRAME_ERROR, text)
