"""An AMQP consumer: a core consumer that delivers through its channel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pigeon.core.consumer import Consumer

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

    def deliver(self, queue: Queue, entry: Entry) -> None:
        self.channel.deliver(self, queue, entry)

    def cancelled_by_broker(self) -> None:
        self.channel.consumer_cancelled(self)
