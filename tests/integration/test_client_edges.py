"""Edge cases where a real client saw a different broker than RabbitMQ 3.10 (issue 11).

Each test drives a client the way an application does; those marked ``rabbitmq`` pass
against RabbitMQ 3.10 too (``PIGEON_TEST_AMQP_URL``), so the codes and reply texts
asserted here are RabbitMQ's. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import aiormq
import amqp.exceptions
import kombu
import pika
import pika.exceptions
import pytest
from aiormq.abc import DeliveredMessage
from helpers import connect

WAIT = 5.0
LOCKED = (
    "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue}' in vhost "
    "'/'. It could be originally declared on another connection or the exclusive property "
    "value does not match that of the original declaration."
)


@pytest.fixture
async def rmq(amqp_url: str) -> AsyncIterator[aiormq.abc.AbstractConnection]:
    connection = await aiormq.connect(amqp_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def other(amqp_url: str) -> AsyncIterator[aiormq.abc.AbstractConnection]:
    """A second connection: not the owner of the first one's exclusive queues."""
    connection = await aiormq.connect(amqp_url)
    try:
        yield connection
    finally:
        await connection.close()


async def ignore(message: DeliveredMessage) -> None:
    """A consumer callback for consumers whose deliveries do not matter."""


async def refused(
    exception: type[aiormq.exceptions.ChannelClosed], action: Coroutine[Any, Any, Any]
) -> str:
    """Await ``action``, expecting the channel to close with ``exception``; its reply text."""
    with pytest.raises(exception) as caught:
        async with asyncio.timeout(WAIT):
            await action
    return str(caught.value.args[0])


# --- exclusive queues: 405 for everyone but the owner, before argument equivalence -----------

Operation = Callable[[aiormq.abc.AbstractChannel, str], Coroutine[Any, Any, Any]]
OPERATIONS: dict[str, Operation] = {
    "declare-same-args": lambda ch, q: ch.queue_declare(q, exclusive=True),
    "declare-not-exclusive": lambda ch, q: ch.queue_declare(q),
    "declare-durable": lambda ch, q: ch.queue_declare(q, durable=True),
    "declare-other-arguments": lambda ch, q: ch.queue_declare(
        q, exclusive=True, arguments={"x-max-length": 5}
    ),
    "declare-invalid-arguments": lambda ch, q: ch.queue_declare(
        q, exclusive=True, arguments={"x-max-length": "many", "x-queue-type": "classic"}
    ),
    "declare-passive": lambda ch, q: ch.queue_declare(q, passive=True),
    "consume": lambda ch, q: ch.basic_consume(q, ignore),
    "bind": lambda ch, q: ch.queue_bind(q, "amq.fanout"),
    "unbind": lambda ch, q: ch.queue_unbind(q, "amq.fanout"),
    "purge": lambda ch, q: ch.queue_purge(q),
    "get": lambda ch, q: ch.basic_get(q),
    "delete": lambda ch, q: ch.queue_delete(q),
}


@pytest.mark.rabbitmq
@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_exclusive_queue_is_locked_to_other_connections(
    rmq: aiormq.abc.AbstractConnection,
    other: aiormq.abc.AbstractConnection,
    uid: str,
    operation: str,
) -> None:
    queue = f"edge-exclusive-{uid}"
    owner = await rmq.channel()
    await owner.queue_declare(queue, exclusive=True)
    await owner.queue_bind(queue, "amq.fanout")
    text = await refused(
        aiormq.exceptions.ChannelLockedResource, OPERATIONS[operation](await other.channel(), queue)
    )
    assert text == LOCKED.format(queue=queue)
    # Nothing happened to the queue: its owner still uses it.
    declared = await owner.queue_declare(queue, exclusive=True)
    assert declared.queue == queue


@pytest.mark.rabbitmq
async def test_exclusive_flag_must_match_on_redeclare(
    rmq: aiormq.abc.AbstractConnection, uid: str
) -> None:
    """A redeclare with the other exclusive flag is a different owner: 405, not 406."""
    mine, shared = f"edge-mine-{uid}", f"edge-shared-{uid}"
    channel = await rmq.channel()
    await channel.queue_declare(mine, exclusive=True)
    text = await refused(aiormq.exceptions.ChannelLockedResource, channel.queue_declare(mine))
    assert text == LOCKED.format(queue=mine)

    channel = await rmq.channel()
    await channel.queue_declare(shared, auto_delete=True)
    try:
        text = await refused(
            aiormq.exceptions.ChannelLockedResource,
            channel.queue_declare(shared, exclusive=True, auto_delete=True),
        )
        assert text == LOCKED.format(queue=shared)
    finally:
        await (await rmq.channel()).queue_delete(shared)


@pytest.mark.rabbitmq
async def test_what_binding_finds_missing_comes_before_the_lock(
    rmq: aiormq.abc.AbstractConnection, other: aiormq.abc.AbstractConnection, uid: str
) -> None:
    """A missing exchange is 404 first; unbinding what is not bound succeeds (3.x)."""
    queue = f"edge-exclusive-{uid}"
    await (await rmq.channel()).queue_declare(queue, exclusive=True)
    text = await refused(
        aiormq.exceptions.ChannelNotFoundEntity,
        (await other.channel()).queue_bind(queue, f"edge-missing-{uid}"),
    )
    assert text == f"NOT_FOUND - no exchange 'edge-missing-{uid}' in vhost '/'"
    channel = await other.channel()
    await channel.queue_unbind(queue, f"edge-missing-{uid}")
    await channel.queue_unbind(queue, "amq.direct", routing_key="never-bound")


# --- exclusive consumers: 403, and no consume-ok before it ------------------------------------


@pytest.mark.rabbitmq
@pytest.mark.parametrize("first_exclusive", [True, False], ids=["after-exclusive", "exclusive"])
async def test_exclusive_consume_conflict_on_the_same_channel(
    rmq: aiormq.abc.AbstractConnection, uid: str, first_exclusive: bool
) -> None:
    """The second consume on the same channel fails instead of answering consume-ok."""
    queue = f"edge-exclusive-use-{uid}"
    channel = await rmq.channel()
    await channel.queue_declare(queue, exclusive=True)
    await channel.basic_consume(queue, ignore, exclusive=first_exclusive)
    text = await refused(
        aiormq.exceptions.ChannelAccessRefused,
        channel.basic_consume(queue, ignore, exclusive=not first_exclusive),
    )
    assert text == f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"


@pytest.mark.rabbitmq
async def test_exclusive_consumer_keeps_other_channels_out(
    rmq: aiormq.abc.AbstractConnection, uid: str
) -> None:
    queue = f"edge-exclusive-consumer-{uid}"
    channel = await rmq.channel()
    await channel.queue_declare(queue, exclusive=True)
    await channel.basic_consume(queue, ignore, exclusive=True)
    text = await refused(
        aiormq.exceptions.ChannelAccessRefused, (await rmq.channel()).basic_consume(queue, ignore)
    )
    assert text == f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"
    declared = await (await rmq.channel()).queue_declare(queue, passive=True)
    assert declared.consumer_count == 1


# --- channel_max: how many channels are open, not their numbers -------------------------------


@pytest.mark.rabbitmq
def test_any_channel_number_under_the_negotiated_channel_max(amqp_url: str) -> None:
    # pika asks for 65535 channels and both brokers offer 2047: 2047 is negotiated.
    with connect(amqp_url) as connection:
        channel = connection.channel(channel_number=65535)
        channel.queue_declare("", exclusive=True)
        assert channel.channel_number == 65535


@pytest.mark.rabbitmq
def test_one_channel_more_than_channel_max_closes_the_connection(amqp_url: str) -> None:
    with connect(amqp_url, channel_max=2) as connection:
        numbers = [connection.channel(channel_number=n).channel_number for n in (9, 65535)]
        assert numbers == [9, 65535]
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as caught:
            connection.channel(channel_number=1)
    assert caught.value.reply_code == 530
    assert caught.value.reply_text == (
        "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
    )


@pytest.mark.rabbitmq
def test_a_closed_channel_frees_its_place(amqp_url: str) -> None:
    with connect(amqp_url, channel_max=1) as connection:
        connection.channel().close()
        channel = connection.channel()
        channel.queue_declare("", exclusive=True)
        assert channel.is_open


# --- the default exchange cannot be declared, even passively ----------------------------------


@pytest.mark.rabbitmq
@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
async def test_declaring_the_default_exchange_is_refused(
    rmq: aiormq.abc.AbstractConnection, passive: bool
) -> None:
    channel = await rmq.channel()
    text = await refused(
        aiormq.exceptions.ChannelAccessRefused,
        channel.exchange_declare("", exchange_type="direct", passive=passive, durable=True),
    )
    assert text == "ACCESS_REFUSED - operation not permitted on the default exchange"


@pytest.mark.rabbitmq
@pytest.mark.parametrize("name", ["amq.direct", "amq.never-declared"])
async def test_deleting_a_system_exchange_is_refused(
    rmq: aiormq.abc.AbstractConnection, name: str
) -> None:
    channel = await rmq.channel()
    text = await refused(aiormq.exceptions.ChannelAccessRefused, channel.exchange_delete(name))
    assert text == f"ACCESS_REFUSED - deletion of system exchange '{name}' in vhost '/' not allowed"


# --- basic.publish immediate=true: connection closed with 540 --------------------------------


@pytest.mark.rabbitmq
async def test_immediate_publish_closes_the_connection(
    rmq: aiormq.abc.AbstractConnection, uid: str
) -> None:
    channel = await rmq.channel()
    # The publish may fail or succeed, depending on whether the close beats its write.
    publish = asyncio.ensure_future(
        channel.basic_publish(b"now or never", routing_key=f"edge-{uid}", immediate=True)
    )
    with pytest.raises(aiormq.exceptions.ConnectionNotImplemented) as caught:
        async with asyncio.timeout(WAIT):
            await asyncio.shield(rmq.closing)
    await asyncio.gather(publish, return_exceptions=True)
    assert caught.value.args[0] == "NOT_IMPLEMENTED - immediate=true"


# --- a channel deleting the queue it consumes from is told, after delete-ok ------------------


@pytest.fixture
def kombu_connection(amqp_url: str) -> Iterator[kombu.Connection]:
    url = "pyamqp://" + amqp_url.split("://", 1)[1]
    with kombu.Connection(url, connect_timeout=WAIT) as connection:
        connection.connect()
        yield connection


@pytest.mark.rabbitmq
def test_deleting_a_queue_cancels_the_channels_own_consumer(
    kombu_connection: kombu.Connection, uid: str
) -> None:
    channel = kombu_connection.channel()
    queue = kombu.Queue(f"edge-own-delete-{uid}", durable=False, auto_delete=False)
    bound = queue.bind(channel)
    bound.declare()
    consumer = kombu.Consumer(channel, [bound], callbacks=[lambda body, message: None])
    consumer.consume()
    # The delete itself succeeds: basic.cancel comes after queue.delete-ok.
    bound.delete()
    with pytest.raises(amqp.exceptions.ConsumerCancelled):
        kombu_connection.drain_events(timeout=WAIT)


# --- max message size: RabbitMQ 4's 16 MiB (3.x: 128 MiB) -------------------------------------


def test_default_max_message_size_is_16_mib(connection: pika.BlockingConnection, uid: str) -> None:
    """Pigeon's default (RabbitMQ 3.10's would be 128 MiB, so not marked rabbitmq)."""
    queue = f"edge-size-{uid}"
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue, exclusive=True)  # goes, with its 16 MiB, at the end
    limit = 16 * 1024 * 1024
    channel.basic_publish("", queue, bytes(limit))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        channel.basic_publish("", queue, bytes(limit + 1))
    assert caught.value.reply_code == 406
    assert caught.value.reply_text == (
        f"PRECONDITION_FAILED - message size {limit + 1} is larger than configured max size {limit}"
    )
