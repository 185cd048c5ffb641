"""Resource alarms block publishers (connection.blocked), never consumers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from helpers import process_until

from pigeon.broker import Broker
from pigeon.config import Config


@pytest.fixture
def broker() -> Iterator[Broker]:
    # A watermark above 1.0 is bytes: 2 bytes puts the memory alarm on at once.
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=None,
        management_port=None,
        memory_high_watermark=2.0,
    )
    with Broker.in_thread(config) as running:
        yield running


def set_memory_limit(broker: Broker, limit: int) -> None:
    """Change the watermark and check now, on the broker's loop."""
    assert broker.node is not None and broker.resources is not None
    loop = broker.node.scheduler
    assert isinstance(loop, asyncio.AbstractEventLoop)
    resources = broker.resources

    def change() -> None:
        resources.memory_limit = limit
        resources.stop()
        resources.check()

    loop.call_soon_threadsafe(change)


def test_publisher_is_blocked_and_unblocked_while_consumers_drain(broker: Broker) -> None:
    events: list[tuple[str, Any]] = []
    publisher = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    publisher.add_on_connection_blocked_callback(
        lambda _conn, frame: events.append(("blocked", frame.method.reason))
    )
    publisher.add_on_connection_unblocked_callback(
        lambda _conn, _frame: events.append(("unblocked", None))
    )
    consumer = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    try:
        out = publisher.channel()
        queue = out.queue_declare("", exclusive=False, auto_delete=True).method.queue
        inbox = consumer.channel()
        got: list[bytes] = []
        inbox.basic_consume(queue, lambda ch, m, p, body: got.append(body), auto_ack=True)

        out.basic_publish("", queue, b"first")  # read before the broker blocks the connection
        process_until(publisher, lambda: events)
        assert events == [("blocked", "low on memory")]
        out.basic_publish("", queue, b"second")  # waits in the socket, unread
        process_until(consumer, lambda: got == [b"first"])
        consumer.process_data_events(time_limit=0.3)
        assert got == [b"first"]

        set_memory_limit(broker, 10**15)
        process_until(publisher, lambda: len(events) == 2)
        assert events[1] == ("unblocked", None)
        process_until(consumer, lambda: got == [b"first", b"second"])
    finally:
        publisher.close()
        consumer.close()


def test_many_alarms_block_once(broker: Broker) -> None:
    assert broker.context is not None
    alarms = broker.context.alarms
    assert broker.node is not None
    loop = broker.node.scheduler
    assert isinstance(loop, asyncio.AbstractEventLoop)
    loop.call_soon_threadsafe(alarms.set, "disk", True)
    blocked: list[str] = []
    connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    connection.add_on_connection_blocked_callback(
        lambda _conn, frame: blocked.append(frame.method.reason)
    )
    try:
        channel = connection.channel()
        channel.basic_publish("", "nowhere", b"x")
        process_until(connection, lambda: blocked)
        connection.process_data_events(time_limit=0.3)
        assert blocked == ["low on memory and disk"]
    finally:
        # A blocked connection is not read, not even its close: clear both alarms first.
        loop.call_soon_threadsafe(alarms.set, "disk", False)
        set_memory_limit(broker, 10**15)
        connection.close()
