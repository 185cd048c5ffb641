"""What a quorum queue adds to a queue: delivery counts and at-least-once dead letters.

Semantics are RabbitMQ 3.10's ``rabbit_fifo``: every return of a delivered
message (nack or reject with requeue, a channel or connection closing with it
unacknowledged, a cancelled consumer's in-flight messages) counts one
delivery; a message returned more often than its delivery limit is
dead-lettered with reason ``delivery_limit`` (dropped without a dead-letter
exchange). Deliveries carry the count in an ``x-delivery-count`` header.

On one node a quorum queue is kept by this node alone (replication factor 1);
cluster mode will replicate it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pigeon.core.message import Message
from pigeon.core.ports import Scheduler, TimerHandle

if TYPE_CHECKING:
    from pigeon.core.queue import Entry

DELIVERY_COUNT = "x-delivery-count"
# The header a stored copy carries its count in: a name no publisher uses, so that a
# client's own x-delivery-count header is never mistaken for it.
STORED_COUNT = "x-pigeon-delivery-count"
# Seconds between attempts to route at-least-once dead letters nobody took.
RETRY_INTERVAL = 1.0


def with_delivery_count(message: Message, count: int, header: str = DELIVERY_COUNT) -> Message:
    """A copy whose headers carry ``count`` (delivered, or stored for a restart)."""
    headers = dict(message.properties.headers or {})
    headers[header] = count
    return message.with_properties(message.properties.copy(headers=headers))


def stored_delivery_count(message: Message) -> tuple[Message, int]:
    """A recovered message as published, and the count its stored copy carried."""
    headers = message.properties.headers
    if not headers or STORED_COUNT not in headers:
        return message, 0
    count = headers[STORED_COUNT]
    rest = {key: value for key, value in headers.items() if key != STORED_COUNT}
    message = message.with_properties(message.properties.copy(headers=rest or None))
    return message, count if isinstance(count, int) else 0


class PendingDeadLetters:
    """At-least-once dead letters that no target queue took yet (rabbit_fifo_dlx's
    discards): they stay in their queue, and in the store if persistent, and are routed
    again every ``RETRY_INTERVAL`` seconds until every target accepts them."""

    __slots__ = ("_entries", "_route", "_scheduler", "_timer")

    def __init__(self, scheduler: Scheduler, route: Callable[[Entry, str], bool]) -> None:
        self._scheduler = scheduler
        # True once the message is routed and no target refused it.
        self._route = route
        self._entries: list[tuple[Entry, str]] = []
        self._timer: TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return sum(len(entry.message.body) for entry, _ in self._entries)

    def add(self, entry: Entry, reason: str) -> None:
        if not self._route(entry, reason):
            self._entries.append((entry, reason))
            self._schedule()

    def _schedule(self) -> None:
        if self._timer is None and self._entries:
            self._timer = self._scheduler.call_later(RETRY_INTERVAL, self._retry)

    def _retry(self) -> None:
        self._timer = None
        pending, self._entries = self._entries, []
        for entry, reason in pending:
            self.add(entry, reason)

    def clear(self) -> list[Entry]:
        """The queue is deleted: stop retrying; returns what was pending."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._entries = self._entries, []
        return [entry for entry, _ in pending]
