"""Field values named and printed the way RabbitMQ's error texts do (Erlang's ``~p``).

Clients and people grep for RabbitMQ's texts (``{unacceptable_type,longstr}``,
``<<"value">>``), so the vocabulary that answers in them keeps them; the core never
formats an Erlang term.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

_FIELD_TYPES: tuple[tuple[Any, str], ...] = (
    (float, "double"),
    (str, "longstr"),
    (bytes | bytearray, "binary"),
    (Decimal, "decimal"),
    (datetime, "timestamp"),
    (Mapping, "table"),
    (list | tuple, "array"),
)


def field_type(value: Any) -> str:
    """The name RabbitMQ gives the AMQP field type a decoded value most likely had.

    Integers are named as pika sends them: ``signedint`` when they fit in 32
    bits, ``long`` otherwise (the wire type itself is not kept).
    """
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    for kind, name in _FIELD_TYPES:
        if isinstance(value, kind):
            return name
    return "void" if value is None else type(value).__name__


def erlang_term(value: Any) -> str:
    """A field value as Erlang's ``~p`` prints it, for error texts."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "undefined"
    if isinstance(value, str):
        return _erlang_binary(value.encode("utf-8", "surrogateescape"), value)
    if isinstance(value, bytes | bytearray):
        return _erlang_binary(bytes(value), None)
    if isinstance(value, Mapping):
        rows = (
            f"{{{erlang_term(str(k))},{field_type(v)},{erlang_term(v)}}}" for k, v in value.items()
        )
        return "[" + ",".join(rows) + "]"
    if isinstance(value, list | tuple):
        return "[" + ",".join(f"{{{field_type(v)},{erlang_term(v)}}}" for v in value) + "]"
    if isinstance(value, datetime):
        return str(int(value.timestamp()))
    return str(value)


def _erlang_binary(raw: bytes, text: str | None) -> str:
    escaped = (text or "").replace("\\", "\\\\").replace('"', '\\"')
    if text is not None and text.isprintable():
        return f'<<"{escaped}"/utf8>>' if not text.isascii() else f'<<"{escaped}">>'
    if text is None and raw.isascii() and raw.decode().isprintable():
        return '<<"' + raw.decode().replace("\\", "\\\\").replace('"', '\\"') + '">>'
    return "<<" + ",".join(str(b) for b in raw) + ">>"
