"""AMQP 0-9-1 field tables: decoding and encoding.

Field tables use RabbitMQ's type tags (rabbitmq.com/amqp-0-9-1-errata.html),
which pika and every client that talks to RabbitMQ use: ``s`` is a signed
16-bit and ``l`` a signed 64-bit integer, unlike the 0-9-1 spec's table. The
spec's ``U`` and ``L`` are accepted when decoding but never produced.
Decoded values are plain Python: ``T`` (timestamp) becomes a UTC
``datetime`` (as pika does), so that it is encoded back as a timestamp;
``S`` a ``str``, or ``bytes`` when it is not UTF-8; ``x`` ``bytes``;
``f``/``d`` ``float``; ``D`` ``Decimal``. Malformed input raises ValueError,
struct.error or IndexError; the codec turns them into 501 FRAME_ERROR, as
RabbitMQ answers it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from struct import Struct
from typing import Any

from pigeon.core.message import Long

Buffer = bytes | bytearray | memoryview

MAX_TABLE_DEPTH = 100

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
        if -0x8000_0000 <= value < 0x8000_0000 and type(value) is not Long:
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
