"""The protocol-neutral message.

A message is what a publisher sent: where it was published, its properties and
its body. The body is the ``bytes`` it arrived as and is never decoded. A
protocol may cache its own encoding of the properties in ``encoded`` so that a
message delivered by the protocol it arrived through is not encoded again
(the idea of RabbitMQ's ``mc`` container, kept small).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field, replace
from typing import Any

Headers = dict[str, Any]


class Long(int):
    """An integer a protocol carries in its widest integer type (AMQP's signed 64-bit
    ``l``), as RabbitMQ types the counts it adds to headers (``x-delivery-count``)."""

    __slots__ = ()


@dataclass(slots=True)
class Properties:
    """Message properties; field meanings follow AMQP 0-9-1 basic properties."""

    content_type: str | None = None
    content_encoding: str | None = None
    headers: Headers | None = None
    delivery_mode: int | None = None
    priority: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    expiration: str | None = None
    message_id: str | None = None
    timestamp: int | None = None
    type: str | None = None
    user_id: str | None = None
    app_id: str | None = None
    cluster_id: str | None = None

    def copy(self, **changes: Any) -> Properties:
        return replace(self, **changes)


@dataclass(slots=True, eq=False)
class Message:
    """One published message, shared by every queue it was routed to."""

    exchange: str
    routing_key: str
    properties: Properties
    body: bytes
    # Monotonic nanoseconds at publish; drives latency metrics and TTL.
    published_at: int = 0
    # Protocol name -> that protocol's encoded properties (opaque to the core).
    encoded: dict[str, bytes] = field(default_factory=dict)

    @property
    def persistent(self) -> bool:
        return self.properties.delivery_mode == 2

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
        """Count the bodies of a run of messages: small ones (the usual) are only
        tallied in the loop, which costs a few tens of nanoseconds a message."""
        counts = self.counts
        small = total = 0
        for message in messages:
            size = len(message.body)
            total += size
            if size <= SMALL:
                small += 1
            else:
                counts[bisect_left(SIZE_BOUNDS, size)] += 1
        counts[0] += small
        self.total += total
