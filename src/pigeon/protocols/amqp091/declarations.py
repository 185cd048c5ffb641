"""exchange.* and queue.* methods: authorize, call the core, answer -ok.

Every handler calls the operations layer (:class:`pigeon.operations.client.Client`,
where the permission and dead-letter checks are made for every entry point) and
answers in AMQP's terms. An -ok that
reports a durable change goes out once the change is on disk (:mod:`.durable`);
with no-wait the change is made durable all the same, there is just no answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pigeon.core.binding import DestinationKind
from pigeon.operations.replies import REPLY_TO
from pigeon.protocols.amqp091 import durable
from pigeon.protocols.amqp091 import methods as m

if TYPE_CHECKING:
    from pigeon.protocols.amqp091.channel import Channel


def _reply(
    channel: Channel, no_wait: bool, method: m.Method, since: int, depends: bool = False
) -> None:
    """Answer (unless no-wait) once the change is on disk; see :func:`durable.reply`."""
    if not no_wait:
        durable.reply(channel, method, since, durable=depends)


def exchange_declare(channel: Channel, method: m.ExchangeDeclare) -> None:
    since = durable.position(channel)
    exchange = channel.ops.declare_exchange(
        method.exchange,
        method.type,
        passive=method.passive,
        durable=method.durable,
        auto_delete=method.auto_delete,
        internal=method.internal,
        arguments=method.arguments,
    )
    _reply(channel, method.no_wait, m.ExchangeDeclareOk(), since, exchange.durable)


def exchange_delete(channel: Channel, method: m.ExchangeDelete) -> None:
    since = durable.position(channel)
    channel.ops.delete_exchange(method.exchange, if_unused=method.if_unused)
    _reply(channel, method.no_wait, m.ExchangeDeleteOk(), since)


def exchange_bind(channel: Channel, method: m.ExchangeBind) -> None:
    since = durable.position(channel)
    channel.ops.bind(
        method.source,
        method.destination,
        DestinationKind.EXCHANGE,
        method.routing_key,
        method.arguments,
    )
    _reply(channel, method.no_wait, m.ExchangeBindOk(), since)


def exchange_unbind(channel: Channel, method: m.ExchangeUnbind) -> None:
    since = durable.position(channel)
    channel.ops.unbind(
        method.source,
        method.destination,
        DestinationKind.EXCHANGE,
        method.routing_key,
        method.arguments,
    )
    _reply(channel, method.no_wait, m.ExchangeUnbindOk(), since)


def queue_declare(channel: Channel, method: m.QueueDeclare) -> None:
    handler = channel.handler
    # The direct reply-to pseudo-queue always "exists", and a reply address does
    # while its requester consumes (RabbitMQ answers both so).
    if method.passive and (method.queue == REPLY_TO or handler.replies.exists(method.queue)):
        consumers = 0 if method.queue == REPLY_TO else 1
        _reply(
            channel,
            method.no_wait,
            m.QueueDeclareOk(queue=method.queue, consumer_count=consumers),
            durable.position(channel),
        )
        return
    since = durable.position(channel)
    declared = channel.ops.declare_queue(
        method.queue,
        passive=method.passive,
        durable=method.durable,
        exclusive=method.exclusive,
        auto_delete=method.auto_delete,
        arguments=method.arguments,
    )
    queue = declared.queue
    channel.last_queue = queue.name
    _reply(
        channel,
        method.no_wait,
        m.QueueDeclareOk(
            queue=queue.name,
            message_count=declared.message_count,
            consumer_count=declared.consumer_count,
        ),
        since,
        queue.durable and not queue.exclusive,
    )


def _bind_args(channel: Channel, queue: str, routing_key: str) -> tuple[str, str]:
    # amqp0-9-1 §1.7.2.3: an empty queue name is the last declared; an empty key too.
    name = channel.queue_name(queue)
    if not queue and not routing_key:
        routing_key = name
    return name, routing_key


def queue_bind(channel: Channel, method: m.QueueBind) -> None:
    name, key = _bind_args(channel, method.queue, method.routing_key)
    since = durable.position(channel)
    channel.ops.bind(method.exchange, name, DestinationKind.QUEUE, key, method.arguments)
    _reply(channel, method.no_wait, m.QueueBindOk(), since)


def queue_unbind(channel: Channel, method: m.QueueUnbind) -> None:
    name, key = _bind_args(channel, method.queue, method.routing_key)
    since = durable.position(channel)
    channel.ops.unbind(method.exchange, name, DestinationKind.QUEUE, key, method.arguments)
    durable.reply(channel, m.QueueUnbindOk(), since)  # queue.unbind has no no-wait


def queue_purge(channel: Channel, method: m.QueuePurge) -> None:
    name = channel.queue_name(method.queue)
    since = durable.position(channel)
    count = channel.ops.purge(name)
    _reply(channel, method.no_wait, m.QueuePurgeOk(message_count=count), since)


def queue_delete(channel: Channel, method: m.QueueDelete) -> None:
    name = channel.queue_name(method.queue)
    since = durable.position(channel)
    with channel.cancels_after_reply():
        count = channel.ops.delete_queue(name, if_unused=method.if_unused, if_empty=method.if_empty)
        _reply(channel, method.no_wait, m.QueueDeleteOk(message_count=count), since)
