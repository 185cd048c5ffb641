"""The binding: a rule from an exchange to a queue or another exchange.

A binding is identified by all of its fields, arguments included, as in
RabbitMQ: binding queue ``q`` to ``x`` with key ``k`` twice is one binding, but
the same triple with other arguments is a second binding. So the arguments are
kept in a hashable form, and the top-level table is sorted so that the order a
client sent them in does not matter (RabbitMQ sorts the top-level table too;
nested tables keep their order, as RabbitMQ compares them in order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
