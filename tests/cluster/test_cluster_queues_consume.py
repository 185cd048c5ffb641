"""Durable queues in JetStream, through a real core Node and real consumers, against
one real nats-server: publish, consume, ack, requeue, term with dead-lettering,
prefetch credit, get, purge, delete, and what cluster mode refuses.

At the core level (Node, vhost, Queue objects): broker.py does not build a cluster node
yet, so the AMQP and embedded APIs cannot be pointed at JetStream from a test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pigeon.cluster.natsserver import LocalCluster
from pigeon.core.options import QueueOptions
from pigeon.errors import PreconditionFailed

from .jsqueues import Collector, FrontEnd, queue_name, until


@pytest.fixture(scope="module")
def server(nats_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("nats"), size=1, binary=nats_binary) as cluster:
        yield cluster


@pytest.fixture
async def front(server: LocalCluster) -> AsyncIterator[FrontEnd]:
    front = await FrontEnd.start(server.urls)
    yield front
    await front.close()


async def test_one_stream_per_queue_work_queue_retention_single_replica(front: FrontEnd) -> None:
    queue = await front.declare(queue_name())
    config = (await front.stream_info(queue))["config"]
    assert config["retention"] == "workqueue"
    assert config["storage"] == "file"
    assert config["num_replicas"] == 1
    assert queue.names.stream.isascii() and "." not in queue.names.stream


async def test_published_messages_are_consumed_in_order_and_acked(front: FrontEnd) -> None:
    name = queue_name()
    queue = await front.declare(name)
    for index in range(5):
        front.publish(name, b"m%d" % index, content_type="text/plain", headers=(("k", 1),))
    await front.confirmed()
    assert (await front.stream_info(queue))["state"]["messages"] == 5
    consumer = Collector()
    queue.add_consumer(consumer)
    await until(lambda: len(consumer.received) == 5)
    assert consumer.bodies == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    first = consumer.received[0]
    assert not first.redelivered
    assert first.message.properties.content_type == "text/plain"
    assert first.message.properties.headers == (("k", 1),)
    assert first.message.routing_key == name
    queue.ack_many(consumer.received)
    assert queue.unacked == 0

    async def drained() -> bool:
        return (await front.stream_info(queue))["state"]["messages"] == 0

    await until_async(drained)


async def until_async(check: object, timeout: float = 10.0) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met within the deadline"
        await asyncio.sleep(0.05)


async def test_requeued_messages_come_back_marked_redelivered(front: FrontEnd) -> None:
    name = queue_name()
    queue = await front.declare(name)
    front.publish(name, b"again")
    consumer = Collector()
    queue.add_consumer(consumer)
    await until(lambda: len(consumer.received) == 1)
    assert not consumer.received[0].redelivered
    consumer.settled()
    queue.requeue(consumer.received[:1])  # nack with requeue: -NAK
    await until(lambda: len(consumer.received) == 2)
    again = consumer.received[1]
    assert again.message.body == b"again"
    assert again.redelivered
    assert again.delivery_count == 0  # a classic queue names no count (quorum: below)
    queue.ack_many([again])


async def test_a_dropped_connection_gives_its_unacked_back_at_once(server: LocalCluster) -> None:
    # ack_wait of a minute: the message can only come back this fast through the nak.
    first = await FrontEnd.start(server.urls, ack_wait=60.0)
    second = await FrontEnd.start(server.urls, ack_wait=60.0)
    try:
        name = queue_name()
        queue_a = await first.declare(name)
        queue_b = await second.declare(name)
        first.publish(name, b"held")
        gone = Collector()
        queue_a.add_consumer(gone)
        await until(lambda: len(gone.received) == 1)
        taker = Collector()
        queue_b.add_consumer(taker)
        # The connection closes: the channel requeues its unacked, the consumer goes.
        queue_a.requeue(gone.received)
        queue_a.remove_consumer(gone)
        await until(lambda: len(taker.received) == 1, timeout=5.0)
        assert taker.received[0].redelivered
        queue_b.ack_many(taker.received)
    finally:
        await first.close()
        await second.close()


async def test_reject_without_requeue_dead_letters_first_then_terminates(front: FrontEnd) -> None:
    name, dead = queue_name("src"), queue_name("dlq")
    dlq = await front.declare(dead)
    options = QueueOptions(dead_letter_exchange="", dead_letter_routing_key=dead)
    queue = await front.declare(name, options=options)
    front.publish(name, b"poison")
    consumer = Collector()
    queue.add_consumer(consumer)
    await until(lambda: len(consumer.received) == 1)
    queue.reject(consumer.received[0])
    await front.confirmed()
    watcher = Collector()
    dlq.add_consumer(watcher)
    await until(lambda: len(watcher.received) == 1)
    letter = watcher.received[0].message
    assert letter.body == b"poison"
    assert letter.properties.header("x-first-death-reason") == "rejected"

    async def source_empty() -> bool:
        return (await front.stream_info(queue))["state"]["messages"] == 0

    await until_async(source_empty)
    dlq.ack_many(watcher.received)


async def test_pulls_are_bounded_by_the_consumers_prefetch(front: FrontEnd) -> None:
    name = queue_name()
    queue = await front.declare(name)
    for index in range(10):
        front.publish(name, b"%d" % index)
    await front.confirmed()
    consumer = Collector(prefetch=2)
    queue.add_consumer(consumer)
    await until(lambda: len(consumer.received) == 2)
    info = await front.cluster.api(
        f"$JS.API.CONSUMER.INFO.{queue.names.stream}.{queue.names.consumer}", None
    )
    # JetStream handed out no more than the prefetch: the rest waits in the stream.
    assert info["num_ack_pending"] == 2
    assert info["num_pending"] == 8
    assert len(consumer.received) == 2
    queue.ack_many(consumer.received[:1])
    consumer.settled()
    await until(lambda: len(consumer.received) == 3)
    acked = 1
    while acked < 10:  # each ack makes room for one more, never more than two out
        assert len(consumer.received) - acked <= 2
        queue.ack_many(consumer.received[acked : acked + 1])
        consumer.settled()
        acked += 1
        expected = min(acked + 2, 10)
        await until(lambda expected=expected: len(consumer.received) == expected)
    assert consumer.bodies == [b"%d" % index for index in range(10)]


async def test_get_takes_one_message_and_says_empty_after(front: FrontEnd) -> None:
    name = queue_name()
    queue = await front.declare(name)
    front.publish(name, b"only")
    await front.confirmed()
    entry = await queue.get_async(no_ack=False)
    assert entry is not None and entry.message.body == b"only"
    assert await queue.get_async(no_ack=False, timeout=0.3) is None
    queue.ack_many([entry])


async def test_purge_empties_the_stream(front: FrontEnd) -> None:
    name = queue_name()
    queue = await front.declare(name)
    for _ in range(3):
        front.publish(name, b"x")
    await front.confirmed()
    assert queue.message_count == 3
    assert queue.purge() == 3
    await front.confirmed()  # purge-ok waits for JetStream, as a confirm does
    assert (await front.stream_info(queue))["state"]["messages"] == 0
    assert queue.message_count == 0


async def test_delete_if_empty_and_if_unused_then_the_stream_goes(front: FrontEnd) -> None:
    name = queue_name()
    queue = await front.declare(name)
    front.publish(name, b"x")
    await front.confirmed()
    with pytest.raises(PreconditionFailed, match="not empty"):
        front.vhost.delete_queue(name, owner=None, if_empty=True)
    consumer = Collector()
    queue.add_consumer(consumer)
    with pytest.raises(PreconditionFailed, match="in use"):
        front.vhost.delete_queue(name, owner=None, if_unused=True)
    await until(lambda: len(consumer.received) == 1)
    assert front.vhost.delete_queue(name, owner=None) == 0
    assert consumer.received and name not in front.vhost.queues
    await front.confirmed()
    answer = await front.cluster.api(
        f"$JS.API.STREAM.INFO.{queue.names.stream}", None, ok_errors=(10059,)
    )
    assert answer["error"]["err_code"] == 10059  # stream not found


@pytest.mark.parametrize(
    ("options", "feature"),
    [
        (QueueOptions(max_priority=5), "priorities"),
        (QueueOptions(max_length=5), "length limits"),
        (QueueOptions(single_active_consumer=True), "single active consumer"),
    ],
)
async def test_what_a_stream_cannot_honour_is_refused_naming_cluster_mode(
    front: FrontEnd, options: QueueOptions, feature: str
) -> None:
    name = queue_name()
    with pytest.raises(PreconditionFailed, match=f"{feature}.*cluster mode"):
        front.vhost.declare_queue(name, owner=None, durable=True, options=options)
    assert name not in front.vhost.queues


async def test_transient_and_exclusive_queues_stay_in_this_process(front: FrontEnd) -> None:
    transient = front.vhost.declare_queue(queue_name(), owner=None, durable=False).queue
    owned = front.vhost.declare_queue(queue_name(), owner=object(), exclusive=True).queue
    assert type(transient).__name__ == "Queue"
    assert type(owned).__name__ == "Queue"


async def test_expired_messages_are_not_delivered(front: FrontEnd) -> None:
    name = queue_name()
    queue = await front.declare(name)
    front.publish(name, b"stale", ttl=0)
    front.publish(name, b"fresh")
    consumer = Collector()
    queue.add_consumer(consumer)
    await until(lambda: len(consumer.received) == 1)
    assert consumer.bodies == [b"fresh"]
    await until(lambda: queue.stats.expired == 1)
    queue.ack_many(consumer.received)


async def test_a_quorum_queue_counts_returns(front: FrontEnd) -> None:
    name = queue_name()
    queue = await front.declare(name, options=QueueOptions(type="quorum"))
    assert queue.type == "quorum"
    front.publish(name, b"counted")
    consumer = Collector()
    queue.add_consumer(consumer)
    await until(lambda: len(consumer.received) == 1)
    consumer.settled()
    queue.requeue(consumer.received[:1])
    await until(lambda: len(consumer.received) == 2)
    assert consumer.received[1].delivery_count == 1  # x-delivery-count on the delivery
    queue.ack_many(consumer.received[1:])


async def test_a_quorum_queue_dead_letters_past_its_delivery_limit(front: FrontEnd) -> None:
    name, dead = queue_name("limited"), queue_name("dlq")
    dlq = await front.declare(dead)
    options = QueueOptions(
        type="quorum", delivery_limit=1, dead_letter_exchange="", dead_letter_routing_key=dead
    )
    queue = await front.declare(name, options=options)
    front.publish(name, b"flaky")
    consumer = Collector()
    queue.add_consumer(consumer)
    await until(lambda: len(consumer.received) == 1)
    consumer.settled()
    queue.requeue(consumer.received[:1])  # first return: within the limit
    await until(lambda: len(consumer.received) == 2)
    consumer.settled()
    queue.requeue(consumer.received[1:])  # second return: past it
    watcher = Collector()
    dlq.add_consumer(watcher)
    await until(lambda: len(watcher.received) == 1)
    letter = watcher.received[0].message
    assert letter.body == b"flaky"
    assert letter.properties.header("x-first-death-reason") == "delivery_limit"
    assert len(consumer.received) == 2
    dlq.ack_many(watcher.received)


async def test_a_queue_deleted_and_declared_again_at_once_has_a_stream(front: FrontEnd) -> None:
    name = queue_name()
    await front.declare(name)
    front.vhost.delete_queue(name, owner=None)
    queue = await front.declare(name)  # its create waits for the delete before it
    front.publish(name, b"after")
    await front.confirmed()
    assert (await front.stream_info(queue))["state"]["messages"] == 1
