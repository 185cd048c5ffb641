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

from pigeon.core.commands import RetainMessage
from pigeon.core.message import Message, Properties
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


# Exchange and queue records are tables keyed by field name (0.1 wrote lists by
# position, in these orders; both read back).
_EXCHANGE_FIELDS = ("type", "durable", "auto_delete", "internal", "arguments")
_QUEUE_FIELDS = ("durable", "auto_delete", "arguments")


def exchange_row(r: ExchangeRecord) -> tuple[Column, ...]:
    data = encode({"type": r.type, "durable": r.durable, "auto_delete": r.auto_delete,
                   "internal": r.internal, "arguments": r.arguments})  # fmt: skip
    return with_crc(r.vhost, r.name, data)


def queue_row(r: QueueRecord) -> tuple[Column, ...]:
    data = encode({"durable": r.durable, "auto_delete": r.auto_delete,
                   "arguments": r.arguments})  # fmt: skip
    return with_crc(r.vhost, r.name, data)


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


class MessageRows:
    """Message rows to and from the table, as :func:`message_row` and :func:`message_of`
    do, for a fraction of their cost.

    The writer thread builds a row per persistent message, and the loop reads a
    row back per message of a paged backlog, both holding the interpreter lock.
    Per queue, the CRC of its (vhost, queue) columns is computed once. Per
    distinct (exchange, routing key, protocol encoding of the properties), the
    stored header is encoded once (equal encodings by one protocol come from
    equal properties); per distinct stored header without a headers table, it is
    decoded once (the other property values are immutable, so they can be shared).
    One instance per thread: the caches are not locked.
    """

    _MAX_CACHED = 4096  # distinct queues or headers kept; a cache restarts past that

    def __init__(self, bodies: BodyCodec) -> None:
        self._bodies = bodies
        self._queues: dict[tuple[str, str], int] = {}
        self._headers: dict[tuple[Any, ...], bytes] = {}
        self._decoded: dict[bytes, tuple[str, str, Properties]] = {}

    def row(self, vhost: str, queue: str, seq: int, message: Message) -> tuple[Column, ...]:
        bodies = self._bodies
        if bodies.plain:
            flags, body = 0, message.body
        else:
            flags, body = bodies.encode(message.body, identity(vhost, queue, seq))
        header = self._header(message)
        return (
            vhost,
            queue,
            seq,
            header,
            flags,
            body,
            self.crc(vhost, queue, seq, header, flags, body),
        )

    def message(
        self, vhost: str, queue: str, seq: int, header: bytes, flags: int, body: bytes, crc: int
    ) -> Message:
        """The message of a stored row; CodecError or ValueError when it is damaged."""
        try:
            good = type(flags) is int and self.crc(vhost, queue, seq, header, flags, body) == crc
        except TypeError:  # a column of another type than written (damage)
            good = False
        if not good:
            raise CodecError("checksum mismatch")
        if flags:
            body = self._bodies.decode(flags, body, identity(vhost, queue, seq))
        decoded = self._decoded.get(header)
        if decoded is None:
            return self._decode(header, body)
        exchange, routing_key, properties = decoded
        return Message(exchange, routing_key, properties, body)

    def crc(self, vhost: str, queue: str, seq: int, header: bytes, flags: int, body: bytes) -> int:
        """``row_crc(vhost, queue, seq, header, flags, body)``, the same number."""
        crc = self._queues.get((vhost, queue))
        if crc is None:
            if len(self._queues) >= self._MAX_CACHED:
                self._queues.clear()
            crc = self._queues[(vhost, queue)] = row_crc(vhost, queue)
        # The rest of row_crc's input in one piece: seq and flags as decimal text.
        number = str(seq).encode("ascii")
        flag = str(flags).encode("ascii")
        rest = (number, _LEN.pack(len(header)), header, _LEN.pack(len(flag)), flag)
        crc = zlib.crc32(_LEN.pack(len(number)) + b"".join(rest) + _LEN.pack(len(body)), crc)
        return zlib.crc32(body, crc)

    def _header(self, message: Message) -> bytes:
        if not message.encoded:
            return encode_message(message)
        key = (message.exchange, message.routing_key, *message.encoded.items())
        header = self._headers.get(key)
        if header is None:
            if len(self._headers) >= self._MAX_CACHED:
                self._headers.clear()
            header = self._headers[key] = encode_message(message)
        return header

    def _decode(self, header: bytes, body: bytes) -> Message:
        message = decode_message(header, body)
        props = message.properties
        if not props.headers:  # header values may be mutable tables: never shared
            if len(self._decoded) >= self._MAX_CACHED:
                self._decoded.clear()
            self._decoded[header] = (message.exchange, message.routing_key, props)
        return message


def document_row(kind: str, key: str, value: Any) -> tuple[Column, ...]:
    return with_crc(kind, key, encode(value))


def retained_identity(vhost: str, topic: str) -> bytes:
    """A retained row's identity (the associated data of its encrypted body); the
    prefix keeps it apart from every message row's."""
    return f"retained\x00{vhost}\x00{topic}".encode("utf-8", "surrogateescape")


def retained_row(
    vhost: str, topic: str, message: Message, expires: float | None, bodies: BodyCodec
) -> tuple[Column, ...]:
    flags, body = bodies.encode(message.body, retained_identity(vhost, topic))
    millis = 0 if expires is None else max(1, round(expires * 1000))
    return with_crc(vhost, topic, millis, encode_message(message), flags, body)


# -- from rows (load) ----------------------------------------------------------------
# Each raises CodecError, TypeError or ValueError on a row that is not what we wrote.


def _shaped(value: Any, names: tuple[str, ...], *types: type) -> list[Any]:
    """The fields in ``names``' order, from a table keyed by name or a 0.1 list."""
    if isinstance(value, dict):
        missing = [name for name in names if name not in value]
        if missing:
            raise CodecError(f"missing fields: {', '.join(missing)}")
        value = [value[name] for name in names]
    if not isinstance(value, list) or len(value) != len(types):
        raise CodecError("unexpected row shape")
    for item, kind in zip(value, types, strict=True):
        if not isinstance(item, kind):
            raise CodecError(f"expected {kind.__name__}, found {type(item).__name__}")
    return value


def exchange_record(vhost: str, name: str, data: bytes) -> ExchangeRecord:
    kind, durable, auto_delete, internal, args = _shaped(
        decode_value(data), _EXCHANGE_FIELDS, str, bool, bool, bool, dict
    )
    return ExchangeRecord(vhost, name, kind, durable, auto_delete, internal, args)


def queue_record(vhost: str, name: str, data: bytes) -> QueueRecord:
    durable, auto_delete, args = _shaped(decode_value(data), _QUEUE_FIELDS, bool, bool, dict)
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


def retained_record(
    vhost: str, topic: str, expires: int, header: bytes, flags: int, body: bytes, bodies: BodyCodec
) -> RetainMessage:
    if type(expires) is not int:
        raise CodecError("expiry is not an integer")
    message = decode_message(header, bodies.decode(flags, body, retained_identity(vhost, topic)))
    return RetainMessage(vhost, topic, message, expires / 1000 if expires else None)
