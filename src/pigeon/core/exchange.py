"""Exchanges and the exchange types that route for them.

An :class:`Exchange` is the entity a client declares: a name, a type, flags,
arguments and the bindings whose source it is. How it routes is delegated to
an :class:`ExchangeType` (the shape of RabbitMQ's ``rabbit_exchange_type``):
validate a binding, add it, remove it, route a key and headers to a set of
destinations. The exchange follows no exchange-to-exchange binding, alternate
exchange or CC/BCC header itself: those span exchanges, so the vhost does them.

Destinations come back as a set: a queue bound twice gets a message once.
Every ``route`` returns a new set the caller may keep and change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from pigeon.core.binding import Binding, Destination
from pigeon.core.options import ExchangeOptions
from pigeon.core.policy import Policy, alternate_exchange
from pigeon.core.topic import TopicTrie
from pigeon.errors import PreconditionFailed

# Distinct routing keys remembered per topic exchange; keys usually repeat.
TOPIC_CACHE_SIZE = 4096


class ExchangeType(ABC):
    """How one kind of exchange routes; holds only what routing needs."""

    name: ClassVar[str]

    def validate_binding(self, binding: Binding) -> None:  # noqa: B027 - most accept all
        """Raise :class:`PreconditionFailed` for a binding this type cannot hold."""

    @abstractmethod
    def add_binding(self, binding: Binding) -> None: ...

    @abstractmethod
    def remove_binding(self, binding: Binding) -> None:
        """Forget a binding that was added before."""

    @abstractmethod
    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> set[Destination]: ...


def _count_in(table: dict[Destination, int], target: Destination) -> None:
    table[target] = table.get(target, 0) + 1


def _count_out(table: dict[Destination, int], target: Destination) -> None:
    left = table.get(target, 0) - 1
    if left > 0:
        table[target] = left
    else:
        table.pop(target, None)


class DirectType(ExchangeType):
    """Routes to the bindings whose key equals the routing key (amqp0-9-1 §3.1.3.1)."""

    name: ClassVar[str] = "direct"

    def __init__(self) -> None:
        # key -> destination -> how many bindings (they differ in arguments).
        self._routes: dict[str, dict[Destination, int]] = {}

    def add_binding(self, binding: Binding) -> None:
        _count_in(self._routes.setdefault(binding.routing_key, {}), binding.target)

    def remove_binding(self, binding: Binding) -> None:
        targets = self._routes.get(binding.routing_key)
        if targets is None:
            return
        _count_out(targets, binding.target)
        if not targets:
            del self._routes[binding.routing_key]

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> set[Destination]:
        targets = self._routes.get(routing_key)
        return set(targets) if targets else set()


class FanoutType(ExchangeType):
    """Routes to every binding and ignores the key (amqp0-9-1 §3.1.3.2)."""

    name: ClassVar[str] = "fanout"

    def __init__(self) -> None:
        self._targets: dict[Destination, int] = {}

    def add_binding(self, binding: Binding) -> None:
        _count_in(self._targets, binding.target)

    def remove_binding(self, binding: Binding) -> None:
        _count_out(self._targets, binding.target)

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> set[Destination]:
        return set(self._targets)


class TopicType(ExchangeType):
    """Routes by pattern over dotted words (amqp0-9-1 §3.1.3.3); see ``core.topic``.

    Results are cached per routing key, because publishers reuse a few keys;
    any binding change clears the cache, and it holds at most
    ``TOPIC_CACHE_SIZE`` keys (the oldest go first).
    """

    name: ClassVar[str] = "topic"

    def __init__(self) -> None:
        self._trie: TopicTrie[Destination] = TopicTrie()
        self._cache: dict[str, frozenset[Destination]] = {}

    def add_binding(self, binding: Binding) -> None:
        self._trie.add(binding.routing_key, binding.target)
        self._cache.clear()

    def remove_binding(self, binding: Binding) -> None:
        self._trie.remove(binding.routing_key, binding.target)
        self._cache.clear()

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> set[Destination]:
        hit = self._cache.get(routing_key)
        if hit is None:
            hit = frozenset(self._trie.match(routing_key))
            if len(self._cache) >= TOPIC_CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
            self._cache[routing_key] = hit
        return set(hit)


class XMatch(StrEnum):
    ALL = "all"
    ANY = "any"
    ALL_WITH_X = "all-with-x"
    ANY_WITH_X = "any-with-x"


class _HeadersRule:
    __slots__ = ("match_any", "pairs", "target")

    def __init__(self, binding: Binding) -> None:
        args = binding.argument_dict
        mode = args.get("x-match")
        # An invalid x-match never gets here (validate_binding); a missing
        # one means "all", as in RabbitMQ.
        kind = XMatch(mode) if isinstance(mode, str) else XMatch.ALL
        with_x = kind in (XMatch.ALL_WITH_X, XMatch.ANY_WITH_X)
        self.match_any = kind in (XMatch.ANY, XMatch.ANY_WITH_X)
        self.target = binding.target
        # 'x-match' itself is never compared; other 'x-' arguments only for
        # the *-with-x kinds.
        self.pairs = tuple(
            (key, value)
            for key, value in args.items()
            if key != "x-match" and (with_x or not key.startswith("x-"))
        )

    def matches(self, headers: Mapping[str, Any]) -> bool:
        for key, expected in self.pairs:
            hit = key in headers and (expected is None or _same_value(expected, headers[key]))
            if hit == self.match_any:
                return hit
        # all: no pair failed (true even with no pairs); any: none matched.
        return not self.match_any


class HeadersType(ExchangeType):
    """Routes by comparing message headers with binding arguments (amqp0-9-1 §3.1.3.4).

    RabbitMQ's rules (``rabbit_exchange_type_headers``): ``x-match`` is
    ``all`` (the default), ``any``, ``all-with-x`` or ``any-with-x``; a binding
    argument whose value is void matches on the header being present; other
    values compare by value, not wire type (``1`` matches ``1.0``, a longstr
    matches the same bytes), except that booleans equal only booleans and
    nested tables and arrays must match exactly, in order. ``any`` with nothing
    to compare matches nothing; ``all`` with nothing to compare matches all.
    """

    name: ClassVar[str] = "headers"

    def __init__(self) -> None:
        self._rules: dict[Binding, _HeadersRule] = {}

    def validate_binding(self, binding: Binding) -> None:
        # The vocabulary refused a bad x-match with its own text before this (vhost.bind);
        # this is the core's own guard, for bindings that come from elsewhere.
        mode = binding.argument_dict.get("x-match", XMatch.ALL)
        if mode not in XMatch.__members__.values():
            raise PreconditionFailed(f"invalid x-match {mode!r} for a headers exchange")

    def add_binding(self, binding: Binding) -> None:
        self._rules[binding] = _HeadersRule(binding)

    def remove_binding(self, binding: Binding) -> None:
        self._rules.pop(binding, None)

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> set[Destination]:
        found: set[Destination] = set()
        data = headers or {}
        for rule in self._rules.values():
            if rule.target not in found and rule.matches(data):
                found.add(rule.target)
        return found


EXCHANGE_TYPES: dict[str, type[ExchangeType]] = {
    kind.name: kind for kind in (DirectType, FanoutType, TopicType, HeadersType)
}


def _same_value(expected: Any, actual: Any) -> bool:
    """A header equals a binding value as RabbitMQ's ``==`` on field values.

    Erlang compares the values and ignores the wire types at the top level:
    a longstr and a byte array with the same bytes are equal, as are ``1`` and
    ``1.0``; but ``true`` is not ``1``, a decimal is not an integer, and a
    timestamp is its integer seconds.
    """
    if isinstance(expected, str | bytes) or isinstance(actual, str | bytes):
        return field_bytes(expected) == field_bytes(actual)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, Decimal) or isinstance(actual, Decimal):
        return same_typed(expected, actual)
    if isinstance(expected, datetime) or isinstance(actual, datetime):
        return bool(_seconds(expected) == _seconds(actual))
    if isinstance(expected, dict | list) or isinstance(actual, dict | list):
        return same_typed(expected, actual)
    return bool(expected == actual)


def same_typed(a: Any, b: Any) -> bool:
    """Equality inside tables and arrays, where Erlang also compares the types."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            ka == kb and same_typed(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(same_typed(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Decimal):
        # A decimal is (scale, unscaled) on the wire: 1.0 and 1.00 differ.
        return bool(a.as_tuple() == b.as_tuple())
    return bool(a == b)


def field_bytes(value: Any) -> bytes | None:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return value if isinstance(value, bytes) else None


def _seconds(value: Any) -> Any:
    """A timestamp field is integer seconds in RabbitMQ; a naive datetime is UTC."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


@dataclass(slots=True)
class ExchangeStats:
    publish_in: int = 0  # messages published to this exchange
    publish_out: int = 0  # queue deliveries routed from it (one per queue reached)


class Exchange:
    """A declared exchange: its settings, its bindings and its router."""

    def __init__(
        self,
        name: str,
        type: str,
        *,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
        options: ExchangeOptions | None = None,
    ) -> None:
        """``arguments``: as declared, kept to report back; ``options``: what they say."""
        kind = EXCHANGE_TYPES.get(type)
        if kind is None:
            # The vhost answers an unknown type to the client before this.
            raise ValueError(f"unknown exchange type {type!r}")
        self.name = name
        self.type = type
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments: dict[str, Any] = dict(arguments or {})
        # The policies that apply, and the alternate exchange they leave (core.policy).
        self.policy: Policy | None = None
        self.operator_policy: Policy | None = None
        self.options = ExchangeOptions() if options is None else options
        self._alternate = self.options.alternate_exchange
        self.bindings: set[Binding] = set()
        self.stats = ExchangeStats()
        self._router: ExchangeType = kind()

    def __repr__(self) -> str:
        return f"Exchange({self.name!r}, {self.type!r}, bindings={len(self.bindings)})"

    @property
    def alternate_exchange(self) -> str | None:
        """Where messages this exchange cannot route go, if anywhere."""
        return self._alternate

    def apply_policy(self, policy: Policy | None, operator: Policy | None) -> None:
        self.policy, self.operator_policy = policy, operator
        self._alternate = alternate_exchange(self.options, policy)

    def bind(self, binding: Binding) -> bool:
        """Add a binding; False if it was already there (binding is idempotent).

        Raises :class:`PreconditionFailed` if this type rejects the binding.
        """
        if binding.source != self.name:
            raise ValueError(f"binding {binding!r} does not start at {self.name!r}")
        if binding in self.bindings:
            return False
        self._router.validate_binding(binding)
        self._router.add_binding(binding)
        self.bindings.add(binding)
        return True

    def unbind(self, binding: Binding) -> bool:
        """Remove a binding; False if there was none (the vhost decides if that is OK)."""
        if binding not in self.bindings:
            return False
        self.bindings.remove(binding)
        self._router.remove_binding(binding)
        return True

    def unbind_destination(self, destination: Destination) -> list[Binding]:
        """Remove every binding to a queue or exchange (it is being deleted)."""
        gone = [b for b in self.bindings if b.target == destination]
        for binding in gone:
            self.unbind(binding)
        return gone

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> set[Destination]:
        """The destinations bound to this exchange that the message matches."""
        return self._router.route(routing_key, headers)
