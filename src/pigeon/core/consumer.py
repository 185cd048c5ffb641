"""A consumer as the core sees it: something a queue can hand messages to.

A protocol subclasses :class:`Consumer` and implements delivery; the queue
decides *which* consumer gets the next message (priority, round-robin, single
active consumer) and asks each one whether it has room (prefetch, flow control,
a full socket buffer) through :meth:`Consumer.can_deliver`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pigeon.core.queue import Entry, Queue

# What :meth:`Consumer.room` says when nothing limits a consumer (no prefetch, no ack).
UNLIMITED = 1 << 30


class Consumer:
    __slots__ = ("arguments", "exclusive", "no_ack", "owner", "priority", "queue", "tag")

    def __init__(
        self,
        tag: str,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        priority: int = 0,
        arguments: dict[str, Any] | None = None,
        owner: object = None,
    ) -> None:
        self.tag = tag
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.priority = priority
        self.arguments = arguments or {}
        # The connection (or session) this consumer belongs to; opaque to the core.
        self.owner = owner
        self.queue: Queue | None = None

    def can_deliver(self) -> bool:
        """Whether a message may be handed over now."""
        return True

    def room(self) -> int:
        """How many messages may be handed over now (``UNLIMITED``: no limit). This
        default says one while :meth:`can_deliver` holds, so the queue asks again after
        each message; a subclass that can count its room says more."""
        return 1 if self.can_deliver() else 0

    def deliver(self, queue: Queue, entry: Entry) -> None:
        """Hand one message over; the queue has already removed it from ready."""
        raise NotImplementedError

    def deliver_many(self, queue: Queue, entries: list[Entry]) -> None:
        """Hand several messages over, in order; a protocol may do it in one step."""
        for entry in entries:
            self.deliver(queue, entry)

    def cancelled_by_broker(self) -> None:
        """The queue went away (deleted, expired); tell the client if the protocol can."""
