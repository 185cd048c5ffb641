"""The protocol-neutral message (the idea of RabbitMQ's ``mc`` container, kept small).

A message is what a publisher sent: where it was published (exchange and routing
key), typed properties that mean the same in every protocol, and its body, the
``bytes`` it arrived as, never decoded. Each protocol package converts its own
properties to and from :class:`Properties` (``protocols/amqp091/convert.py``; the
HTTP and embedded APIs have their own small converters) by the rules of
``docs/messages.md``.

A message that arrived through a protocol may keep that protocol's encoding of its
properties in ``encoded`` (protocol name -> bytes, opaque to the core), so that a
delivery by the same protocol reuses the bytes it came with. Any change of the
properties (a dead letter, a delivery count) makes a new message without them.

Values that one protocol carries and no neutral field means (AMQP 0-9-1's
``cluster-id``, or a ``delivery-mode`` other than 2) travel in ``annotations``,
named ``"<protocol>.<name>"``, as ``mc_amqpl`` keeps them; only that protocol reads
them back.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from pigeon.errors import PreconditionFailed

# One header: a name and a typed value. Values are None, bool, int (Long for a
# protocol's widest integer), float, Decimal, str, bytes, datetime, lists of values,
# or dicts of str to values (nested tables).
Header = tuple[str, Any]
Headers = tuple[Header, ...]

MAX_DEPTH = 32  # nested tables and lists in a header value
# Annotations of AMQP 0-9-1 values with no neutral meaning (docs/messages.md). The
# HTTP and embedded APIs take AMQP's property names, so they set them too.
AMQP_DELIVERY_MODE = "amqp091.delivery_mode"  # a delivery-mode other than 2
AMQP_CLUSTER_ID = "amqp091.cluster_id"


class Long(int):
    """An integer a protocol carries in its widest integer type (AMQP's signed 64-bit
    ``l``), as RabbitMQ types the counts it adds to headers (``x-delivery-count``)."""

    __slots__ = ()


@dataclass(slots=True, frozen=True)
class Properties:
    """What a message carries besides its body and address, protocol-neutral.

    Immutable, so that one object is shared by every message published with the same
    properties (the AMQP converter caches them by their wire bytes).
    """

    durable: bool = False
    priority: int | None = None  # 0-255
    # Per-message TTL in milliseconds, as the publisher gave it; the absolute expiry
    # is ``Message.expires_at``.
    ttl: int | None = None
    message_id: bytes | None = None
    correlation_id: bytes | None = None
    reply_to: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    user_id: str | None = None
    timestamp: int | None = None  # seconds since the epoch
    app_id: str | None = None
    type: str | None = None
    # In publish order; a name may repeat (MQTT 5 user properties).
    headers: Headers = ()
    annotations: Headers = ()
    _table: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def header_table(self) -> dict[str, Any]:
        """The headers by name, the first of a repeated name winning (as an AMQP table
        built from them keeps it). Computed once; read-only."""
        table = self._table
        if table is None:
            table = {}
            for name, value in self.headers:
                table.setdefault(name, value)
            object.__setattr__(self, "_table", table)
        return table

    def header(self, name: str) -> Any:
        return self.header_table().get(name) if self.headers else None

    def annotation(self, name: str) -> Any:
        for key, value in self.annotations:
            if key == name:
                return value
        return None

    def copy(self, **changes: Any) -> Properties:
        return replace(self, **changes)


NO_PROPERTIES = Properties()


def set_header(headers: Headers, name: str, value: Any) -> Headers:
    """``headers`` with every entry named ``name`` replaced by one, at the first's place
    (at the end if there was none)."""
    out: list[Header] = []
    placed = False
    for entry in headers:
        if entry[0] != name:
            out.append(entry)
        elif not placed:
            out.append((name, value))
            placed = True
    if not placed:
        out.append((name, value))
    return tuple(out)


def without_header(headers: Headers, name: str) -> Headers:
    return tuple(entry for entry in headers if entry[0] != name)


@dataclass(slots=True, eq=False)
class Message:
    """One published message, shared by every queue it was routed to."""

    exchange: str
    routing_key: str
    properties: Properties
    body: bytes
    # Monotonic nanoseconds at publish; drives latency metrics.
    published_at: int = 0
    # Protocol name -> that protocol's encoded properties (opaque to the core).
    encoded: dict[str, bytes] = field(default_factory=dict)
    # When the per-message TTL runs out, on the clock of the core's scheduler (the one
    # queues expire by): the publish instant plus ``properties.ttl``, set by routing.
    expires_at: float | None = None

    @property
    def persistent(self) -> bool:
        return self.properties.durable

    @property
    def size(self) -> int:
        return len(self.body)

    def with_properties(self, properties: Properties, **changes: Any) -> Message:
        """A copy with new properties; the cached encodings no longer apply."""
        return replace(self, properties=properties, encoded={}, **changes)


# Upper bounds (bytes) of RabbitMQ's message size buckets (rabbit_msg_size_metrics);
# a last bucket, past the largest, takes the rest (+Inf).
SIZE_BOUNDS = (100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 50_000_000, 100_000_000)
SMALL = SIZE_BOUNDS[0]


@dataclass(slots=True)
class MessageSizes:
    """A histogram of the body sizes publishers sent: per bucket counts (the last is
    +Inf) and their sum. ``counts[bisect_left(SIZE_BOUNDS, size)] += 1`` adds one."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(SIZE_BOUNDS) + 1))
    total: int = 0

    def add_run(self, messages: list[Message]) -> None:
        """Count the bodies of a run of messages. A run's bodies usually fall in one
        bucket (a publisher sends one kind of message): then the sizes are only summed,
        their smallest and largest looked up once; otherwise each is counted."""
        sizes = [len(message.body) for message in messages]
        self.total += sum(sizes)
        counts = self.counts
        low = bisect_left(SIZE_BOUNDS, min(sizes))
        if low == bisect_left(SIZE_BOUNDS, max(sizes)):
            counts[low] += len(sizes)
            return
        for size in sizes:
            counts[bisect_left(SIZE_BOUNDS, size)] += 1


# -- validation at entry ----------------------------------------------------------------

_TEXT = ("reply_to", "content_type", "content_encoding", "user_id", "app_id", "type")
_IDS = ("message_id", "correlation_id")


def check_properties(properties: Properties) -> None:
    """Raise :class:`PreconditionFailed` naming the first value no protocol could carry.

    Every entry point calls it (after its own converter) before routing: a message the
    broker accepted can be delivered to every consumer, each protocol converting what
    it cannot carry as it is by the documented rules, never failing at delivery.
    """
    p = properties
    if type(p.durable) is not bool:
        raise PreconditionFailed("property 'durable' must be a boolean")
    if p.priority is not None and (type(p.priority) is not int or not 0 <= p.priority <= 255):
        raise PreconditionFailed("property 'priority' must be an integer from 0 to 255")
    if p.ttl is not None and (type(p.ttl) is not int or not 0 <= p.ttl < 2**63):
        raise PreconditionFailed("property 'ttl' must be a non-negative integer")
    if p.timestamp is not None and (type(p.timestamp) is not int or not 0 <= p.timestamp < 2**64):
        raise PreconditionFailed("property 'timestamp' must be a non-negative integer")
    for name in _IDS:
        value = getattr(p, name)
        if value is not None and type(value) is not bytes:
            raise PreconditionFailed(f"property '{name}' must be bytes")
    for name in _TEXT:
        value = getattr(p, name)
        if value is not None and type(value) is not str:
            raise PreconditionFailed(f"property '{name}' must be a string")
    for where, entries in (("headers", p.headers), ("annotations", p.annotations)):
        if type(entries) is not tuple:
            raise PreconditionFailed(f"property '{where}' must be a tuple of (name, value)")
        for entry in entries:
            if type(entry) is not tuple or len(entry) != 2 or type(entry[0]) is not str:
                raise PreconditionFailed(f"{where}: entries must be (str, value) pairs")
            check_value(entry[1], f"{where}.{entry[0]}", 0)


def check_value(value: Any, where: str, depth: int) -> None:
    """A header value the neutral model holds (and so every protocol can convert)."""
    if depth > MAX_DEPTH:
        raise PreconditionFailed(f"{where}: nested more than {MAX_DEPTH} deep")
    if value is None or isinstance(value, bool | str | bytes | float | datetime):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise PreconditionFailed(f"{where}: integer out of the signed 64-bit range")
    elif isinstance(value, Decimal):
        # The widest carrier's decimal (AMQP): a scale of 0-255 and a signed 32-bit value.
        exponent = value.as_tuple().exponent
        scale = max(0, -exponent) if isinstance(exponent, int) else 256
        if scale > 255 or abs(int(value.scaleb(scale))) >= 2**31:
            raise PreconditionFailed(f"{where}: decimal {value} cannot be carried")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PreconditionFailed(f"{where}: table keys must be strings")
            check_value(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_value(item, f"{where}[{index}]", depth + 1)
    else:
        raise PreconditionFailed(f"{where}: a {type(value).__name__} cannot be carried")


# -- AMQP 0-9-1's names ----------------------------------------------------------------
# The HTTP API (RabbitMQ's shape) and the embedded API name properties as AMQP 0-9-1's
# basic properties; these are the names and what each holds there.

BASIC_NAMES = ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
               "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
               "user_id", "app_id", "cluster_id")  # fmt: skip


def basic_values(properties: Properties) -> dict[str, Any]:
    """The properties that are set, under AMQP 0-9-1's names: ids as text, the TTL as a
    string of milliseconds, the headers as a new table (the first of a repeated name)."""
    p = properties
    mode = 2 if p.durable else p.annotation(AMQP_DELIVERY_MODE)
    values = {
        "content_type": p.content_type,
        "content_encoding": p.content_encoding,
        "headers": dict(p.header_table()) if p.headers else None,
        "delivery_mode": mode,
        "priority": p.priority,
        "correlation_id": _text(p.correlation_id),
        "reply_to": p.reply_to,
        "expiration": None if p.ttl is None else str(p.ttl),
        "message_id": _text(p.message_id),
        "timestamp": p.timestamp,
        "type": p.type,
        "user_id": p.user_id,
        "app_id": p.app_id,
        "cluster_id": p.annotation(AMQP_CLUSTER_ID),
    }
    return {name: value for name, value in values.items() if value is not None}


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "surrogateescape")
