"""A Pigeon broker whose durable queues live in JetStream, through pika: declare,
publisher confirms, consume with a prefetch, nack with requeue (redelivered), ack,
purge and delete. The broker runs on the test's loop; pika runs in a thread.

``ClusterQueues.attach`` wires the node by hand: ``pigeon serve --cluster`` does not
build a cluster node yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pika
import pytest

from pigeon.broker import Broker
from pigeon.cluster.natsserver import LocalCluster
from pigeon.cluster.queues import ClusterQueues
from pigeon.cluster.stream_queue import StreamQueue
from pigeon.config import Config

from .jsqueues import restart, stays, until


@pytest.fixture(scope="module")
def server(nats_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("nats"), size=1, binary=nats_binary) as cluster:
        yield cluster


@pytest.fixture
async def broker(server: LocalCluster) -> AsyncIterator[Broker]:
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, host="127.0.0.1", port=0, data_dir=None, management_port=None
    )
    async with Broker(config) as broker:
        cluster = await ClusterQueues.connect(server.urls)
        assert broker.node is not None
        cluster.attach(broker.node)
        yield broker
        await cluster.close()


def _session(url: str) -> dict[str, object]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        declared = channel.queue_declare("jobs", durable=True)
        channel.confirm_delivery()
        persistent = pika.BasicProperties(delivery_mode=2, content_type="text/plain")
        for index in range(5):
            channel.basic_publish("", "jobs", b"job %d" % index, persistent, mandatory=True)
        count = channel.queue_declare("jobs", passive=True).method.message_count
        channel.basic_qos(prefetch_count=2)
        seen: list[tuple[bytes, bool]] = []
        nacked = False
        for method, properties, body in channel.consume("jobs", inactivity_timeout=10):
            assert method is not None, "no delivery within 10 s"
            seen.append((body, method.redelivered))
            assert properties.content_type == "text/plain"
            if body == b"job 0" and not nacked:
                nacked = True
                channel.basic_nack(method.delivery_tag, requeue=True)
                continue
            channel.basic_ack(method.delivery_tag)
            if len(seen) == 6:
                break
        channel.cancel()
        channel.basic_publish("", "jobs", b"left", persistent)
        purged = channel.queue_purge("jobs").method.message_count
        deleted = channel.queue_delete("jobs").method.message_count
        return {"declared": declared.method.message_count, "count": count, "seen": seen,
                "purged": purged, "deleted": deleted}  # fmt: skip
    finally:
        connection.close()


async def test_pika_against_a_broker_with_queues_in_jetstream(
    broker: Broker, server: LocalCluster
) -> None:
    result = await asyncio.to_thread(_session, broker.amqp_url)
    assert result["declared"] == 0
    assert result["count"] == 5  # confirmed: in the stream, counted
    seen = result["seen"]
    assert isinstance(seen, list)
    assert sorted(body for body, _ in seen) == sorted(
        [b"job 0"] * 2 + [b"job %d" % i for i in range(1, 5)]
    )
    assert (b"job 0", False) in seen and (b"job 0", True) in seen
    assert all(not redelivered for body, redelivered in seen if body != b"job 0")
    assert result["purged"] == 1
    assert result["deleted"] == 0


def _publish_confirmed(url: str, body: bytes) -> None:
    """Publish with confirms; returns once the broker confirmed it."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("", "orders", body, pika.BasicProperties(delivery_mode=2))
    finally:
        connection.close()


async def test_pika_confirm_waits_for_jetstream(broker: Broker, server: LocalCluster) -> None:
    def declare() -> None:
        connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        connection.channel().queue_declare("orders", durable=True)
        connection.close()

    await asyncio.to_thread(declare)
    server.stop()
    publishing = asyncio.ensure_future(
        asyncio.to_thread(_publish_confirmed, broker.amqp_url, b"order 1")
    )
    await stays(lambda: not publishing.done(), 2.0)  # no PubAck: no basic.ack
    restart(server)
    await asyncio.wait_for(publishing, 20.0)
    assert broker.node is not None
    queue = broker.node.vhosts["/"].queues["orders"]
    assert isinstance(queue, StreamQueue)
    await until(lambda: queue.message_count == 1)


def _gets(url: str) -> list[object]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.queue_declare("polled", durable=True)
        channel.confirm_delivery()
        for body in (b"first", b"second"):
            channel.basic_publish("", "polled", body, pika.BasicProperties(delivery_mode=2))
        answers: list[object] = []
        method, _, body = channel.basic_get("polled")
        assert method is not None
        answers.append((body, method.redelivered))
        channel.basic_reject(method.delivery_tag, requeue=True)
        for _ in range(3):
            method, _, body = channel.basic_get("polled", auto_ack=True)
            answers.append(None if method is None else (body, method.redelivered))
        # The channel's order holds across a get answered later: declare-ok after it.
        channel.queue_declare("polled", durable=True)
        return answers
    finally:
        connection.close()


async def test_pika_basic_get_pulls_from_the_stream(broker: Broker) -> None:
    answers = await asyncio.to_thread(_gets, broker.amqp_url)
    assert answers[0] == (b"first", False)
    assert sorted(answers[1:3], key=str) == sorted([(b"first", True), (b"second", False)], key=str)
    assert answers[3] is None  # get-empty


async def test_the_embedded_api_gets_from_the_stream(broker: Broker) -> None:
    await broker.declare_queue("embedded", durable=True)
    await broker.publish("", "embedded", b"in the stream", delivery_mode=2)
    got = await broker.get("embedded")
    assert got is not None and got.body == b"in the stream" and not got.redelivered
    await got.ack()
    assert await broker.get("embedded") is None
