"""Flow control both ways (5.0): our Receive Maximum enforced on inbound QoS 1 and 2
publishes (DISCONNECT 0x93), and topic aliases we set for the client's deliveries up to
its Topic Alias Maximum. Packets through the state machine (a manual clock), and paho
over a socket for the aliases as a client resolves them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mqtt_session_clients import Client
from test_mqtt_session_machine import opened

from pigeon.auth.users import UserStore
from pigeon.broker import Broker
from pigeon.config import Config
from pigeon.core.node import Node
from pigeon.operations.services import Services
from pigeon.operations.vocabulary import RABBITMQ
from pigeon.protocols.mqtt.packets import (
    MQTT_5,
    Disconnect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    SubscriptionOptions,
)
from pigeon.protocols.mqtt.properties import Properties
from pigeon.protocols.mqtt.reasons import ReasonCode
from pigeon.protocols.mqtt.session import MQTTSession, session_factory
from pigeon.protocols.mqtt.settings import MQTTContext, MQTTSettings
from pigeon.transport.glue import Hub
from unit.glue_fakes import ManualClock, hub


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def mqtt(clock: ManualClock) -> Hub[MQTTSession]:
    node = Node(clock, vocabulary=RABBITMQ)
    node.add_vhost("/")
    users = UserStore()
    users.add_user("guest", "guest", frozenset({"administrator"}), loopback_only=True)
    users.set_permission("/", "guest")
    services = Services(node=node, users=users)
    context = MQTTContext(services, clock, MQTTSettings(receive_maximum=2))
    return hub(session_factory(context), clock, limits=services.limits)


def test_qos_1_publishes_within_the_receive_maximum_are_answered(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    peer = opened(mqtt, clock, MQTT_5, "within")
    batch = [Publish("f/a", b"x", qos=1, packet_id=n) for n in (1, 2)]
    unrouted = ReasonCode.NO_MATCHING_SUBSCRIBERS
    assert peer.send(*batch) == [Puback(1, unrouted), Puback(2, unrouted)]
    again = [Publish("f/a", b"x", qos=1, packet_id=n) for n in (3, 4)]
    assert len(peer.send(*again)) == 2  # answered: the count starts again


def test_more_unanswered_qos_1_publishes_than_the_receive_maximum_disconnect(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    peer = opened(mqtt, clock, MQTT_5, "over1")
    batch = [Publish("f/a", b"x", qos=1, packet_id=n) for n in (1, 2, 3)]
    answers = peer.send(*batch)
    assert answers == [Disconnect(ReasonCode.RECEIVE_MAXIMUM_EXCEEDED)]  # [MQTT-3.3.4-9]
    assert peer.transport.closing


def test_unreleased_qos_2_publishes_count_against_the_receive_maximum(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    peer = opened(mqtt, clock, MQTT_5, "over2")
    assert len(peer.send(Publish("f/b", b"x", qos=2, packet_id=1))) == 1
    assert len(peer.send(Publish("f/b", b"x", qos=2, packet_id=2))) == 1
    assert peer.send(Pubrel(1)) == [Pubcomp(1)]  # released: room for one more
    assert len(peer.send(Publish("f/b", b"x", qos=2, packet_id=3))) == 1
    answers = peer.send(Publish("f/b", b"x", qos=1, packet_id=4))  # 2 and 3 unreleased
    assert answers == [Disconnect(ReasonCode.RECEIVE_MAXIMUM_EXCEEDED)]


def test_deliveries_use_topic_aliases_up_to_the_clients_maximum(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    sub = opened(mqtt, clock, MQTT_5, "aliased", properties=Properties(topic_alias_maximum=1))
    sub.send(Subscribe(1, (("al/+", SubscriptionOptions(qos=0)),)))
    pub = opened(mqtt, clock, MQTT_5, "alias-pub")
    for topic in ("al/a", "al/a", "al/a", "al/b", "al/b", "al/a"):
        pub.send(Publish(topic, topic.encode()))
    deliveries = sub.answers()
    assert all(isinstance(p, Publish) for p in deliveries)
    seen = [(p.topic, p.properties.topic_alias, p.payload) for p in deliveries]  # type: ignore[union-attr]
    assert seen == [
        ("al/a", None, b"al/a"),  # once: no alias yet
        ("al/a", 1, b"al/a"),  # again: the alias is set with the topic
        ("", 1, b"al/a"),  # then the alias alone [MQTT-3.3.2-12]
        ("al/b", None, b"al/b"),  # the client allows one alias only
        ("al/b", None, b"al/b"),
        ("", 1, b"al/a"),
    ]


def test_no_topic_alias_for_a_client_that_allows_none(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    sub = opened(mqtt, clock, MQTT_5, "unaliased")
    sub.send(Subscribe(1, (("na/+", SubscriptionOptions(qos=1)),)))
    pub = opened(mqtt, clock, MQTT_5, "na-pub")
    for _ in range(3):
        pub.send(Publish("na/a", b"x", qos=1, packet_id=1))
        pub.send(Pubrec(1))  # (ignored by the broker: not a delivery of ours)
    for packet in sub.answers():
        assert isinstance(packet, Publish)
        assert packet.topic == "na/a" and packet.properties.topic_alias is None
        sub.send(Puback(packet.packet_id or 0))


async def test_gmqtt_resolves_the_aliases_it_is_sent(broker: Broker) -> None:
    """gmqtt maps our aliases back to topics. (paho-mqtt 2.2 and libmosquitto 2.0 do not,
    though they let an application set a Topic Alias Maximum: paho hands the empty topic
    on, mosquitto_sub stops with a protocol error.)"""
    import gmqtt

    assert broker.mqtt_port is not None
    received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    subscribed = asyncio.Event()

    def on_message(_client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
        received.put_nowait((topic, payload))
        return 0

    client = gmqtt.Client("gmqtt-aliases", topic_alias_maximum=4)
    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.set()
    await client.connect("127.0.0.1", broker.mqtt_port, version=gmqtt.constants.MQTTv50)
    try:
        client.subscribe("gm-alias/#", qos=1)
        async with asyncio.timeout(10):
            await subscribed.wait()
        topics = [f"gm-alias/{n % 3}" for n in range(12)]
        for n, topic in enumerate(topics):
            client.publish(topic, str(n).encode(), qos=n % 2)
        async with asyncio.timeout(10):
            got = [await received.get() for _ in topics]
    finally:
        await client.disconnect()
    assert got == [(topic, str(n).encode()) for n, topic in enumerate(topics)]


def test_the_configured_maximums_are_in_the_connack() -> None:
    config = Config(
        port=0,
        mqtt_port=0,
        data_dir=None,
        management_port=None,
        mqtt_receive_maximum=5,
        mqtt_topic_alias_maximum=3,
    )
    with Broker.in_thread(config) as broker:
        assert broker.mqtt_port is not None
        client = Client(broker.mqtt_port, 5)
        try:
            client.connect()
            properties = client.connack_properties
        finally:
            client.stop()
    assert (properties.ReceiveMaximum, properties.TopicAliasMaximum) == (5, 3)
