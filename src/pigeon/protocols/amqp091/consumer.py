"""An AMQP consumer: a core consumer that delivers through its channel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pigeon.core.consumer import UNLIMITED, Consumer

if TYPE_CHECKING:
    from pigeon.core.queue import Entry, Queue
    from pigeon.protocols.amqp091.channel import Channel


class AMQPConsumer(Consumer):
    __slots__ = ("channel", "prefetch", "unacked")

    def __init__(self, channel: Channel, tag: str, *, no_ack: bool, exclusive: bool,
                 priority: int, arguments: dict[str, Any], prefetch: int) -> None:
        super().__init__(tag, no_ack=no_ack, exclusive=exclusive, priority=priority,
                         arguments=arguments, owner=channel.handler)
        self.channel = channel
        self.prefetch = prefetch
        self.unacked = 0

    def can_deliver(self) -> bool:
        channel = self.channel
        if not channel.deliverable:
            return False
        if self.no_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        limit = channel.global_prefetch
        return not limit or len(channel.unacked) < limit

    def room(self) -> int:
        channel = self.channel
        if not channel.deliverable:
            return 0
        if self.no_ack:
            return UNLIMITED
        room = self.prefetch - self.unacked if self.prefetch else UNLIMITED
        limit = channel.global_prefetch
        return min(room, limit - len(channel.unacked)) if limit else room

    def deliver(self, queue: Queue, entry: Entry) -> None:
        self.channel.deliver(self, queue, entry)

    def deliver_many(self, queue: Queue, entries: list[Entry]) -> None:
        self.channel.deliver_many(self, queue, entries)

    def cancelled_by_broker(self) -> None:
        self.channel.consumer_cancelled(self)
