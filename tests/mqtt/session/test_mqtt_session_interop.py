"""MQTT <-> AMQP 0-9-1 through the same core: topics as routing keys on amq.topic,
properties converted through the neutral message (docs/mqtt.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pika
import pytest
from mqtt_session_clients import Client, wait_for
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pigeon.broker import Broker


@pytest.fixture
def channel(broker: Broker) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    try:
        yield connection.channel()
    finally:
        connection.close()


def test_mqtt_5_publish_reaches_an_amqp_consumer_with_its_properties(
    clients: Callable[..., Client], channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", "sensors.t1.v1/2")
    pub = clients(5)
    pub.connect()
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("site", "north"), ("site", "south"), ("unit", "C")]
    props.CorrelationData = b"\x00\x01corr"
    props.ContentType = "application/json"
    props.ResponseTopic = "replies/t1"
    props.MessageExpiryInterval = 60
    pub.paho.publish("sensors/t1/v1.2", b'{"t": 21}', qos=1, properties=props).wait_for_publish(5)

    def get() -> tuple[object, object, bytes] | None:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        return (method, properties, body) if method is not None else None

    _method, properties, body = wait_for(get)
    assert body == b'{"t": 21}'
    assert properties.delivery_mode == 2  # QoS 1: persistent
    assert properties.content_type == "application/json"
    assert properties.correlation_id == "\x00\x01corr"
    assert properties.reply_to == "replies.t1"
    assert properties.expiration == "60000"
    assert properties.headers == {"site": "north", "unit": "C"}  # a table keeps the first


def test_mqtt_qos_0_publish_is_transient_for_amqp(
    clients: Callable[..., Client], channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", "plain.q0")
    pub = clients(4)
    pub.connect()
    pub.paho.publish("plain/q0", b"x", qos=0)

    def get() -> object:
        method, properties, _ = channel.basic_get(queue, auto_ack=True)
        return properties if method is not None else None

    properties = wait_for(get)
    assert properties.delivery_mode in (None, 1)


def test_an_amqp_publish_reaches_an_mqtt_5_subscriber_with_its_properties(
    clients: Callable[..., Client], channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    sub = clients(5)
    sub.connect()
    sub.subscribe("devices/+/cmd", 1)
    channel.basic_publish(
        "amq.topic",
        "devices.d7.cmd",
        b"reboot",
        pika.BasicProperties(
            delivery_mode=2,
            headers={"origin": "ops", "attempt": 3},
            correlation_id="c-42",
            content_type="text/plain",
            reply_to="answers.d7",
            expiration="30000",
        ),
    )
    (message,) = sub.received()
    assert (message.topic, message.payload, message.qos) == ("devices/d7/cmd", b"reboot", 1)
    props = message.properties
    assert props.UserProperty == [("origin", "ops"), ("attempt", "3")]
    assert props.CorrelationData == b"c-42"
    assert props.ContentType == "text/plain"
    assert props.ResponseTopic == "answers/d7"
    assert 0 < props.MessageExpiryInterval <= 30


def test_a_transient_amqp_message_goes_out_at_qos_0(
    clients: Callable[..., Client], channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    sub = clients(4)
    sub.connect()
    sub.subscribe("transient/#", 2)
    channel.basic_publish("amq.topic", "transient.a", b"t")
    (message,) = sub.received()
    assert message.qos == 0


def test_an_mqtt_request_gets_an_amqp_reply_on_its_response_topic(
    clients: Callable[..., Client], channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", "rpc.requests")
    requester = clients(5)
    requester.connect()
    requester.subscribe("rpc/replies/me", 1)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "rpc/replies/me"
    props.CorrelationData = b"req-1"
    requester.paho.publish("rpc/requests", b"2+2", qos=1, properties=props)

    def get() -> tuple[object, bytes] | None:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        return (properties, body) if method is not None else None

    properties, _body = wait_for(get)
    channel.basic_publish(
        "amq.topic",
        properties.reply_to,
        b"4",
        pika.BasicProperties(correlation_id=properties.correlation_id, delivery_mode=2),
    )
    (reply,) = requester.received()
    assert (reply.topic, reply.payload) == ("rpc/replies/me", b"4")
    assert reply.properties.CorrelationData == b"req-1"
