"""One AMQP channel: consumers, deliveries in flight, acks, confirms and transactions.

The topology methods (exchange.*, queue.*) are in :mod:`.declarations`, the
consumer methods (basic.qos/consume/cancel/get) in :mod:`.consuming`, confirm
and tx modes in :mod:`.modes`; this module is the message path: publish ->
core -> deliver -> ack. Every check of a request is the operations layer's
(:class:`pigeon.operations.client.Client`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING

from pigeon.core.message import Message, Properties
from pigeon.core.quorum import with_delivery_count
from pigeon.errors import (
    NotFound,
    NotSupported,
    PigeonError,
    PreconditionFailed,
)
from pigeon.operations.client import Client
from pigeon.operations.replies import REPLY_TO, REPLY_TO_PREFIX
from pigeon.protocols.amqp091 import convert
from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.codec import BasicProperties, encode_properties
from pigeon.protocols.amqp091.consumer import AMQPConsumer
from pigeon.protocols.amqp091.modes import Transaction
from pigeon.protocols.amqp091.replies import ReplyCode

if TYPE_CHECKING:
    from pigeon.core.exchange import Exchange
    from pigeon.core.queue import Entry, Queue
    from pigeon.protocols.amqp091.adapter import AMQPHandler
    from pigeon.protocols.amqp091.connection import ContentReceived, Hold

PROTOCOL = convert.PROTOCOL

# delivery tag -> (entry, queue, consumer or None for basic.get)
Unacked = dict[int, tuple["Entry", "Queue", AMQPConsumer | None]]
_ENTRY, _QUEUE, _CONSUMER = itemgetter(0), itemgetter(1), itemgetter(2)


class Channel:
    def __init__(self, handler: AMQPHandler, number: int) -> None:
        self.handler = handler
        # Channels open after connection.open, and a connection keeps its vhost.
        self.vhost = handler.vhost
        self.number = number
        self.consumers: dict[str, AMQPConsumer] = {}
        self.unacked: Unacked = {}
        self.next_tag = 1
        self.consumer_prefetch = 0
        self.global_prefetch = 0
        # basic.qos global=true with a limit: quorum queues refuse consumers then.
        self.global_qos = False
        self.flow_active = True
        self.last_queue = ""
        self.confirming = False
        self.publish_seq = 0
        self.confirms: list[tuple[int, bool]] = []
        self.tx: Transaction | None = None
        # The last publish's property bytes and their neutral form: the connection's
        # cache hands the same bytes object for repeated properties, so an identity
        # check finds them again without a call (see publish_cache).
        self.last_props: bytes | None = None
        self.last_neutral = Properties()
        self.reply_consumer_tag: str | None = None
        self.reply_key: str | None = None
        self.closing = False
        # Tags of consumers cancelled while this channel deletes their queue: told after
        # queue.delete-ok (see cancels_after_reply); None when not deleting.
        self._held_cancels: list[str] | None = None
        # Replies of this channel waiting for the disk (protocols.amqp091.durable): its
        # consumers get nothing meanwhile, so deliveries do not pile up behind them.
        self.waiting = 0
        self.turn_hold: Hold | None = None  # the hold this turn's replies go behind
        # The operations layer, as this connection's user: every check is made there.
        self.ops = Client(handler.context, self.vhost, handler.user, owner=handler)
        # Counters for the management API's channel message_stats.
        self.stats: dict[str, int] = {"publish": 0, "deliver_get": 0, "ack": 0, "redeliver": 0}

    def extras(self) -> dict[str, object]:
        """AMQP's own fields of this channel, for the management API's listing."""
        return {
            "prefetch_count": self.consumer_prefetch,
            "global_prefetch_count": self.global_prefetch,
            "confirm": self.confirming,
            "transactional": self.tx is not None,
        }

    @property
    def deliverable(self) -> bool:
        return (
            self.flow_active
            and not self.closing
            and not self.waiting
            and not self.handler.output_paused
        )

    # -- publish ------------------------------------------------------------

    def publish_run(self, run: Sequence[ContentReceived]) -> None:
        """Publishes received one after the other on this channel, in order.

        Consecutive plain ones (same exchange and routing key, no headers, no
        expiration) are routed once and enqueued together (VirtualHost.publish_run);
        a refused one closes the channel after those before it went through.
        """
        same: list[tuple[m.BasicPublish, Message, int]] = []  # with their confirm numbers
        exchange: Exchange | None = None
        for event in run:
            method = event.method
            assert isinstance(method, m.BasicPublish)
            try:
                message, target = self._accept(
                    method, event.properties, event.body, event.encoded_props
                )
                if self.tx is not None:
                    self.tx.publishes.append((method, message))
                    continue
                properties = message.properties
                plain = not properties.headers and properties.ttl is None
                if same and (
                    not plain
                    or target is not exchange
                    or method.routing_key != same[0][0].routing_key
                ):
                    routing, same = same, []
                    self._route_same(routing, exchange)
                if plain:
                    same.append((method, message, self.publish_seq))
                    exchange = target
                else:
                    self.route(method, message, target)
            except PigeonError as error:
                # What came before it is published; the channel closes (RabbitMQ drops
                # what follows on a closing channel).
                self._route_same(same, exchange)
                self.handler.fail(error, self.number, method)
                return
        self._route_same(same, exchange)

    def _accept(
        self,
        method: m.BasicPublish,
        properties: BasicProperties,
        body: bytes,
        encoded_props: bytes,
    ) -> tuple[Message, Exchange]:
        """Check a publish (the operations layer's rules, then AMQP's reply-to) and make
        its message; raises what the channel is closed with."""
        if method.immediate:
            # RabbitMQ 3+ dropped immediate delivery and closes the connection (540),
            # before looking at anything else.
            raise NotSupported("immediate=true")
        ops = self.ops
        name = method.exchange
        exchange = self.vhost.exchanges.get(name)
        if (
            exchange is None
            or ops.may_publish.get(name) is not exchange
            or properties.user_id is not None
        ):
            # (else every check passed for this exchange already: see Client.may_publish)
            exchange = ops.publish_target(name, method.routing_key, properties.user_id)
        if properties.reply_to == REPLY_TO:
            if self.reply_key is None:
                raise PreconditionFailed("fast reply consumer does not exist")
            properties = properties.copy(reply_to=self.reply_key)
            encoded_props = encode_properties(properties)
        if encoded_props is self.last_props:
            neutral = self.last_neutral
        else:
            neutral = convert.neutral(properties, encoded_props)
            self.last_props, self.last_neutral = encoded_props, neutral
        message = Message(
            method.exchange,
            method.routing_key,
            neutral,
            body,
            time.monotonic_ns(),
            {PROTOCOL: encoded_props},
        )
        if self.confirming:
            self.publish_seq += 1
        return message, exchange

    def _route_same(
        self, same: list[tuple[m.BasicPublish, Message, int]], exchange: Exchange | None
    ) -> None:
        """Route publishes that share an exchange and a routing key (see publish_run)."""
        if not same:
            return
        first = same[0][0]
        if (
            exchange is None
            or len(same) == 1
            or first.mandatory
            or (first.exchange == "" and first.routing_key.startswith(REPLY_TO_PREFIX))
            or not self.vhost.publish_run([message for _, message, _ in same], exchange)
        ):
            for method, message, seq in same:  # the general path, one at a time
                self.route(method, message, exchange, seq)
            return
        self.stats["publish"] += len(same)
        if self.confirming:
            self.vhost.stats.received_confirm += len(same)
            self.vhost.stats.confirmed += len(same)
            self.confirms.extend((seq, True) for _, _, seq in same)

    def route(
        self,
        method: m.BasicPublish,
        message: Message,
        exchange: Exchange | None = None,
        seq: int | None = None,
    ) -> None:
        """Route a message to its queues and settle the publisher's confirm.

        ``exchange`` is the one publish looked up; a transaction's commit passes none,
        and the exchange may have been deleted since the publish. ``seq``: its confirm
        number when it is not the last one given (a run of publishes).
        """
        handler = self.handler
        vhost = self.vhost
        self.stats["publish"] += 1
        if method.exchange == "" and method.routing_key.startswith(REPLY_TO_PREFIX):
            routed, refused = handler.replies.deliver(method.routing_key, message), False
        else:
            if exchange is None:
                exchange = vhost.exchanges.get(method.exchange)
            routed, refused = (0, False) if exchange is None else vhost.publish(message, exchange)
        stats = vhost.stats
        if not routed:
            if method.mandatory:
                stats.unroutable_returned += 1
                handler.conn.send_content(
                    self.number,
                    m.BasicReturn(
                        reply_code=ReplyCode.NO_ROUTE,
                        reply_text="NO_ROUTE",
                        exchange=method.exchange,
                        routing_key=method.routing_key,
                    ),
                    self.encoded(message),
                    message.body,
                )
            else:
                stats.unroutable_dropped += 1
        if self.confirming:
            stats.received_confirm += 1
            # Sent in a batch once this turn's events are handled (AMQPHandler._confirm).
            if not refused:
                stats.confirmed += 1
            self.confirms.append((self.publish_seq if seq is None else seq, not refused))

    encoded = staticmethod(convert.encoded)

    def send_confirms(self, confirms: list[tuple[int, bool]]) -> None:
        """Send confirms, in order, one ``multiple`` ack per run of successes."""
        send = self.handler.conn.send_method
        run_end = 0
        run_length = 0
        for seq, ok in confirms:
            if ok:
                run_end = seq
                run_length += 1
                continue
            if run_length:
                send(self.number, m.BasicAck(delivery_tag=run_end, multiple=run_length > 1))
                run_length = 0
            send(self.number, m.BasicNack(delivery_tag=seq, multiple=False, requeue=False))
        if run_length:
            send(self.number, m.BasicAck(delivery_tag=run_end, multiple=run_length > 1))

    # -- deliver ------------------------------------------------------------------

    def deliver(self, consumer: AMQPConsumer, queue: Queue, entry: Entry) -> None:
        self.deliver_many(consumer, queue, [entry])

    def deliver_many(self, consumer: AMQPConsumer, queue: Queue, entries: list[Entry]) -> None:
        """:meth:`deliver` for a batch: the same frames, one call down the stack."""
        tag = self.next_tag
        self.next_tag = tag + len(entries)
        stats = self.stats
        stats["deliver_get"] += len(entries)
        track = not consumer.no_ack
        if track:
            consumer.unacked += len(entries)
        unacked = self.unacked
        deliveries = []
        for entry in entries:
            message = entry.message
            encoded = message.encoded.get(PROTOCOL)
            if encoded is None:
                encoded = self.encoded(message)
            redelivered = entry.redelivered
            if redelivered:
                stats["redeliver"] += 1
                if entry.delivery_count:  # a quorum queue's return: name the count
                    encoded = convert.encode(
                        with_delivery_count(message, entry.delivery_count).properties
                    )
            if track:
                unacked[tag] = (entry, queue, consumer)
            deliveries.append(
                (tag, redelivered, message.exchange, message.routing_key, encoded, message.body)
            )
            tag += 1
        handler = self.handler
        handler.conn.send_deliveries(self.number, consumer.tag, deliveries)
        handler.want_flush()

    def deliver_reply(self, message: Message) -> None:
        """Direct reply-to: straight to this channel's reply consumer, no queue."""
        tag = self.next_tag
        self.next_tag = tag + 1
        assert self.reply_consumer_tag is not None
        self.handler.conn.send_deliver(
            self.number,
            self.reply_consumer_tag,
            tag,
            False,
            message.exchange,
            message.routing_key,
            self.encoded(message),
            message.body,
        )
        self.handler.want_flush()

    def consumer_cancelled(self, consumer: AMQPConsumer) -> None:
        """The queue went away: forget the consumer and tell the client if it listens."""
        if self.consumers.pop(consumer.tag, None) is None:
            return
        if not self.handler.client_capability("consumer_cancel_notify"):
            return
        if self._held_cancels is not None:
            self._held_cancels.append(consumer.tag)
        else:
            self._send_cancel(consumer.tag)

    def _send_cancel(self, tag: str) -> None:
        self.handler.conn.send_method(self.number, m.BasicCancel(consumer_tag=tag, no_wait=True))
        self.handler.want_flush()

    @contextmanager
    def cancels_after_reply(self) -> Iterator[None]:
        """Around queue.delete and its reply: this channel's own consumers of the queue
        hear basic.cancel after queue.delete-ok, as from RabbitMQ (whose queue tells the
        channel once it has answered). kombu, told before, raises ConsumerCancelled
        from the delete itself instead of from its consumer."""
        self._held_cancels = []
        try:
            yield
        finally:
            held, self._held_cancels = self._held_cancels, None
            for tag in held:
                self._send_cancel(tag)

    # -- consumers --------------------------------------------------------------------

    def stop_replies(self) -> None:
        if self.reply_key is not None:
            self.handler.replies.unregister(self.reply_key)
        self.reply_consumer_tag = self.reply_key = None

    def queue_name(self, name: str) -> str:
        """An empty queue name means the last one declared on this channel (spec)."""
        if name:
            return name
        if not self.last_queue:
            raise NotFound("no previously declared queue")
        return self.last_queue

    # -- settle ------------------------------------------------------------------------

    def take(
        self, delivery_tag: int, multiple: bool
    ) -> list[tuple[Entry, Queue, AMQPConsumer | None]]:
        """Remove and return the deliveries an ack/nack/reject names."""
        unacked = self.unacked
        if multiple:
            if unacked and (delivery_tag == 0 or next(reversed(unacked)) <= delivery_tag):
                taken = list(unacked.values())  # all of them: the usual end of a window
                unacked.clear()
                return taken
            count = 0
            for tag in unacked:  # tags are in ascending order
                if tag > delivery_tag:
                    break
                count += 1
            if not count:
                if delivery_tag == 0:
                    return []
                raise PreconditionFailed(f"unknown delivery tag {delivery_tag}")
            return list(map(unacked.pop, list(islice(unacked, count))))
        item = unacked.pop(delivery_tag, None)
        if item is None:
            raise PreconditionFailed(f"unknown delivery tag {delivery_tag}")
        return [item]

    def settle(self, delivery_tag: int, multiple: bool, *, ack: bool, requeue: bool) -> None:
        if self.tx is not None:
            if not multiple and delivery_tag not in self.unacked:
                raise PreconditionFailed(f"unknown delivery tag {delivery_tag}")
            self.tx.settlements.append((delivery_tag, multiple, ack, requeue))
            return
        self.apply_settlement(self.take(delivery_tag, multiple), ack=ack, requeue=requeue)

    def apply_settlement(
        self, taken: list[tuple[Entry, Queue, AMQPConsumer | None]], *, ack: bool, requeue: bool
    ) -> None:
        if not taken:
            self.dispatch()
            return
        if ack:
            self.stats["ack"] += len(taken)
            # (map and itemgetter: no bytecode per message)
            queues = set(map(_QUEUE, taken))
            consumers = set(map(_CONSUMER, taken))
            if len(queues) == 1 and len(consumers) == 1:
                # The usual multiple ack: one consumer's deliveries from one queue.
                consumer = consumers.pop()
                if consumer is not None:
                    consumer.unacked -= len(taken)
                Client.settle(queues.pop(), list(map(_ENTRY, taken)), ack=True, requeue=False)
                self.dispatch()
                return
        by_queue: dict[Queue, list[Entry]] = {}
        for entry, queue, consumer in taken:
            if consumer is not None:
                consumer.unacked -= 1
            entries = by_queue.get(queue)
            if entries is None:
                by_queue[queue] = [entry]
            else:
                entries.append(entry)
        for queue, entries in by_queue.items():
            Client.settle(queue, entries, ack=ack, requeue=requeue)
        self.dispatch()

    def dispatch(self) -> None:
        """Room opened up on this channel: let its queues deliver."""
        for consumer in list(self.consumers.values()):
            if consumer.queue is not None:
                consumer.queue.dispatch()

    def recover(self) -> None:
        self.apply_settlement(self.take(0, True), ack=False, requeue=True)

    def flow(self, active: bool) -> None:
        if not active:
            # RabbitMQ stopped honouring channel.flow from clients (use basic.qos).
            raise NotSupported("active=false")
        self.flow_active = active
        self.handler.conn.send_method(self.number, m.ChannelFlowOk(active=active))
        if active:
            self.dispatch()

    # -- teardown --------------------------------------------------------------------------

    def close(self) -> None:
        """The channel is gone: requeue what was in flight, then cancel consumers.

        Requeue first, so a queue hands the returned messages (at their original
        place) to the next consumer before anything published later.
        """
        self.closing = True
        self.stop_replies()
        requeues: dict[Queue, list[Entry]] = {}
        for entry, queue, _consumer in self.take(0, True):
            requeues.setdefault(queue, []).append(entry)
        for queue, entries in requeues.items():
            queue.requeue(entries)
        consumers, self.consumers = self.consumers, {}
        for consumer in consumers.values():
            if consumer.queue is not None:
                consumer.queue.remove_consumer(consumer)
