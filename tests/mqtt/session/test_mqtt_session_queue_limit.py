"""A bounded session queue (``mqtt_max_queued``) filled while its persistent session is
offline: drop-head keeps the newest, reject-publish refuses the rest (5.0: 0x97)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mqtt_session_clients import Client, wait_for
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from test_mqtt_session_machine import opened

from pigeon.auth.users import UserStore
from pigeon.broker import Broker
from pigeon.config import Config
from pigeon.core.node import Node
from pigeon.operations.services import Services
from pigeon.operations.vocabulary import RABBITMQ
from pigeon.protocols.mqtt.packets import (
    MQTT_3_1_1,
    Disconnect,
    Puback,
    Publish,
    Subscribe,
    SubscriptionOptions,
)
from pigeon.protocols.mqtt.session import session_factory
from pigeon.protocols.mqtt.settings import MQTTContext, MQTTSettings
from unit.glue_fakes import ManualClock, hub


@pytest.fixture(params=["drop-head", "reject-publish"])
def bounded(request: pytest.FixtureRequest) -> Iterator[tuple[Broker, str]]:
    config = Config(
        port=0,
        mqtt_port=0,
        data_dir=None,
        management_port=None,
        mqtt_max_queued=3,
        mqtt_queue_overflow=request.param,
    )
    with Broker.in_thread(config) as running:
        yield running, request.param


def _persistent(port: int, client_id: str) -> Client:
    client = Client(port, 5, client_id)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect(clean_start=False, properties=props)
    return client


def test_an_offline_session_keeps_at_most_max_queued(bounded: tuple[Broker, str]) -> None:
    broker, overflow = bounded
    assert broker.mqtt_port is not None
    sub = _persistent(broker.mqtt_port, "bounded-sub")
    sub.subscribe("bounded/#", 1)
    sub.stop()
    pub = Client(broker.mqtt_port, 5)
    answers: dict[int, Any] = {}
    pub.paho.on_publish = lambda c, u, mid, reason, props: answers.__setitem__(mid, reason)
    pub.connect()
    mids = [pub.paho.publish("bounded/x", f"m{n}".encode(), qos=1).mid for n in range(5)]
    wait_for(lambda: len(answers) == 5)
    codes = [answers[mid].value for mid in mids]
    back = _persistent(broker.mqtt_port, "bounded-sub")
    try:
        got = [m.payload for m in back.received(3)]
        pub.paho.publish("bounded/x", b"end", qos=1).wait_for_publish(5)
        wait_for(lambda: back.messages[-1].payload == b"end")
        got = [m.payload for m in back.messages]
    finally:
        back.stop()
        pub.stop()
    if overflow == "drop-head":
        assert codes == [0] * 5
        assert got == [b"m2", b"m3", b"m4", b"end"]  # the oldest went
    else:
        assert codes == [0, 0, 0, 0x97, 0x97]  # Quota exceeded
        assert got == [b"m0", b"m1", b"m2", b"end"]


def test_a_3_1_1_publisher_gets_no_puback_for_a_refused_message() -> None:
    """3.1.1 has no negative PUBACK: a message a full queue refuses is not acknowledged
    (the client sends it again when it reconnects); the state machine, a manual clock."""
    clock = ManualClock()
    node = Node(clock, vocabulary=RABBITMQ)
    node.add_vhost("/")
    users = UserStore()
    users.add_user("guest", "guest", frozenset({"administrator"}), loopback_only=True)
    users.set_permission("/", "guest")
    services = Services(node=node, users=users)
    settings = MQTTSettings(max_queued=1, queue_overflow="reject-publish")
    mqtt = hub(session_factory(MQTTContext(services, clock, settings)), clock)
    sub = opened(mqtt, clock, MQTT_3_1_1, "full-sub", clean_start=False)
    sub.send(Subscribe(1, (("full/#", SubscriptionOptions(qos=1)),)))
    sub.send(Disconnect())
    pub = opened(mqtt, clock, MQTT_3_1_1, "full-pub")
    assert pub.send(Publish("full/a", b"fits", qos=1, packet_id=1)) == [Puback(1)]
    assert pub.send(Publish("full/a", b"refused", qos=1, packet_id=2)) == []
    assert pub.send(Publish("full/a", b"q0", qos=0)) == []
