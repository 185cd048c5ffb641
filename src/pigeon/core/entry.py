"""One message in one queue (:class:`Entry`), and a queue's counters.

Apart from :mod:`pigeon.core.queue` so that the modules that only hold or count
entries (ready messages, paging, consumers) need not know the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from pigeon.core.message import Message


class Entry:
    """One message in one queue."""

    __slots__ = (
        "delivery_count",
        "enqueued_at",
        "expires_at",
        "message",
        "persisted",
        "priority",
        "redelivered",
        "seq",
    )

    def __init__(
        self,
        message: Message,
        seq: int,
        priority: int,
        expires_at: float | None,
        enqueued_at: float,
    ) -> None:
        self.message = message
        self.seq = seq
        self.priority = priority
        self.expires_at = expires_at
        self.enqueued_at = enqueued_at
        self.redelivered = False
        self.persisted = False
        # Returns so far; counted by quorum queues only (x-delivery-count).
        self.delivery_count = 0


@dataclass(slots=True)
class QueueStats:
    published: int = 0
    delivered: int = 0
    # Of them, by how they went: basic.consume or basic.get, automatic or manual ack.
    consumed_auto_ack: int = 0
    consumed_manual_ack: int = 0
    got_auto_ack: int = 0
    got_manual_ack: int = 0
    get_empty: int = 0  # basic.get that found nothing
    redelivered: int = 0
    acked: int = 0
    expired: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    dead_lettered_expired: int = 0
    dead_lettered_rejected: int = 0
    dead_lettered_maxlen: int = 0
    dead_lettered_delivery_limit: int = 0

    def add(self, other: QueueStats) -> None:
        """Add another's counts to these (a deleted queue's, into the node's)."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def count_dead_letter(self, reason: str) -> None:
        self.dead_lettered += 1
        if reason == "expired":
            self.dead_lettered_expired += 1
        elif reason == "rejected":
            self.dead_lettered_rejected += 1
        elif reason == "delivery_limit":
            self.dead_lettered_delivery_limit += 1
        else:
            self.dead_lettered_maxlen += 1
