"""A long backlog of persistent messages waits on disk, and comes back in order."""

from __future__ import annotations

from pathlib import Path

import pika
from pika.adapters.blocking_connection import BlockingChannel

from pigeon.broker import Broker
from pigeon.config import Config
from pigeon.core.paging import HEAD_WINDOW, PAGE_AFTER, PagedReady

BACKLOG = PAGE_AFTER + 15_000


def publish_then_sync(channel: BlockingChannel, queue: str, bodies: list[bytes]) -> None:
    """Publish fast (no confirms), then one confirmed marker to another queue: its
    confirm waits for the store's barrier, which covers every write before it."""
    persistent = pika.BasicProperties(delivery_mode=2)
    for body in bodies:
        channel.basic_publish("", queue, body, persistent)
    marker = channel.queue_declare("marker-" + queue, durable=True).method.queue
    channel.confirm_delivery()
    channel.basic_publish("", marker, b"marker", persistent)
    channel.queue_delete(marker)


def test_backlog_is_paged_out_and_drains_in_order(tmp_path: Path) -> None:
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path / "data", management_port=None
    )
    with Broker.in_thread(config) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        channel = connection.channel()
        channel.queue_declare("backlog", durable=True)
        publish_then_sync(channel, "backlog", [n.to_bytes(4, "big") for n in range(BACKLOG)])
        assert broker.node is not None
        queue = broker.node.vhosts["/"].queues["backlog"]
        ready = queue.ready
        assert isinstance(ready, PagedReady)
        # Only a window of the backlog stays in memory; the rest is only on disk.
        assert ready.paged > 0
        assert ready.in_memory <= PAGE_AFTER + 1000
        assert channel.queue_declare("backlog", passive=True).method.message_count == BACKLOG

        channel.basic_qos(prefetch_count=1000)
        received: list[int] = []
        for method, _props, body in channel.consume("backlog", inactivity_timeout=10):
            assert method is not None, f"stalled after {len(received)}"
            received.append(int.from_bytes(body, "big"))
            if len(received) % 500 == 0 or len(received) == BACKLOG:
                channel.basic_ack(method.delivery_tag, multiple=True)
            if len(received) == BACKLOG:
                break
        channel.cancel()
        assert received == list(range(BACKLOG))
        assert channel.queue_declare("backlog", passive=True).method.message_count == 0
        connection.close()


def test_paged_backlog_survives_a_restart(tmp_path: Path) -> None:
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path / "data", management_port=None
    )
    total = PAGE_AFTER + HEAD_WINDOW
    with Broker.in_thread(config) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        channel = connection.channel()
        channel.queue_declare("kept", durable=True)
        publish_then_sync(channel, "kept", [str(n).encode() for n in range(total)])
        # Take some from the head, so reading back from the middle has begun.
        for n in range(HEAD_WINDOW + 10):
            method, _, body = channel.basic_get("kept")
            assert method is not None and body == str(n).encode()
            channel.basic_ack(method.delivery_tag)
        channel.queue_declare("kept", passive=True)  # a round trip: the acks are applied
        connection.close()
    with Broker.in_thread(config) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        channel = connection.channel()
        left = channel.queue_declare("kept", passive=True).method.message_count
        assert left == total - HEAD_WINDOW - 10
        method, _, body = channel.basic_get("kept", auto_ack=True)
        assert method is not None and body == str(HEAD_WINDOW + 10).encode()
        connection.close()
