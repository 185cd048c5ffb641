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
        props = _decode_property_list(data, flags)
    except (StructError, ValueError, IndexError, RecursionError) as exc:
        raise HardError(ReplyCode.FRAME_ERROR, f"cannot decode content header: {exc}") from None
    return body_size, props


def _decode_property_list(data: Buffer, flags: int) -> Properties:
    if flags & _UNKNOWN_FLAGS:
        raise ValueError(f"unknown property flags {flags & _UNKNOWN_FLAGS:#06x}")
    props = Properties()
    off = 14
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


# basic.deliver method frame up to the consumer tag, then delivery tag, the
# redelivered bit and the exchange length, then after the routing key: frame
# end and the content header frame's head.
_DELIVER_HEAD = Struct(">BHIHHB")
_DELIVER_MID = Struct(">QBB")
_DELIVER_TAIL = Struct(">BBHIHHQ")


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
) -> list[bytes]:
    """basic.deliver + content header + body frames, as pieces for one join.

    The hottest encode in the broker: three struct packs, no method object.
    """
    tag = consumer_tag.encode("utf-8", "surrogateescape")
    ex = exchange.encode("utf-8", "surrogateescape")
    key = routing_key.encode("utf-8", "surrogateescape")
    if len(tag) > 255 or len(ex) > 255 or len(key) > 255:
        raise ValueError("short string longer than 255 bytes")
    method_size = 16 + len(tag) + len(ex) + len(key)
    out = [
        _DELIVER_HEAD.pack(FRAME_METHOD, channel, method_size, 60, 60, len(tag)),
        tag,
        _DELIVER_MID.pack(delivery_tag, 1 if redelivered else 0, len(ex)),
        ex,
        _U8.pack(len(key)),
        key,
        _DELIVER_TAIL.pack(
            FRAME_END, FRAME_HEADER, channel, 12 + len(encoded_props), 60, 0, len(body)
        ),
        encoded_props,
        b"\xce",
    ]
    _body_frames(channel, body, frame_max, out)
    return out


class FrameReader:
    """Splits a byte stream into frames ``(type, channel, payload)``.

    Feed it bytes, then iterate: iteration yields every complete frame and
    stops when the rest is incomplete (no exception for that: it is the normal
    case). Payloads are memoryviews into the received bytes, valid until the
    caller drops them. Frame size is checked against ``frame_max`` from the
    7-byte header, before any of the payload is buffered (amqp0-9-1 §4.2.3).
    """

    __slots__ = ("_buf", "_chunks", "_need", "_pending", "_pos", "frame_max")

    def __init__(self, frame_max: int = FRAME_MIN_SIZE) -> None:
        self.frame_max = frame_max
        self._buf = b""
        self._pos = 0
        # Bytes received since _buf, joined only once the next frame is
        # complete, so a large frame arriving in many reads is copied once.
        self._chunks: list[bytes] = []
        self._pending = 0
        self._need = 0

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._pending += len(data)
        if len(self._buf) - self._pos + self._pending >= self._need:
            self._join()

    def _join(self) -> None:
        if self._pos < len(self._buf):
            self._chunks.insert(0, self._buf[self._pos :])
        self._buf = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks = []
        self._pending = 0
        self._pos = 0

    def __iter__(self) -> Iterator[tuple[int, int, memoryview]]:
        # Chunks still pending (see feed) cannot complete the next frame.
        buf = self._buf
        view = memoryview(buf)
        end = len(buf)
        pos = self._pos
        limit = self.frame_max - FRAME_OVERHEAD if self.frame_max else 0xFFFF_FFFF
        unpack = _FRAME_HEAD.unpack_from
        while end - pos >= 7:
            frame_type, channel, size = unpack(buf, pos)
            if size > limit or frame_type not in _FRAME_TYPES or (frame_type == 8 and size):
                self._pos = end  # the stream is unusable from here
                raise _frame_error(frame_type, size, limit)
            frame_end = pos + 7 + size
            if frame_end >= end:
                self._need = frame_end + 1 - pos
                break
            if buf[frame_end] != FRAME_END:
                self._pos = end
                raise HardError(
                    ReplyCode.FRAME_ERROR,
                    f"type {frame_type}: invalid frame end marker {buf[frame_end]:#x}",
                )
            self._pos = pos = frame_end + 1
            yield frame_type, channel, view[frame_end - size : frame_end]
        else:
            self._need = 7


def _frame_error(frame_type: int, size: int, limit: int) -> HardError:
    if size > limit:
        text = f"type {frame_type}: frame of {size} bytes, the limit is {limit}"
    elif frame_type == FRAME_HEARTBEAT:
        text = f"heartbeat frame with a {size}-byte payload"
    else:
        text = f"type {frame_type}: unknown frame type"
    return HardError(ReplyCode.FRAME_ERROR, text)
