"""AMQP 0-9-1 basic properties <-> the core's neutral message properties.

The rules (``docs/messages.md``) follow RabbitMQ's ``mc_amqpl`` where it has one:

- in: ``delivery-mode`` 2 is durable (any other value is kept as the annotation
  ``amqp091.delivery_mode``); ``expiration`` is parsed to a TTL in milliseconds
  (refused as RabbitMQ refuses it); ids become bytes; the headers table becomes
  ordered entries; ``cluster-id`` is kept as the annotation ``amqp091.cluster_id``.
- out: what a short string cannot carry (over 255 bytes) is converted, never an
  error: a longer message or correlation id goes to the ``x-message-id`` or
  ``x-correlation-id`` header, as ``mc_amqpl`` does; any other long text property
  is dropped; a header name repeated keeps its first value (a field table has no
  duplicates, amqp0-9-1 §4.2.5.5); a header entry that cannot be encoded (a name over
  255 bytes, a nested key over 255 bytes) is dropped.

A message that arrived through AMQP keeps its header-frame bytes in
``Message.encoded`` and is delivered with them: none of this runs for it.
"""

from __future__ import annotations

from typing import Any

from pigeon.core.message import AMQP_CLUSTER_ID, AMQP_DELIVERY_MODE, Message, Properties
from pigeon.operations.expiration import parse_expiration
from pigeon.protocols.amqp091.codec import BasicProperties, encode_properties
from pigeon.protocols.amqp091.tables import encode_table

PROTOCOL = "amqp091"
DELIVERY_MODE = AMQP_DELIVERY_MODE
CLUSTER_ID = AMQP_CLUSTER_ID
MAX_SHORT = 255

# Neutral properties by the wire bytes they were decoded from: publishers repeat
# the same properties, and a hit costs a dict lookup. Emptied when full.
_CACHE_ENTRIES = 512
_NEUTRAL: dict[bytes, Properties] = {}


def neutral(basic: BasicProperties, encoded: bytes) -> Properties:
    """The neutral properties of ``basic``, whose wire form is ``encoded`` (cached by
    it). Raises PreconditionFailed for an expiration RabbitMQ refuses."""
    known = _NEUTRAL.get(encoded)
    if known is None:
        known = from_basic(basic)
        if len(_NEUTRAL) >= _CACHE_ENTRIES:
            _NEUTRAL.clear()
        _NEUTRAL[encoded] = known
    return known


def from_basic(basic: BasicProperties) -> Properties:
    mode = basic.delivery_mode
    annotations: list[tuple[str, Any]] = []
    if mode is not None and mode != 2:
        annotations.append((DELIVERY_MODE, mode))
    if basic.cluster_id is not None:
        annotations.append((CLUSTER_ID, basic.cluster_id))
    headers = basic.headers
    return Properties(
        durable=mode == 2,
        priority=basic.priority,
        ttl=parse_expiration(basic.expiration),
        message_id=_id(basic.message_id),
        correlation_id=_id(basic.correlation_id),
        reply_to=basic.reply_to,
        content_type=basic.content_type,
        content_encoding=basic.content_encoding,
        user_id=basic.user_id,
        timestamp=basic.timestamp,
        app_id=basic.app_id,
        type=basic.type,
        headers=tuple(headers.items()) if headers else (),
        annotations=tuple(annotations),
    )


def _id(text: str | None) -> bytes | None:
    # Short strings are decoded with surrogateescape: any byte string round-trips.
    return None if text is None else text.encode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _short(text: str | None) -> str | None:
    """``text`` if a short string can carry it, else None (dropped, by rule)."""
    if text is None or len(text) * 4 <= MAX_SHORT:  # surely short enough
        return text
    return text if len(text.encode("utf-8", "surrogateescape")) <= MAX_SHORT else None


def to_basic(properties: Properties) -> BasicProperties:
    """The basic properties a consumer gets for ``properties``, by the rules above."""
    p = properties
    headers = _table(p.headers)
    ids: dict[str, str | None] = {}
    for name, value, header in (
        ("message_id", p.message_id, "x-message-id"),
        ("correlation_id", p.correlation_id, "x-correlation-id"),
    ):
        if value is not None and len(value) > MAX_SHORT:
            headers.setdefault(header, _longstr(value))
            ids[name] = None
        else:
            ids[name] = None if value is None else _text(value)
    mode = p.annotation(DELIVERY_MODE) if p.annotations else None
    return BasicProperties(
        content_type=_short(p.content_type),
        content_encoding=_short(p.content_encoding),
        headers=headers or None,
        delivery_mode=2 if p.durable else mode if type(mode) is int and 0 <= mode < 256 else None,
        priority=p.priority,
        correlation_id=ids["correlation_id"],
        reply_to=_short(p.reply_to),
        expiration=None if p.ttl is None else str(p.ttl),
        message_id=ids["message_id"],
        timestamp=p.timestamp,
        type=_short(p.type),
        user_id=_short(p.user_id),
        app_id=_short(p.app_id),
        cluster_id=_short(p.annotation(CLUSTER_ID)) if p.annotations else None,
    )


def _longstr(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value  # a byte array ('x'): the bytes as they are


def _table(headers: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """A field table of ``headers``, the first of a repeated name winning."""
    table: dict[str, Any] = {}
    for name, value in headers:
        table.setdefault(name, value)
    return table


def _encodable(table: dict[str, Any]) -> dict[str, Any] | None:
    """``table`` without the entries a field table cannot carry."""
    kept = {}
    for name, value in table.items():
        try:
            encode_table({name: value})
        except (ValueError, TypeError, OverflowError, RecursionError):
            continue
        kept[name] = value
    return kept or None


def encoded(message: Message) -> bytes:
    """The property bytes to deliver ``message`` with: the ones it arrived with, or
    encoded by the rules above (and kept for its next delivery)."""
    cached = message.encoded.get(PROTOCOL)
    if cached is None:
        cached = message.encoded[PROTOCOL] = encode(message.properties)
    return cached


def encode(properties: Properties) -> bytes:
    basic = to_basic(properties)
    try:
        return encode_properties(basic)
    except (ValueError, TypeError, OverflowError, RecursionError):
        # Only headers can fail here (the rest is checked at entry or shortened above).
        basic.headers = _encodable(basic.headers or {})
        return encode_properties(basic)
