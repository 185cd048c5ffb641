"""An AMQP consumer: a core consumer that delivers through its channel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pigeon.core.consumer import UNLIMITED, Consumer

if TYPE_CHECKING:
    from pigeon.core.queue import Entry, Queue
    from pigeon.protocols.amqp091.channel import Channel


# Body bytes handed to one connection's unlimited consumers in one turn, at most (about).
TURN_OUTPUT = 1 << 20


class AMQPConsumer(Consumer):
    __slots__ = ("channel", "prefetch", "unacked")

    def __init__(
        self,
        channel: Channel,
        tag: str,
        *,
        no_ack: bool,
        exclusive: bool,
        priority: int,
        arguments: dict[str, Any],
        prefetch: int,
    ) -> None:
        super().__init__(
            tag,
            no_ack=no_ack,
            exclusive=exclusive,
            priority=priority,
            arguments=arguments,
            owner=channel.handler,
        )
        self.channel = channel
        self.prefetch = prefetch
        self.unacked = 0

    def can_deliver(self) -> bool:
        return self.room() > 0

    def room(self) -> int:
        channel = self.channel
        if not channel.deliverable:
            return 0
        if self.no_ack or not (self.prefetch or channel.global_prefetch):
            # Nothing else bounds what one turn encodes for this consumer (a backlog of
            # millions could be): stop at TURN_OUTPUT bytes; the glue dispatches again
            # once they are written (AMQPHandler.output_flushed).
            if channel.handler.conn.delivered_bytes >= TURN_OUTPUT:
                channel.handler.output_starved = True
                return 0
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
