"""basic.qos, basic.consume, basic.cancel and basic.get on a channel.

AMQP's shaping only: consumer tags, prefetch, the direct reply-to pseudo-queue
and the frames of the answers. The read permission and the exclusive-consumer
rule are the operations layer's (:class:`pigeon.operations.client.Client`).
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING

from pigeon.core.quorum import with_delivery_count
from pigeon.errors import NotAllowed, NotSupported, PreconditionFailed
from pigeon.operations.replies import REPLY_TO
from pigeon.protocols.amqp091 import convert
from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.consumer import AMQPConsumer

if TYPE_CHECKING:
    from pigeon.core.entry import Entry
    from pigeon.core.queue import Queue
    from pigeon.protocols.amqp091.channel import Channel
    from pigeon.protocols.amqp091.wire_channel import Hold


def _generated_tag(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def qos(channel: Channel, method: m.BasicQos) -> None:
    count = method.prefetch_count
    if method.global_ or channel.handler.spec_qos:
        # Channel-wide: RabbitMQ's meaning of global=true, and the spec's meaning of
        # global=false for clients that assume it (see AMQPHandler.spec_qos). A new
        # limit applies at once, to live consumers too.
        channel.global_prefetch = count
        if method.global_:
            channel.global_qos = count > 0
    else:
        # Per consumer, for consumers started after this (RabbitMQ's semantics).
        channel.consumer_prefetch = count
    channel.handler.conn.send_method(channel.number, m.BasicQosOk())
    channel.dispatch()


def consume(channel: Channel, method: m.BasicConsume) -> None:
    tag = method.consumer_tag or _generated_tag("amq.ctag-")
    if tag in channel.consumers or tag == channel.reply_consumer_tag:
        raise NotAllowed(f"attempt to reuse consumer tag '{tag}'")
    if method.queue == REPLY_TO:
        consume_replies(channel, method, tag)
        return
    queue = channel.ops.queue_to_read(channel.queue_name(method.queue))
    if channel.global_qos and queue.counts_deliveries:
        # rabbit_quorum_queue:consume/3 and rabbit_channel in 3.10: a connection error.
        raise NotSupported(
            f"queue '{queue.name}' in vhost '{queue.vhost}' does not support global qos"
        )
    arguments = dict(method.arguments or {})
    priority = arguments.get("x-priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise PreconditionFailed(
            f"invalid arg 'x-priority' for consumer '{tag}': {{unacceptable_type}}"
        )
    consumer = AMQPConsumer(
        channel,
        tag,
        no_ack=method.no_ack,
        exclusive=method.exclusive,
        priority=priority,
        arguments=arguments,
        prefetch=channel.consumer_prefetch,
    )

    def accepted() -> None:
        if not method.no_wait:
            channel.handler.conn.send_method(channel.number, m.BasicConsumeOk(consumer_tag=tag))
        channel.consumers[tag] = consumer

    try:
        channel.ops.consume(queue, consumer, exclusive=method.exclusive, accepted=accepted)
    except Exception:
        channel.consumers.pop(tag, None)
        raise


def consume_replies(channel: Channel, method: m.BasicConsume, tag: str) -> None:
    if not method.no_ack:
        raise PreconditionFailed("reply consumer cannot acknowledge")
    if channel.reply_consumer_tag is not None:
        raise PreconditionFailed("reply consumer already set")
    channel.reply_consumer_tag = tag
    channel.reply_key = channel.handler.replies.register(channel)
    if not method.no_wait:
        channel.handler.conn.send_method(channel.number, m.BasicConsumeOk(consumer_tag=tag))


def cancel(channel: Channel, method: m.BasicCancel) -> None:
    tag = method.consumer_tag
    if tag == channel.reply_consumer_tag:
        channel.stop_replies()
    consumer = channel.consumers.pop(tag, None)
    if not method.no_wait:
        channel.handler.conn.send_method(channel.number, m.BasicCancelOk(consumer_tag=tag))
    if consumer is not None and consumer.queue is not None:
        consumer.queue.remove_consumer(consumer)


def get(channel: Channel, method: m.BasicGet) -> None:
    queue = channel.ops.queue_to_read(channel.queue_name(method.queue))
    no_ack = method.no_ack
    place: list[Hold | None] = []
    if queue.get_later(no_ack, lambda entry: _got_later(channel, queue, no_ack, place, entry)):
        # The answer comes later (cluster mode: fetched from JetStream). Its place is
        # kept: frames the channel sends meanwhile wait behind it (a second hold).
        conn = channel.handler.conn
        held = conn.hold(channel.number)
        if held is not None and (behind := conn.hold(channel.number)) is not None:
            conn.release(behind)
        place.append(held)
        return
    _answer_get(channel, queue, queue.get(no_ack), no_ack, None)


def _got_later(
    channel: Channel, queue: Queue, no_ack: bool, place: list[Hold | None], entry: Entry | None
) -> None:
    handler = channel.handler
    held = place[0] if place else None
    if held is None or handler.channels.get(channel.number) is not channel:
        if entry is not None and not no_ack:
            queue.requeue([entry])  # nobody to hand it to: back to the queue
        return
    _answer_get(channel, queue, entry, no_ack, held)
    handler.want_flush()


def _answer_get(
    channel: Channel, queue: Queue, entry: Entry | None, no_ack: bool, held: Hold | None
) -> None:
    conn = channel.handler.conn
    if entry is None:
        if held is None:
            conn.send_method(channel.number, m.BasicGetEmpty())
        else:
            conn.answer_held(held, m.BasicGetEmpty())
        return
    tag = channel.next_tag
    channel.next_tag = tag + 1
    channel.stats["deliver_get"] += 1
    if not no_ack:
        channel.unacked[tag] = (entry, queue, None)
    message = entry.message
    # Quorum queues name the count on every basic.get, 0 included (rabbit_fifo_client).
    encoded = (
        convert.encode(with_delivery_count(message, entry.delivery_count).properties)
        if queue.counts_deliveries
        else channel.encoded(message)
    )
    get_ok = m.BasicGetOk(
        delivery_tag=tag,
        redelivered=entry.redelivered,
        exchange=message.exchange,
        routing_key=message.routing_key,
        message_count=queue.message_count,
    )
    if held is None:
        conn.send_content(channel.number, get_ok, encoded, message.body)
    else:
        conn.answer_held(held, get_ok, encoded, message.body)
