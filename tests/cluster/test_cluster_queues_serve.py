"""Two Pigeon nodes started in cluster mode (``Config.cluster``, as ``pigeon serve
--cluster``) on a three-server JetStream cluster: a durable queue's messages live in
JetStream, so what is published on one node is consumed on the other, with confirms,
prefetch, requeue and the redelivered flag."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator

import pika
import pytest

from pigeon.broker import Broker
from pigeon.cluster.natsserver import LocalCluster
from pigeon.config import Config


@pytest.fixture(scope="module")
def nodes(
    nats_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Broker, Broker]]:
    def config(name: str) -> Config:
        return Config(
            port=0,
            mqtt_port=0,
            mqtt_ws_port=0,
            data_dir=tmp_path_factory.mktemp(name),
            management_port=0,
            cluster=",".join(nats_cluster.urls),
        )

    with Broker.in_thread(config("a")) as a, Broker.in_thread(config("b")) as b:
        yield a, b


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)


def _declared_on(broker: Broker, queue: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    try:
        connection.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


def test_published_on_one_node_consumed_on_the_other(nodes: tuple[Broker, Broker]) -> None:
    a, b = nodes
    queue = f"work-{uuid.uuid4().hex}"
    on_a = pika.BlockingConnection(pika.URLParameters(a.amqp_url))
    on_b = pika.BlockingConnection(pika.URLParameters(b.amqp_url))
    try:
        publisher = on_a.channel()
        publisher.queue_declare(queue, durable=True)
        _eventually(lambda: _declared_on(b, queue))
        publisher.confirm_delivery()
        for index in range(6):
            publisher.basic_publish(
                "", queue, b"task %d" % index, pika.BasicProperties(delivery_mode=2)
            )
        consumer = on_b.channel()
        # Node b hears of a's publishes from JetStream within its refresh (2 s).
        _eventually(lambda: consumer.queue_declare(queue, passive=True).method.message_count == 6)
        consumer.basic_qos(prefetch_count=3)
        seen: list[tuple[bytes, bool]] = []
        requeued = False
        for method, _, body in consumer.consume(queue, inactivity_timeout=10):
            assert method is not None, "no delivery within 10 s"
            seen.append((body, method.redelivered))
            if not requeued:
                requeued = True
                consumer.basic_nack(method.delivery_tag, requeue=True)
                continue
            consumer.basic_ack(method.delivery_tag)
            if len(seen) == 7:
                break
        consumer.cancel()
    finally:
        on_a.close()
        on_b.close()
    bodies = sorted(body for body, _ in seen)
    assert bodies == sorted([b"task 0"] + [b"task %d" % i for i in range(6)])
    assert (b"task 0", False) in seen and (b"task 0", True) in seen


def test_a_closed_connections_unacked_go_to_the_other_node_at_once(
    nodes: tuple[Broker, Broker],
) -> None:
    a, b = nodes
    queue = f"held-{uuid.uuid4().hex}"
    on_a = pika.BlockingConnection(pika.URLParameters(a.amqp_url))
    on_b = pika.BlockingConnection(pika.URLParameters(b.amqp_url))
    try:
        channel_a = on_a.channel()
        channel_a.queue_declare(queue, durable=True)
        channel_a.confirm_delivery()
        channel_a.basic_publish("", queue, b"unfinished", pika.BasicProperties(delivery_mode=2))
        _eventually(lambda: _declared_on(b, queue))
        channel_b = on_b.channel()
        method, _, body = next(channel_b.consume(queue, inactivity_timeout=10))
        assert method is not None and body == b"unfinished" and not method.redelivered
        on_b.close()  # not acked: back to the stream now, not after ack_wait (30 s)
        start = time.monotonic()
        method, _, body = next(channel_a.consume(queue, inactivity_timeout=10))
        assert method is not None, "not back within 10 s"
        assert body == b"unfinished" and method.redelivered
        assert time.monotonic() - start < 10
        channel_a.basic_ack(method.delivery_tag)
        channel_a.cancel()
    finally:
        on_a.close()
        if on_b.is_open:
            on_b.close()


def test_the_management_api_shows_a_queues_stream_servers(nodes: tuple[Broker, Broker]) -> None:
    a, _ = nodes
    queue = f"shown-{uuid.uuid4().hex}"
    connection = pika.BlockingConnection(pika.URLParameters(a.amqp_url))
    try:
        connection.channel().queue_declare(queue, durable=True)
    finally:
        connection.close()
    assert a.management_url is not None
    request = urllib.request.Request(f"{a.management_url}api/queues/%2F/{queue}")
    token = base64.b64encode(b"guest:guest").decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        shown = json.loads(response.read())
    assert shown["members"] == ["n1", "n2", "n3"]  # R3: the stream's three servers
    assert shown["leader"] in shown["members"]


def test_a_restarted_node_finds_its_queues_messages_in_jetstream(
    nats_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("restarted")
    config = Config(port=0, mqtt_port=0, mqtt_ws_port=0, data_dir=folder, management_port=None,
                    cluster=",".join(nats_cluster.urls))  # fmt: skip
    queue = f"kept-{uuid.uuid4().hex}"
    with Broker.in_thread(config) as first:
        connection = pika.BlockingConnection(pika.URLParameters(first.amqp_url))
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        for index in range(3):
            channel.basic_publish("", queue, b"%d" % index, pika.BasicProperties(delivery_mode=2))
        connection.close()
    with Broker.in_thread(config) as second:
        connection = pika.BlockingConnection(pika.URLParameters(second.amqp_url))
        try:
            channel = connection.channel()
            bodies = []
            for method, _, body in channel.consume(queue, inactivity_timeout=10):
                assert method is not None, "no delivery within 10 s"
                bodies.append(body)
                channel.basic_ack(method.delivery_tag)
                if len(bodies) == 3:
                    break
            channel.cancel()
        finally:
            connection.close()
    assert bodies == [b"0", b"1", b"2"]


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto_sub not installed")
def test_an_mqtt_persistent_session_gets_what_another_node_routed(
    nodes: tuple[Broker, Broker],
) -> None:
    """The session's queue (durable, x-expires) is a stream: a message published by
    AMQP on node b while the MQTT client is away reaches it on node a."""
    a, b = nodes
    client = f"cluster-{uuid.uuid4().hex[:8]}"
    topic = f"cl/{uuid.uuid4().hex[:8]}"
    common = ["-h", "127.0.0.1", "-p", str(a.mqtt_port), "-i", client, "-c", "-q", "1"]
    subprocess.run(["mosquitto_sub", *common, "-t", topic, "-E"], check=True, timeout=10)
    _eventually(lambda: _declared_on(b, f"mqtt-subscription-{client}qos1"))
    connection = pika.BlockingConnection(pika.URLParameters(b.amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            "amq.topic",
            topic.replace("/", "."),
            b"while away",
            pika.BasicProperties(delivery_mode=2),
        )
    finally:
        connection.close()
    received = subprocess.run(
        ["mosquitto_sub", *common, "-t", topic, "-C", "1", "-W", "10"],
        capture_output=True,
        check=True,
        timeout=15,
    )
    assert received.stdout.strip() == b"while away"


def test_a_queue_deleted_at_once_elsewhere_does_not_hold_this_nodes_replies(
    nodes: tuple[Broker, Broker],
) -> None:
    # Node b learns of the declare and the delete together, from the bucket: it starts
    # the queue's stream and stops it at once. Its replies (which wait for every stream
    # change it began) must not wait forever for the stream's creation.
    a, b = nodes
    on_a = pika.BlockingConnection(pika.URLParameters(a.amqp_url))
    try:
        channel = on_a.channel()
        for _ in range(5):
            queue = f"brief-{uuid.uuid4().hex}"
            channel.queue_declare(queue, durable=True)
            channel.queue_delete(queue)
        _eventually(lambda: not _declared_on(b, queue))
    finally:
        on_a.close()
    # Node b's replies wait for its barrier (every stream change b began): they come.
    answered = threading.Event()

    def declare_on_b() -> None:
        on_b = pika.BlockingConnection(pika.URLParameters(b.amqp_url))
        with contextlib.suppress(pika.exceptions.AMQPError):  # (b stopping, after a failure)
            on_b.channel().exchange_declare("amq.direct", passive=True)
            answered.set()
            on_b.close()

    threading.Thread(target=declare_on_b, daemon=True).start()
    assert answered.wait(10), "node b's declare-ok never came"
