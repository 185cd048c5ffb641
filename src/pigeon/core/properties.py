"""What a message's properties may hold, checked where a message enters the broker.

A message enters through AMQP (whose codec only decodes what the wire format can
carry), the management API or the embedded API. The last two build properties from
JSON and Python values, so they are checked here before the message is routed: a
message the broker accepted must be deliverable to every consumer, and a value no
protocol can carry is refused at entry with a clear error, never found at delivery
(where it would close some consumer's connection). The limits are those of the
widest carrier today (AMQP 0-9-1 short strings, octets and field tables).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from pigeon.core.message import Properties
from pigeon.errors import PreconditionFailed

SHORT_TEXT = ("content_type", "content_encoding", "correlation_id", "reply_to", "expiration",
              "message_id", "type", "user_id", "app_id", "cluster_id")  # fmt: skip
OCTETS = ("delivery_mode", "priority")
MAX_SHORT = 255  # bytes of UTF-8
MAX_DEPTH = 32  # nested tables and arrays in headers


def check_properties(properties: Properties) -> None:
    """Raise :class:`PreconditionFailed` naming the first value no consumer could get."""
    for name in SHORT_TEXT:
        value = getattr(properties, name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise PreconditionFailed(f"property '{name}' must be a string")
        if len(value.encode("utf-8", "surrogateescape")) > MAX_SHORT:
            raise PreconditionFailed(f"property '{name}' is longer than {MAX_SHORT} bytes")
    for name in OCTETS:
        value = getattr(properties, name)
        if value is not None and (type(value) is not int or not 0 <= value <= 255):
            raise PreconditionFailed(f"property '{name}' must be an integer from 0 to 255")
    timestamp = properties.timestamp
    if timestamp is not None and (type(timestamp) is not int or not 0 <= timestamp < 2**64):
        raise PreconditionFailed("property 'timestamp' must be a non-negative integer")
    expiration = properties.expiration
    if expiration is not None and not expiration.isdigit():
        # RabbitMQ's text for an expiration that is not a number of milliseconds.
        raise PreconditionFailed(f"invalid expiration '{expiration}'")
    if properties.headers is not None:
        if not isinstance(properties.headers, Mapping):
            raise PreconditionFailed("property 'headers' must be a table")
        _check_table(properties.headers, "headers", 0)


def _check_table(table: Mapping[Any, Any], where: str, depth: int) -> None:
    for key, value in table.items():
        if not isinstance(key, str) or len(key.encode("utf-8", "surrogateescape")) > MAX_SHORT:
            raise PreconditionFailed(f"{where}: a key must be a string of at most "
                                     f"{MAX_SHORT} bytes, not {str(key)[:40]!r}")  # fmt: skip
        _check_value(value, f"{where}.{key}", depth)


def _check_value(value: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise PreconditionFailed(f"{where}: nested more than {MAX_DEPTH} deep")
    if value is None or isinstance(value, bool | str | bytes | float | datetime):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise PreconditionFailed(f"{where}: integer out of the signed 64-bit range")
    elif isinstance(value, Decimal):
        # AMQP's decimal: a scale of 0-255 digits and a signed 32-bit value.
        exponent = value.as_tuple().exponent
        scale = max(0, -exponent) if isinstance(exponent, int) else 256
        if scale > 255 or abs(int(value.scaleb(scale))) >= 2**31:
            raise PreconditionFailed(f"{where}: decimal {value} cannot be carried")
    elif isinstance(value, Mapping):
        _check_table(value, where, depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]", depth + 1)
    else:
        raise PreconditionFailed(f"{where}: a {type(value).__name__} cannot be carried")
