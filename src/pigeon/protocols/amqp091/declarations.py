"""exchange.* and queue.* methods: authorize, call the core, answer -ok.

Every handler first asks :mod:`pigeon.auth.operations` (RabbitMQ's access-control
table, shared with the management API), then changes the topology. An -ok that
reports a durable change goes out once the change is on disk (:mod:`.durable`);
with no-wait the change is made durable all the same, there is just no answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pigeon.auth import operations as access
from pigeon.core.binding import DestinationKind
from pigeon.protocols.amqp091 import durable
from pigeon.protocols.amqp091 import methods as m
from pigeon.protocols.amqp091.channel import REPLY_TO

if TYPE_CHECKING:
    from pigeon.protocols.amqp091.channel import Channel


def _reply(
    channel: Channel, no_wait: bool, method: m.Method, since: int, depends: bool = False
) -> None:
    """Answer (unless no-wait) once the change is on disk; see :func:`durable.reply`."""
    if not no_wait:
        durable.reply(channel, method, since, durable=depends)


def _type_of(channel: Channel, exchange: str) -> str | None:
    found = channel.handler.vhost.exchanges.get(exchange)
    return found.type if found is not None else None


def exchange_declare(channel: Channel, method: m.ExchangeDeclare) -> None:
    handler = channel.handler
    vhost = handler.vhost
    access.exchange_declare(
        handler.user,
        vhost.name,
        method.exchange,
        passive=method.passive,
        arguments=method.arguments,
        new=method.exchange not in vhost.exchanges,
    )
    since = durable.position(channel)
    exchange = vhost.declare_exchange(
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
    handler = channel.handler
    access.exchange_delete(handler.user, handler.vhost.name, method.exchange)
    since = durable.position(channel)
    handler.vhost.delete_exchange(method.exchange, if_unused=method.if_unused)
    _reply(channel, method.no_wait, m.ExchangeDeleteOk(), since)


def exchange_bind(channel: Channel, method: m.ExchangeBind) -> None:
    handler = channel.handler
    access.exchange_bind(
        handler.user,
        handler.vhost.name,
        method.destination,
        method.source,
        method.routing_key,
        _type_of(channel, method.source),
    )
    since = durable.position(channel)
    handler.vhost.bind(
        method.source,
        method.destination,
        DestinationKind.EXCHANGE,
        method.routing_key,
        method.arguments,
    )
    _reply(channel, method.no_wait, m.ExchangeBindOk(), since)


def exchange_unbind(channel: Channel, method: m.ExchangeUnbind) -> None:
    handler = channel.handler
    access.exchange_bind(
        handler.user,
        handler.vhost.name,
        method.destination,
        method.source,
        method.routing_key,
        _type_of(channel, method.source),
    )
    since = durable.position(channel)
    handler.vhost.unbind(
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
    vhost = handler.vhost
    access.queue_declare(
        handler.user,
        vhost.name,
        method.queue,
        passive=method.passive,
        arguments=method.arguments,
        new=method.queue not in vhost.queues,
    )
    since = durable.position(channel)
    declared = vhost.declare_queue(
        method.queue,
        owner=handler,
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
    handler = channel.handler
    name, key = _bind_args(channel, method.queue, method.routing_key)
    access.queue_bind(
        handler.user,
        handler.vhost.name,
        name,
        method.exchange,
        key,
        _type_of(channel, method.exchange),
    )
    since = durable.position(channel)
    handler.vhost.bind(
        method.exchange, name, DestinationKind.QUEUE, key, method.arguments, owner=handler
    )
    _reply(channel, method.no_wait, m.QueueBindOk(), since)


def queue_unbind(channel: Channel, method: m.QueueUnbind) -> None:
    handler = channel.handler
    name, key = _bind_args(channel, method.queue, method.routing_key)
    access.queue_bind(
        handler.user,
        handler.vhost.name,
        name,
        method.exchange,
        key,
        _type_of(channel, method.exchange),
    )
    since = durable.position(channel)
    handler.vhost.unbind(
        method.exchange, name, DestinationKind.QUEUE, key, method.arguments, owner=handler
    )
    durable.reply(channel, m.QueueUnbindOk(), since)  # queue.unbind has no no-wait


def queue_purge(channel: Channel, method: m.QueuePurge) -> None:
    handler = channel.handler
    name = channel.queue_name(method.queue)
    access.queue_purge(handler.user, handler.vhost.name, name)
    since = durable.position(channel)
    count = handler.vhost.purge_queue(name, handler)
    _reply(channel, method.no_wait, m.QueuePurgeOk(message_count=count), since)


def queue_delete(channel: Channel, method: m.QueueDelete) -> None:
    handler = channel.handler
    name = channel.queue_name(method.queue)
    access.queue_delete(handler.user, handler.vhost.name, name)
    since = durable.position(channel)
    with channel.cancels_after_reply():
        count = handler.vhost.delete_queue(
            name, owner=handler, if_unused=method.if_unused, if_empty=method.if_empty
        )
        _reply(channel, method.no_wait, m.QueueDeleteOk(message_count=count), since)
