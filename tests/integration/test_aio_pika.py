"""aio-pika against the broker: robust connection, consume, confirms, RPC and transactions.

RabbitMQ 3.10's behaviour (run with ``PIGEON_TEST_AMQP_URL`` to check). Every wait is bounded
with ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import DeliveryError, MessageProcessError, PublishError
from aio_pika.patterns import RPC

pytestmark = pytest.mark.rabbitmq

WAIT = 5.0


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    conn = await aio_pika.connect_robust(amqp_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def channel(connection: AbstractRobustConnection) -> AbstractChannel:
    return await connection.channel()


@pytest.fixture
async def cleanup(connection: AbstractRobustConnection) -> AsyncIterator[list[str]]:
    """Queue names appended here are deleted after the test (full or not)."""
    names: list[str] = []
    yield names
    channel = await connection.channel()
    for name in names:
        await channel.queue_delete(name)
    await channel.close()


async def declare(
    channel: AbstractChannel, cleanup: list[str], name: str, **kwargs: Any
) -> aio_pika.abc.AbstractQueue:
    queue = await channel.declare_queue(name, **kwargs)
    cleanup.append(name)
    return queue


async def ready_count(queue: aio_pika.abc.AbstractQueue) -> int:
    # A fresh declare: aio-pika's passive declare on a robust channel answers from its cache.
    return int((await queue.declare()).message_count or 0)


async def received(queue: aio_pika.abc.AbstractQueue, n: int) -> list[aio_pika.IncomingMessage]:
    """The next ``n`` messages of ``queue`` from its async iterator, acknowledged."""
    out: list[Any] = []
    async with asyncio.timeout(WAIT), queue.iterator() as it:
        async for message in it:
            async with message.process():
                out.append(message)
            if len(out) == n:
                break
    return out


# --- connect, declare, publish, consume ------------------------------------------------------


async def test_publish_and_consume_with_async_iterator(
    channel: AbstractChannel, cleanup: list[str], uid: str
) -> None:
    queue = await declare(channel, cleanup, f"aio-{uid}")
    for i in range(3):
        await channel.default_exchange.publish(
            aio_pika.Message(
                f"body-{i}".encode(),
                content_type="text/plain",
                headers={"index": i, "tag": "t"},
                message_id=f"id-{i}",
                correlation_id="corr",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=queue.name,
        )
    messages = await received(queue, 3)
    assert [m.body for m in messages] == [b"body-0", b"body-1", b"body-2"]
    first = messages[0]
    assert first.content_type == "text/plain"
    assert first.headers == {"index": 0, "tag": "t"}
    assert (first.message_id, first.correlation_id) == ("id-0", "corr")
    assert first.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert first.routing_key == queue.name
    assert first.redelivered is False
    assert await queue.get(fail=False) is None  # all were acknowledged


async def test_topic_exchange_routing(
    channel: AbstractChannel, cleanup: list[str], uid: str
) -> None:
    exchange = await channel.declare_exchange(
        f"aio-topic-{uid}", aio_pika.ExchangeType.TOPIC, auto_delete=True
    )
    queue = await declare(channel, cleanup, f"aio-{uid}")
    await queue.bind(exchange, routing_key="logs.*.error")
    for key in ("logs.db.error", "logs.db.info", "logs.web.error", "other.web.error"):
        await exchange.publish(aio_pika.Message(key.encode()), routing_key=key)
    messages = await received(queue, 2)
    assert [m.body for m in messages] == [b"logs.db.error", b"logs.web.error"]
    assert messages[0].exchange == exchange.name
    assert await queue.get(fail=False) is None


async def test_reject_with_requeue_redelivers(
    channel: AbstractChannel, cleanup: list[str], uid: str
) -> None:
    queue = await declare(channel, cleanup, f"aio-{uid}")
    await channel.default_exchange.publish(aio_pika.Message(b"again"), routing_key=queue.name)
    first = await queue.get(timeout=WAIT)
    assert first.redelivered is False
    await first.reject(requeue=True)
    second = await queue.get(timeout=WAIT)
    assert (second.body, second.redelivered) == (b"again", True)
    await second.ack()


async def test_reject_without_requeue_discards(
    channel: AbstractChannel, cleanup: list[str], uid: str
) -> None:
    queue = await declare(channel, cleanup, f"aio-{uid}")
    await channel.default_exchange.publish(aio_pika.Message(b"bad"), routing_key=queue.name)
    message = await queue.get(timeout=WAIT)
    await message.reject(requeue=False)
    assert await queue.get(fail=False) is None


async def test_process_context_rejects_on_exception(
    channel: AbstractChannel, cleanup: list[str], uid: str
) -> None:
    queue = await declare(channel, cleanup, f"aio-{uid}")
    await channel.default_exchange.publish(aio_pika.Message(b"boom"), routing_key=queue.name)
    message = await queue.get(timeout=WAIT)
    with pytest.raises(RuntimeError):
        async with message.process(requeue=True):
            raise RuntimeError("handler failed")
    again = await queue.get(timeout=WAIT)
    assert (again.body, again.redelivered) == (b"boom", True)
    await again.ack()


async def test_prefetch_limits_unacked_deliveries(
    connection: AbstractRobustConnection, cleanup: list[str], uid: str
) -> None:
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=2)
    queue = await declare(channel, cleanup, f"aio-{uid}")
    for i in range(5):
        await channel.default_exchange.publish(aio_pika.Message(b"%d" % i), routing_key=queue.name)
    got: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    await queue.consume(got.put)
    async with asyncio.timeout(WAIT):
        held = [await got.get(), await got.get()]
    # Two unacknowledged: the third must not come until one is acked.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await got.get()
    await held[0].ack()
    async with asyncio.timeout(WAIT):
        third = await got.get()
    assert [m.body for m in [*held, third]] == [b"0", b"1", b"2"]


# --- publisher confirms ----------------------------------------------------------------------


async def test_publisher_confirms_ack_every_publish(
    channel: AbstractChannel, cleanup: list[str], uid: str
) -> None:
    queue = await declare(channel, cleanup, f"aio-{uid}")
    confirms = await asyncio.gather(
        *(
            channel.default_exchange.publish(aio_pika.Message(b"%d" % i), routing_key=queue.name)
            for i in range(100)
        )
    )
    assert all(isinstance(c, aiormq.spec.Basic.Ack) for c in confirms)
    assert await ready_count(queue) == 100


async def test_nack_raises_delivery_error(
    channel: AbstractChannel, cleanup: list[str], uid: str
) -> None:
    queue = await declare(
        channel,
        cleanup,
        f"aio-{uid}",
        arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
    )
    await channel.default_exchange.publish(aio_pika.Message(b"fits"), routing_key=queue.name)
    with pytest.raises(DeliveryError) as info:
        await channel.default_exchange.publish(aio_pika.Message(b"over"), routing_key=queue.name)
    assert isinstance(info.value.frame, aiormq.spec.Basic.Nack)


async def test_mandatory_unroutable_raises_publish_error(
    connection: AbstractRobustConnection, cleanup: list[str], uid: str
) -> None:
    channel = await connection.channel(on_return_raises=True)
    with pytest.raises(PublishError):
        await channel.default_exchange.publish(
            aio_pika.Message(b"lost"), routing_key=f"nowhere-{uid}", mandatory=True
        )
    assert not channel.is_closed


# --- RPC pattern (direct exchange, DLX headers exchange, expiration) ------------------------


async def test_rpc_call_returns_result(
    channel: AbstractChannel, cleanup: list[str], uid: str
) -> None:
    rpc = await RPC.create(channel)
    try:

        async def multiply(*, x: int, y: int) -> int:
            return x * y

        await rpc.register(f"multiply-{uid}", multiply, auto_delete=True)
        async with asyncio.timeout(WAIT):
            results = await asyncio.gather(
                *(rpc.call(f"multiply-{uid}", kwargs={"x": i, "y": 10}) for i in range(5))
            )
        assert results == [0, 10, 20, 30, 40]
    finally:
        await rpc.close()


async def test_rpc_remote_exception_propagates(
    channel: AbstractChannel, cleanup: list[str], uid: str
) -> None:
    rpc = await RPC.create(channel, host_exceptions=False)
    try:

        async def fail(*, reason: str) -> None:
            raise ValueError(reason)

        await rpc.register(f"fail-{uid}", fail, auto_delete=True)
        with pytest.raises(ValueError, match="nope"):
            async with asyncio.timeout(WAIT):
                await rpc.call(f"fail-{uid}", kwargs={"reason": "nope"})
    finally:
        await rpc.close()


async def test_rpc_call_to_unknown_method_is_returned(
    channel: AbstractChannel, cleanup: list[str], uid: str
) -> None:
    rpc = await RPC.create(channel)
    try:
        with pytest.raises(MessageProcessError):
            async with asyncio.timeout(WAIT):
                await rpc.call(f"unknown-{uid}", kwargs={})
    finally:
        await rpc.close()


async def test_rpc_call_expires_through_dead_letter_exchange(
    channel: AbstractChannel, cleanup: list[str], uid: str
) -> None:
    # A method queue with no consumer: the call expires there, is dead-lettered to the
    # RPC's headers exchange, routed back by its "From" header, and aio-pika reports a timeout.
    rpc = await RPC.create(channel)
    try:
        await declare(
            channel, cleanup, f"idle-{uid}", arguments={"x-dead-letter-exchange": RPC.DLX_NAME}
        )
        call = asyncio.ensure_future(rpc.call(f"idle-{uid}", kwargs={}, expiration=1))
        done, _ = await asyncio.wait([call], timeout=WAIT)
        assert call in done, "the call neither got an answer nor came back expired"
        with pytest.raises(asyncio.TimeoutError):
            call.result()
    finally:
        await rpc.close()


# --- transactions ----------------------------------------------------------------------------


async def test_transaction_commit_and_rollback(
    connection: AbstractRobustConnection, cleanup: list[str], uid: str
) -> None:
    channel = await connection.channel(publisher_confirms=False)
    queue = await declare(channel, cleanup, f"aio-tx-{uid}")
    tx = channel.transaction()
    await tx.select()
    await channel.default_exchange.publish(aio_pika.Message(b"rolled back"), queue.name)
    await tx.rollback()
    await channel.default_exchange.publish(aio_pika.Message(b"committed"), queue.name)
    await tx.commit()
    messages = await received(queue, 1)
    assert [m.body for m in messages] == [b"committed"]
    assert await queue.get(fail=False) is None


async def test_transaction_context_manager_commits(
    connection: AbstractRobustConnection, cleanup: list[str], uid: str
) -> None:
    channel = await connection.channel(publisher_confirms=False)
    queue = await declare(channel, cleanup, f"aio-tx-{uid}")
    async with channel.transaction():
        for body in (b"a", b"b"):
            await channel.default_exchange.publish(aio_pika.Message(body), queue.name)
    assert [m.body for m in await received(queue, 2)] == [b"a", b"b"]


async def test_a_quorum_queue_counts_nacks_and_refuses_global_qos(
    amqp_url: str, channel: AbstractChannel, cleanup: list[str], uid: str
) -> None:
    name = f"quorum-aio-{uid}"
    queue = await declare(
        channel, cleanup, name, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await channel.default_exchange.publish(aio_pika.Message(b"m"), routing_key=name)
    counts = []
    async with asyncio.timeout(WAIT), queue.iterator() as messages:
        async for message in messages:
            counts.append((message.redelivered, message.headers.get("x-delivery-count")))
            if len(counts) == 3:
                await message.ack()
                break
            await message.nack(requeue=True)
    assert counts == [(False, None), (True, 1), (True, 2)]
    # A channel-wide prefetch limit cannot consume from it: the connection is closed.
    conn = await aio_pika.connect(amqp_url)
    limited = await conn.channel()
    await limited.set_qos(prefetch_count=10, global_=True)
    with pytest.raises(aiormq.exceptions.ConnectionNotImplemented):
        async with asyncio.timeout(WAIT):
            await (await limited.get_queue(name, ensure=False)).consume(ignore)
    await conn.close()


async def ignore(_message: aio_pika.abc.AbstractIncomingMessage) -> None:
    pass
