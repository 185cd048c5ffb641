"""``/metrics`` by protocol (RabbitMQ 3.13's ``protocol`` label: amqp091, mqtt311, mqtt50)
with real MQTT (paho) and AMQP (pika) clients on a broker of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pika
import pytest
from admin_helpers import Running, serving
from mqtt_helpers import Paho, poll
from test_metrics import scrape

from pigeon.config import Config


@pytest.fixture(scope="module")
def fresh() -> Iterator[Running]:
    with serving(
        Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=None)
    ) as running:
        yield running


def _value(running: Running, name: str, protocol: str) -> float:
    return scrape(running.api).get((name, (("protocol", protocol),)), -1.0)


def _by_protocol(running: Running, name: str) -> dict[str, float]:
    samples = scrape(running.api)
    return {
        labels[0][1]: value
        for (sample, labels), value in samples.items()
        if sample == name and len(labels) == 1 and labels[0][0] == "protocol"
    }


def test_messages_connections_and_clients_are_counted_per_protocol(fresh: Running) -> None:
    port = fresh.broker.mqtt_port
    assert port is not None
    subscriber = Paho(port, "metrics-sub")  # MQTT 5.0
    publisher = Paho(port, "metrics-pub", version=4)  # MQTT 3.1.1
    amqp = pika.BlockingConnection(pika.URLParameters(fresh.broker.amqp_url))
    try:
        subscriber.connect()
        subscriber.subscribe("m/t", 1)
        publisher.connect()
        for n in range(4):
            publisher.paho.publish("m/t", f"{n}".encode(), qos=1).wait_for_publish(5)
        channel = amqp.channel()
        for n in range(2):
            channel.basic_publish("amq.topic", "m.t", f"a{n}".encode())
        poll(lambda: len(subscriber.messages) == 6)

        received = "rabbitmq_global_messages_received_total"
        assert _by_protocol(fresh, received) == {"amqp091": 2, "mqtt311": 4, "mqtt50": 0}
        assert _value(fresh, "rabbitmq_global_messages_confirmed_total", "mqtt311") == 4
        assert _value(fresh, "rabbitmq_global_messages_routed_total", "mqtt311") == 4
        delivered = "rabbitmq_global_messages_delivered_total"
        assert _by_protocol(fresh, delivered) == {"amqp091": 0, "mqtt311": 0, "mqtt50": 6}
        acked = "rabbitmq_global_messages_acknowledged_total"
        poll(lambda: _value(fresh, acked, "mqtt50") == 6)
        assert _value(fresh, acked, "amqp091") == 0
        assert _by_protocol(fresh, "rabbitmq_global_consumers") == {
            "amqp091": 0,
            "mqtt311": 0,
            "mqtt50": 1,
        }
        assert _value(fresh, "rabbitmq_global_publishers", "mqtt311") == 1
        assert _by_protocol(fresh, "pigeon_connections") == {
            "amqp091": 1,
            "mqtt311": 1,
            "mqtt50": 1,
        }

        # Web MQTT counts as MQTT (RabbitMQ's labels): a 3.1.1 client over WebSocket.
        address = urlsplit(fresh.broker.mqtt_ws_url or "")
        assert address.port is not None
        web = Paho(address.port, "metrics-web", version=4, websocket=True)
        try:
            web.connect()
            web.paho.publish("m/t", b"web", qos=1).wait_for_publish(5)
            poll(lambda: len(subscriber.messages) == 7)
            assert _value(fresh, received, "mqtt311") == 5
            assert _value(fresh, "pigeon_connections", "mqtt311") == 2
        finally:
            web.stop()
        poll(lambda: _value(fresh, "pigeon_connections", "mqtt311") == 1)

        publisher.stop()
        closed = "pigeon_connections_closed_total"
        poll(lambda: _value(fresh, closed, "mqtt311") == 2)
        # The ended session's counts stay (a counter never goes back).
        assert _by_protocol(fresh, received) == {"amqp091": 2, "mqtt311": 5, "mqtt50": 0}
        opened = _by_protocol(fresh, "pigeon_connections_opened_total")
        assert opened == {"amqp091": 1, "mqtt311": 2, "mqtt50": 1}
        assert _value(fresh, closed, "amqp091") == 0
        assert _value(fresh, "pigeon_connections", "mqtt311") == 0
    finally:
        subscriber.stop()
        publisher.stop()
        if amqp.is_open:
            amqp.close()
