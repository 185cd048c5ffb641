"""The binding: a rule from an exchange to a queue or another exchange.

A binding is identified by all of its fields, arguments included, as in
RabbitMQ: binding queue ``q`` to ``x`` with key ``k`` twice is one binding, but
the same triple with other arguments is a second binding. So the arguments are
kept in a hashable form, and the top-level table is sorted so that the order a
client sent them in does not matter (RabbitMQ sorts the top-level table too;
nested tables keep their order, as RabbitMQ compares them in order).

The field-value helpers here (``field_type``, ``erlang_term``) name and print
argument values the way RabbitMQ's error texts do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class DestinationKind(StrEnum):
    QUEUE = "queue"
    EXCHANGE = "exchange"


Destination = tuple[DestinationKind, str]


@dataclass(frozen=True, slots=True)
class FrozenTable:
    """A nested field table in hashable form; keeps the order it was sent in."""

    items: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class TypedValue:
    """A bool, float or decimal, kept apart from ints it equals in Python.

    In AMQP ``true``, ``1``, ``1.0`` and ``decimal 1`` are four different
    field values, so two bindings differing only in them are two bindings;
    Python's ``True == 1 == 1.0`` would make them one.
    """

    kind: type
    value: Any


def freeze(value: Any) -> Any:
    """A hashable equivalent of a field value; :func:`thaw` reverses it."""
    if isinstance(value, Mapping):
        return FrozenTable(tuple((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, bool | float | Decimal):
        return TypedValue(type(value), value)
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def thaw(value: Any) -> Any:
    """The plain field value (dicts, lists, scalars) of a frozen value."""
    if isinstance(value, FrozenTable):
        return {k: thaw(v) for k, v in value.items}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    if isinstance(value, TypedValue):
        return value.value
    return value


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


@dataclass(frozen=True, slots=True)
class Binding:
    source: str
    destination: str
    destination_kind: DestinationKind
    routing_key: str
    arguments: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def make(
        cls,
        source: str,
        destination: str,
        kind: DestinationKind | str,
        routing_key: str,
        arguments: Mapping[str, Any] | None = None,
    ) -> Binding:
        """A binding with its arguments normalised to a hashable, sorted tuple."""
        frozen = tuple(sorted((str(k), freeze(v)) for k, v in (arguments or {}).items()))
        return cls(source, destination, DestinationKind(kind), routing_key, frozen)

    @property
    def argument_dict(self) -> dict[str, Any]:
        """The arguments as a plain dict, as a client would have sent them."""
        return {k: thaw(v) for k, v in self.arguments}

    @property
    def target(self) -> Destination:
        """Where this binding routes to, as exchange types return it."""
        return (self.destination_kind, self.destination)
