"""Records to table rows and back, with the CRC32 that guards every stored row.

SQLite's own checks cover the b-tree structure, not the bytes inside a cell:
a bit flipped in a message body would be read back without complaint. Each
row therefore carries ``crc = CRC32`` of all its other columns (as stored:
after compression and encryption), and a row whose CRC or decoding fails is
dropped and logged rather than delivered.
"""

from __future__ import annotations

import zlib
from struct import Struct
from typing import Any

from pigeon.core.message import Message
from pigeon.core.ports import BindingRecord, ExchangeRecord, QueueRecord
from pigeon.storage.bodies import BodyCodec
from pigeon.storage.codec import CodecError, decode_message, decode_value, encode_message
from pigeon.storage.codec import encode_value as encode

_LEN = Struct(">I")
Column = str | bytes | int


def row_crc(*columns: Column) -> int:
    crc = 0
    for column in columns:
        if isinstance(column, str):
            raw = column.encode("utf-8", "surrogateescape")
        elif isinstance(column, int):
            raw = str(column).encode("ascii")
        else:
            raw = column
        # The length prefix keeps ("ab", "c") and ("a", "bc") apart.
        crc = zlib.crc32(raw, zlib.crc32(_LEN.pack(len(raw)), crc))
    return crc


def checked(columns: tuple[Any, ...]) -> tuple[Any, ...]:
    """The columns of a stored row without its trailing CRC, or CodecError."""
    *values, crc = columns
    if row_crc(*values) != crc:
        raise CodecError("checksum mismatch")
    return tuple(values)


def identity(vhost: str, queue: str, seq: int) -> bytes:
    """A message row's identity, the associated data of its encrypted body."""
    return f"{vhost}\x00{queue}\x00{seq}".encode("utf-8", "surrogateescape")


def with_crc(*columns: Column) -> tuple[Column, ...]:
    return (*columns, row_crc(*columns))


# -- to rows (writer thread) ---------------------------------------------------------


def exchange_row(r: ExchangeRecord) -> tuple[Column, ...]:
    data = encode([r.type, r.durable, r.auto_delete, r.internal, r.arguments])
    return with_crc(r.vhost, r.name, data)


def queue_row(r: QueueRecord) -> tuple[Column, ...]:
    return with_crc(r.vhost, r.name, encode([r.durable, r.auto_delete, r.arguments]))


def binding_key(r: BindingRecord) -> tuple[Column, ...]:
    # Arguments are part of a binding's identity (amqp0-9-1 §1.7.2.3: a queue
    # may be bound twice with different arguments). Sorting the keys makes
    # equal tables encode to equal bytes, whatever order they were built in.
    arguments = encode(dict(sorted(r.arguments.items())))
    return (r.vhost, r.source, r.destination, r.destination_kind, r.routing_key, arguments)


def message_row(
    vhost: str, queue: str, seq: int, message: Message, bodies: BodyCodec
) -> tuple[Column, ...]:
    flags, body = bodies.encode(message.body, identity(vhost, queue, seq))
    return with_crc(vhost, queue, seq, encode_message(message), flags, body)


def document_row(kind: str, key: str, value: Any) -> tuple[Column, ...]:
    return with_crc(kind, key, encode(value))


# -- from rows (load) ----------------------------------------------------------------
# Each raises CodecError, TypeError or ValueError on a row that is not what we wrote.


def _shaped(value: Any, *types: type) -> list[Any]:
    if not isinstance(value, list) or len(value) != len(types):
        raise CodecError("unexpected row shape")
    for item, kind in zip(value, types, strict=True):
        if not isinstance(item, kind):
            raise CodecError(f"expected {kind.__name__}, found {type(item).__name__}")
    return value


def exchange_record(vhost: str, name: str, data: bytes) -> ExchangeRecord:
    kind, durable, auto_delete, internal, args = _shaped(
        decode_value(data), str, bool, bool, bool, dict
    )
    return ExchangeRecord(vhost, name, kind, durable, auto_delete, internal, args)


def queue_record(vhost: str, name: str, data: bytes) -> QueueRecord:
    durable, auto_delete, args = _shaped(decode_value(data), bool, bool, dict)
    return QueueRecord(vhost, name, durable, auto_delete, args)


def binding_record(
    vhost: str, source: str, destination: str, kind: str, routing_key: str, arguments: bytes
) -> BindingRecord:
    args = decode_value(arguments)
    if not isinstance(args, dict) or kind not in ("queue", "exchange"):
        raise CodecError("not a binding")
    return BindingRecord(vhost, source, destination, kind, routing_key, args)


def message_of(
    vhost: str, queue: str, seq: int, header: bytes, flags: int, body: bytes, bodies: BodyCodec
) -> Message:
    return decode_message(header, bodies.decode(flags, body, identity(vhost, queue, seq)))
