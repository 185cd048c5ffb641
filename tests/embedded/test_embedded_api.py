"""The in-process API: publish, get, consume, declare, inspect and wait, without a client."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import aio_pika
import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from pigeon.broker import Broker
from pigeon.config import Config
from pigeon.embedded import QueueInfo, ReceivedMessage
from pigeon.errors import NotFound, PreconditionFailed


@pytest.fixture
def pika_channel(thread_broker: Broker) -> Iterator[BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(thread_broker.amqp_url))
    try:
        yield connection.channel()
    finally:
        connection.close()


async def test_publish_routes_through_bindings_and_get_returns_the_message(
    broker: Broker, name: str
) -> None:
    await broker.declare_exchange("orders", "topic")
    await broker.declare_queue(name)
    await broker.bind(name, "orders", "order.*")

    reached = await broker.publish(
        "orders",
        "order.created",
        b'{"id": 1}',
        content_type="application/json",
        headers={"tenant": "a"},
        delivery_mode=2,
    )
    assert reached == 1
    assert await broker.publish("orders", "invoice.created", b"x") == 0

    message = await broker.get(name)
    assert message is not None
    assert (message.body, message.routing_key, message.exchange) == (
        b'{"id": 1}',
        "order.created",
        "orders",
    )
    assert message.properties.content_type == "application/json"
    assert message.properties.headers == {"tenant": "a"}
    assert message.properties.delivery_mode == 2
    assert not message.redelivered
    assert broker.queue(name).unacked == 1
    await message.ack()
    info = broker.queue(name)
    assert (info.ready, info.unacked, info.stats.acked) == (0, 0, 1)
    assert await broker.get(name) is None


async def test_str_bodies_are_utf8_and_expiration_may_be_an_int(broker: Broker, name: str) -> None:
    await broker.declare_queue(name)
    await broker.publish("", name, "grüß", expiration=60000)
    [queued] = broker.queue(name).messages
    assert queued.body == "grüß".encode()
    assert queued.properties.expiration == "60000"


async def test_declare_queue_with_empty_name_generates_one(broker: Broker) -> None:
    generated = await broker.declare_queue("")
    assert generated.startswith("amq.gen-")
    assert generated in [q.name for q in broker.queues()]


async def test_reject_requeues_or_dead_letters(broker: Broker, name: str) -> None:
    dead = f"{name}-dead"
    await broker.declare_exchange("dlx", "fanout")
    await broker.declare_queue(dead)
    await broker.bind(dead, "dlx")
    await broker.declare_queue(name, arguments={"x-dead-letter-exchange": "dlx"})
    await broker.publish("", name, b"job")

    first = await broker.get(name)
    assert first is not None
    await first.reject(requeue=True)
    again = await broker.get(name)
    assert again is not None
    assert again.redelivered
    await again.reject()

    assert broker.queue(name).total == 0
    [letter] = broker.queue(dead).messages
    assert letter.body == b"job"
    assert letter.properties.headers is not None
    assert letter.properties.headers["x-death"][0]["reason"] == "rejected"


async def test_a_message_is_settled_once(broker: Broker, name: str) -> None:
    await broker.declare_queue(name)
    await broker.publish("", name, b"x")
    message = await broker.get(name)
    assert message is not None
    await message.ack()
    with pytest.raises(RuntimeError, match="already"):
        await message.ack()
    await broker.publish("", name, b"y")
    unacked = await broker.get(name, no_ack=True)
    assert unacked is not None and unacked.settled
    assert broker.queue(name).total == 0


async def test_a_dropped_unsettled_message_returns_to_its_queue(broker: Broker, name: str) -> None:
    await broker.declare_queue(name)
    await broker.publish("", name, b"x")
    message = await broker.get(name)
    assert broker.queue(name).unacked == 1
    del message
    info = await broker.wait_for(lambda b: b.queue(name).ready == 1 and b.queue(name))
    assert info.unacked == 0
    assert info.messages[0].redelivered


async def test_consume_keeps_at_most_prefetch_messages_unsettled(broker: Broker, name: str) -> None:
    await broker.declare_queue(name)
    for number in range(10):
        await broker.publish("", name, str(number))
    bodies: list[bytes] = []
    async with broker.consume(name, prefetch=3) as messages:
        async for message in messages:
            info = broker.queue(name)
            assert (info.unacked, info.ready, info.consumers) == (3, 7 - len(bodies), 1)
            bodies.append(message.body)
            await message.ack()
            if len(bodies) == 4:
                break
    assert bodies == [b"0", b"1", b"2", b"3"]
    # Leaving the block stopped the consumer; its buffered messages went back, in order.
    info = broker.queue(name)
    assert (info.ready, info.unacked, info.consumers) == (6, 0, 0)
    assert [m.body for m in info.messages] == [str(n).encode() for n in range(4, 10)]


async def test_consume_waits_for_messages_and_ends_when_the_queue_is_deleted(
    broker: Broker, name: str
) -> None:
    await broker.declare_queue(name)
    received: list[ReceivedMessage] = []

    async def consume() -> None:
        async for message in broker.consume(name):
            received.append(message)
            await message.ack()

    task = asyncio.create_task(consume())
    await broker.wait_for(lambda b: b.queue(name).consumers == 1)
    await broker.publish("", name, b"late")
    await broker.wait_for(lambda b: b.queue(name).stats.acked == 1)
    await broker.delete_queue(name)
    await asyncio.wait_for(task, 5)
    assert [m.body for m in received] == [b"late"]


async def test_breaking_out_of_a_bare_async_for_stops_the_consumer(
    broker: Broker, name: str
) -> None:
    await broker.declare_queue(name)
    for number in range(5):
        await broker.publish("", name, str(number))
    async for message in broker.consume(name, prefetch=2):
        await message.ack()
        break
    info = await broker.wait_for(lambda b: b.queue(name).consumers == 0 and b.queue(name))
    assert (info.ready, info.unacked) == (4, 0)


async def test_wait_for_times_out_with_the_queue_counts(broker: Broker, name: str) -> None:
    await broker.declare_queue(name)
    await broker.publish("", name, b"only one")
    with pytest.raises(
        TimeoutError,
        match=rf"{name}: ready=1 unacked=0 consumers=0; "
        "bindings: none",
    ):
        await broker.wait_for(lambda b: b.queue(name).ready == 3, timeout=0.2)


async def test_wait_for_sees_changes_made_by_network_clients(broker: Broker, name: str) -> None:
    async def client() -> None:
        connection = await aio_pika.connect(broker.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=False)
            await channel.declare_queue(name)
            for number in range(3):
                await channel.default_exchange.publish(
                    aio_pika.Message(str(number).encode()), routing_key=name
                )

    task = asyncio.create_task(client())
    # The queue does not exist yet: NotFound in the predicate counts as "not yet".
    info = await broker.wait_for(lambda b: b.queue(name).ready == 3 and b.queue(name))
    assert [m.body for m in info.messages] == [b"0", b"1", b"2"]
    await task


async def test_errors_are_the_cores(broker: Broker, name: str) -> None:
    with pytest.raises(NotFound, match="no exchange 'missing'"):
        await broker.publish("missing", "k", b"x")
    with pytest.raises(NotFound):
        await broker.get(name)
    with pytest.raises(NotFound):
        broker.queue(name)
    with pytest.raises(TypeError, match="unknown message properties: colour"):
        await broker.publish("", name, b"x", colour="blue")


async def test_snapshots_are_copies(broker: Broker, name: str) -> None:
    await broker.declare_queue(name)
    await broker.publish("", name, b"x", headers={"a": 1})
    [queued] = broker.queue(name).messages
    assert queued.properties.headers is not None
    queued.properties.headers["a"] = 2
    message = await broker.get(name, no_ack=True)
    assert message is not None
    assert message.properties.headers == {"a": 1}


async def test_sync_methods_on_the_broker_loop(broker: Broker, name: str) -> None:
    """Plain calls run at once on the broker's own loop; waiting ones refuse to block it."""
    broker.sync.declare_queue(name)
    assert broker.sync.publish("", name, b"x") == 1
    with pytest.raises(RuntimeError, match="would block the broker's own event loop"):
        broker.sync.wait_for(lambda b: b.queue(name).ready == 1)


# -- a broker on its own thread -----------------------------------------------------------


def test_sync_api_on_a_thread_broker(thread_broker: Broker, name: str) -> None:
    sync = thread_broker.sync
    sync.declare_exchange("work", "direct")
    sync.declare_queue(name)
    sync.bind(name, "work", "jobs")
    assert [sync.publish("work", "jobs", f"job {n}") for n in range(3)] == [1, 1, 1]
    assert sync.wait_for(lambda b: b.queue(name).ready == 3)

    first = sync.get(name)
    assert first is not None
    first.reject(requeue=True).wait(5)
    bodies = []
    with pytest.raises(TimeoutError):
        for message in sync.consume(name, prefetch=2, timeout=0.2):
            bodies.append(message.body)
            message.ack()
    assert bodies == [b"job 0", b"job 1", b"job 2"]
    info = sync.queue(name)
    assert (info.ready, info.unacked, info.consumers, info.stats.acked) == (0, 0, 0, 3)
    assert sync.delete_queue(name) == 0


def test_leaving_a_sync_consume_loop_stops_the_consumer(thread_broker: Broker, name: str) -> None:
    sync = thread_broker.sync
    sync.declare_queue(name)
    for number in range(4):
        sync.publish("", name, str(number))
    for message in sync.consume(name, prefetch=3):
        message.ack()
        break
    info = sync.wait_for(lambda b: b.queue(name).consumers == 0 and b.queue(name))
    assert (info.ready, info.unacked) == (3, 0)


def test_wait_for_wakes_on_a_pika_publish_from_another_thread(
    thread_broker: Broker, name: str, pika_channel: BlockingChannel
) -> None:
    pika_channel.queue_declare(name)
    publisher = threading.Thread(
        target=lambda: [pika_channel.basic_publish("", name, str(n).encode()) for n in range(3)]
    )
    publisher.start()
    info = thread_broker.sync.wait_for(lambda b: b.queue(name).ready == 3 and b.queue(name))
    publisher.join()
    assert [m.body for m in info.messages] == [b"0", b"1", b"2"]


async def test_async_api_from_another_event_loop(thread_broker: Broker, name: str) -> None:
    """An async test using a thread broker: calls are handed over to the broker's loop."""
    await thread_broker.declare_queue(name)
    await thread_broker.publish("", name, b"hello")
    async with thread_broker.consume(name) as messages:
        async for message in messages:
            assert message.body == b"hello"
            await message.ack()
            break
    info = await thread_broker.wait_for(lambda b: b.queue(name).stats.acked == 1 and b.queue(name))
    assert isinstance(info, QueueInfo)
    assert info.total == 0


def test_an_in_process_rpc_server_answers_a_pika_client(
    thread_broker: Broker, name: str, pika_channel: BlockingChannel
) -> None:
    """Direct reply-to: the in-process side publishes the reply to ``reply_to``."""
    sync = thread_broker.sync
    sync.declare_queue(name)
    replies: list[bytes] = []
    pika_channel.basic_consume(
        "amq.rabbitmq.reply-to", lambda ch, method, props, body: replies.append(body), auto_ack=True
    )
    pika_channel.basic_publish(
        "",
        name,
        b"ping",
        pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id="c1"),
    )
    request = next(sync.consume(name, timeout=5))
    assert request.properties.reply_to is not None
    assert request.properties.reply_to.startswith("amq.rabbitmq.reply-to.")
    assert (
        sync.publish(
            "",
            request.properties.reply_to,
            b"pong",
            correlation_id=request.properties.correlation_id,
        )
        == 1
    )
    request.ack()
    pika_channel.connection.process_data_events(time_limit=0)
    deadline = 50
    while not replies and deadline:
        pika_channel.connection.process_data_events(time_limit=0.1)
        deadline -= 1
    assert replies == [b"pong"]


def test_vhosts_are_separate_and_have_their_own_url(thread_broker: Broker) -> None:
    vhost_name = f"tenant/{uuid.uuid4().hex[:8]}"
    view = thread_broker.sync.add_vhost(vhost_name)
    assert view.amqp_url.endswith("/tenant%2F" + vhost_name.split("/")[1])
    connection = pika.BlockingConnection(pika.URLParameters(view.amqp_url))
    try:
        channel = connection.channel()
        channel.queue_declare("inbox")
        channel.basic_publish("", "inbox", b"for the tenant")
        assert view.sync.wait_for(lambda b: b.queue("inbox").ready == 1)
    finally:
        connection.close()
    assert "inbox" not in [q.name for q in thread_broker.queues()]
    message = view.sync.get("inbox")
    assert message is not None and message.body == b"for the tenant"
    message.ack()

    thread_broker.sync.delete_vhost(vhost_name)
    with pytest.raises(NotFound):
        view.queue("inbox")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        pika.BlockingConnection(pika.URLParameters(view.amqp_url))


def test_the_api_refuses_calls_after_the_broker_stopped(name: str) -> None:
    with Broker.in_thread(
        Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=None)
    ) as stopped:
        stopped.sync.declare_queue(name)
    with pytest.raises(RuntimeError, match="not running"):
        stopped.sync.publish("", name, b"x")
    with pytest.raises(RuntimeError, match="not running"):
        stopped.queues()


async def test_policies_through_the_embedded_api(broker: Broker, name: str) -> None:
    await broker.declare_queue(name)
    for number in range(4):
        await broker.publish("", name, str(number))
    await broker.set_policy(
        f"trim-{name}", f"^{name}$", {"max-length": 2}, apply_to="queues", priority=1
    )
    info = broker.queue(name)
    assert info.policy == f"trim-{name}" and info.operator_policy is None
    assert [m.body for m in info.messages] == [b"2", b"3"]
    with pytest.raises(PreconditionFailed, match="not a valid maximum length"):
        await broker.set_policy("bad", ".*", {"max-length": -1})
    await broker.clear_policy(f"trim-{name}")
    assert broker.queue(name).policy is None
    with pytest.raises(NotFound):
        await broker.clear_policy(f"trim-{name}")


def test_policies_through_the_sync_api(thread_broker: Broker) -> None:
    api, name = thread_broker.sync, f"sync-policy-{uuid.uuid4().hex[:8]}"
    api.set_policy(name, f"^{name}$", {"max-length": 1}, operator=True)
    api.declare_queue(name)
    assert api.queue(name).operator_policy == name
    api.clear_policy(name, operator=True)
    assert api.queue(name).operator_policy is None
    api.delete_queue(name)


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({"correlation_id": "x" * 300}, "property 'correlation_id' is longer than 255 bytes"),
        ({"priority": 300}, "property 'priority' must be an integer from 0 to 255"),
        ({"expiration": "soon"}, "invalid expiration 'soon'"),
        ({"headers": {"when": object()}}, "headers.when: a object cannot be carried"),
        ({"headers": {"n": 2**70}}, "headers.n: integer out of the signed 64-bit range"),
    ],
)
def test_properties_no_consumer_could_get_are_refused_at_publish(
    thread_broker: Broker, pika_channel: BlockingChannel, name: str,
    properties: dict[str, object], reason: str,
) -> None:  # fmt: skip
    # Accepted, such a message once closed the connection of the pika consumer it was
    # delivered to with 541 INTERNAL_ERROR (issue 12's reproduction).
    sync = thread_broker.sync
    sync.declare_queue(name)
    with pytest.raises(PreconditionFailed, match=reason.replace("(", r"\(")):
        sync.publish("", name, b"never routed", **properties)
    sync.publish("", name, b"fine", correlation_id="x" * 255, priority=255)
    method, props, body = pika_channel.basic_get(name, auto_ack=True)
    assert method is not None and body == b"fine" and props.priority == 255
    assert method.message_count == 0  # the refused one never reached the queue
