"""A neutral binary serializer for what the store keeps: values, properties, messages.

Storage sits below the protocols, so it cannot reuse the AMQP field-table
codec; it also must not lose anything a field table can hold. This format is
Pigeon's own, versioned by its first byte, and round-trips exactly the Python
values the core carries in headers, arguments and documents:

======  ==========================================================
tag     value
======  ==========================================================
``N``   ``None``
``T``   ``True``; ``F`` ``False``
``i``   ``int`` of any size: u32 length + two's-complement big-endian
``L``   ``Long`` (a protocol's widest integer), the same bytes as ``i``
``f``   ``float``: 8-byte IEEE 754
``s``   ``str``: u32 length + UTF-8 (``surrogateescape``, so the
        undecodable bytes a field table may carry survive)
``b``   ``bytes`` (also ``bytearray``/``memoryview``)
``D``   ``Decimal``: its ``str``, which round-trips exactly
``d``   ``datetime``: ISO 8601, keeping the time zone or its absence
``l``   ``list`` (and ``tuple``, read back as a list): u32 count + items
``m``   ``dict`` with ``str`` keys: u32 count + (key, value) pairs
======  ==========================================================

Decoding never trusts its input: any malformed byte string raises
:class:`CodecError`, so that a damaged row is dropped, never delivered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from struct import Struct
from typing import Any

from pigeon.core.message import AMQP_CLUSTER_ID, AMQP_DELIVERY_MODE, Long, Message, Properties

FORMAT_VERSION = 1
_U32 = Struct(">I")
_F64 = Struct(">d")
# Nested tables deeper than this are refused, so that a crafted row cannot
# exhaust the stack of the thread that reads it.
_MAX_DEPTH = 64

_PROPERTY_NAMES = tuple(f.name for f in fields(Properties) if f.init)
_NAMED_ENTRIES = frozenset({"headers", "annotations"})
# The stored form of a message (all but its body), versioned and keyed by name.
MESSAGE_FORMAT = 2
# Before format 2 a message was stored as [exchange, routing key, properties] with
# AMQP 0-9-1's basic properties: Pigeon 0.1 by position, in this order (frozen), and
# later ones as a table keyed by these names.
_AMQP_PROPERTY_NAMES = ("content_type", "content_encoding", "headers", "delivery_mode",
                        "priority", "correlation_id", "reply_to", "expiration", "message_id",
                        "timestamp", "type", "user_id", "app_id", "cluster_id")  # fmt: skip
_AMQP_SAME = ("content_type", "content_encoding", "priority", "reply_to", "timestamp", "type",
              "user_id", "app_id")  # fmt: skip


class CodecError(ValueError):
    """Bytes that are not a value this module wrote."""


def encode_value(value: Any) -> bytes:
    out = bytearray([FORMAT_VERSION])
    _encode(value, out, 0)
    return bytes(out)


def decode_value(data: bytes) -> Any:
    reader = _Reader(data)
    if reader.take(1)[0] != FORMAT_VERSION:
        raise CodecError("unknown format version")
    value = reader.value(0)
    reader.finish()
    return value


def encode_message(message: Message) -> bytes:
    """Everything of a message but its body (stored apart, maybe compressed):
    ``{"format": 2, "exchange", "routing_key", "properties": {name: value}}`` with the
    properties that are set, so that a field added to (or removed from)
    :class:`Properties` later leaves rows written now readable. Headers and annotations
    are lists of ``[name, value]``; the absolute expiry is not stored (the TTL is)."""
    props = message.properties
    named: dict[str, Any] = {}
    for name in _PROPERTY_NAMES:
        value = getattr(props, name)
        if value is None or value is False or value == ():
            continue
        named[name] = [list(entry) for entry in value] if name in _NAMED_ENTRIES else value
    record = {"format": MESSAGE_FORMAT, "exchange": message.exchange,
              "routing_key": message.routing_key, "properties": named}  # fmt: skip
    return encode_value(record)


def decode_message(header: bytes, body: bytes) -> Message:
    decoded = decode_value(header)
    try:
        if isinstance(decoded, dict):
            if decoded.get("format") != MESSAGE_FORMAT:
                raise ValueError(f"unknown message format {decoded.get('format')!r}")
            exchange, routing_key = decoded["exchange"], decoded["routing_key"]
            properties = _properties(decoded["properties"])
        else:
            exchange, routing_key, values = decoded
            properties = _from_amqp(values)
        if not isinstance(exchange, str) or not isinstance(routing_key, str):
            raise TypeError("exchange and routing key must be text")
    except (TypeError, ValueError, KeyError) as exc:
        raise CodecError(f"not a stored message: {exc}") from exc
    return Message(exchange, routing_key, properties, body)


def _properties(values: Any) -> Properties:
    if not isinstance(values, dict):
        raise TypeError("properties must be a table")
    named = {}
    for name, value in values.items():
        if name not in _PROPERTY_NAMES:
            continue  # a name this version does not know came from a newer one: left out
        if name in _NAMED_ENTRIES:
            value = tuple((str(key), item) for key, item in value)
        named[name] = value
    return Properties(**named)


def _from_amqp(values: Any) -> Properties:
    """Properties stored before format 2: AMQP 0-9-1's, as its converter reads them."""
    if isinstance(values, list):  # Pigeon 0.1: values by position
        values = dict(zip(_AMQP_PROPERTY_NAMES, values, strict=True))
    if not isinstance(values, dict):
        raise TypeError("properties must be a list or a table")
    named = {name: values[name] for name in _AMQP_SAME if values.get(name) is not None}
    mode, headers = values.get("delivery_mode"), values.get("headers")
    annotations = []
    if mode is not None and mode != 2:
        annotations.append((AMQP_DELIVERY_MODE, mode))
    if values.get("cluster_id") is not None:
        annotations.append((AMQP_CLUSTER_ID, values["cluster_id"]))
    expiration = values.get("expiration")
    for name in ("message_id", "correlation_id"):
        if isinstance(values.get(name), str):
            named[name] = values[name].encode("utf-8", "surrogateescape")
    return Properties(
        durable=mode == 2,
        ttl=int(expiration) if isinstance(expiration, str) and expiration.isdigit() else None,
        headers=tuple(headers.items()) if isinstance(headers, dict) else (),
        annotations=tuple(annotations),
        **named,
    )


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError("value nested too deeply to store")
    # bool before int: bool is an int subclass.
    if value is None:
        out += b"N"
    elif value is True:
        out += b"T"
    elif value is False:
        out += b"F"
    elif type(value) is Long:
        _chunk(out, b"L", value.to_bytes((value.bit_length() + 8) // 8 or 1, "big", signed=True))
    elif isinstance(value, int):
        raw = value.to_bytes((value.bit_length() + 8) // 8 or 1, "big", signed=True)
        _chunk(out, b"i", raw)
    elif isinstance(value, float):
        out += b"f" + _F64.pack(value)
    elif isinstance(value, str):
        _chunk(out, b"s", value.encode("utf-8", "surrogateescape"))
    elif isinstance(value, bytes | bytearray | memoryview):
        _chunk(out, b"b", bytes(value))
    elif isinstance(value, Decimal):
        _chunk(out, b"D", str(value).encode("ascii"))
    elif isinstance(value, datetime):
        _chunk(out, b"d", value.isoformat().encode("ascii"))
    elif isinstance(value, list | tuple):
        out += b"l" + _U32.pack(len(value))
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, Mapping):
        out += b"m" + _U32.pack(len(value))
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"table keys must be str, not {type(key).__name__}")
            _chunk(out, b"", key.encode("utf-8", "surrogateescape"))
            _encode(item, out, depth + 1)
    else:
        raise TypeError(f"cannot store a {type(value).__name__}")


def _chunk(out: bytearray, tag: bytes, raw: bytes) -> None:
    out += tag + _U32.pack(len(raw))
    out += raw


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self.data):
            raise CodecError("truncated value")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def sized(self) -> bytes:
        (length,) = _U32.unpack(self.take(4))
        return bytes(self.take(length))

    def text(self) -> str:
        try:
            return self.sized().decode("utf-8", "surrogateescape")
        except UnicodeDecodeError as exc:  # pragma: no cover - surrogateescape accepts all
            raise CodecError(str(exc)) from exc

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise CodecError(f"{len(self.data) - self.pos} bytes after the value")

    def value(self, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise CodecError("value nested too deeply")
        tag = bytes(self.take(1))
        simple = _SIMPLE.get(tag, _MISSING)
        if simple is not _MISSING:
            return simple
        if tag == b"i":
            return int.from_bytes(self.sized(), "big", signed=True)
        if tag == b"L":
            return Long(int.from_bytes(self.sized(), "big", signed=True))
        if tag == b"f":
            return _F64.unpack(self.take(8))[0]
        if tag == b"s":
            return self.text()
        if tag == b"b":
            return self.sized()
        if tag in (b"D", b"d"):
            return self._parsed(tag)
        if tag == b"l":
            (count,) = _U32.unpack(self.take(4))
            return [self.value(depth + 1) for _ in range(self._count(count))]
        if tag == b"m":
            (count,) = _U32.unpack(self.take(4))
            return {self.text(): self.value(depth + 1) for _ in range(self._count(count))}
        raise CodecError(f"unknown tag {tag!r}")

    def _count(self, count: int) -> int:
        # Every item takes at least one byte: a count beyond the remaining
        # bytes is damage, refused before any allocation.
        if count > len(self.data) - self.pos:
            raise CodecError("item count beyond the end of the value")
        return count

    def _parsed(self, tag: bytes) -> Decimal | datetime:
        raw = self.text()
        try:
            return Decimal(raw) if tag == b"D" else datetime.fromisoformat(raw)
        except (InvalidOperation, ValueError) as exc:
            raise CodecError(f"bad {'decimal' if tag == b'D' else 'datetime'}: {raw!r}") from exc


_MISSING = object()
_SIMPLE: dict[bytes, Any] = {b"N": None, b"T": True, b"F": False}
