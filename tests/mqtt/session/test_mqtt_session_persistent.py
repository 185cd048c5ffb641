"""Persistent sessions: subscriptions and QoS 1/2 messages kept while the client is away,
across a broker restart too (a data folder), and resent unacknowledged ones with DUP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mqtt_session_clients import Client, wait_for
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pigeon.broker import Broker
from pigeon.config import Config


def _persistent(port: int, version: int, client_id: str) -> Client:
    if version == 5:
        client = Client(port, 5, client_id)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        client.connect(clean_start=False, properties=props)
        return client
    client = Client(port, 4, client_id, clean_session=False)
    client.connect()
    return client


@pytest.mark.parametrize("version", [4, 5])
def test_qos_1_messages_wait_for_the_client_to_come_back(
    broker: Broker, clients: Callable[..., Client], version: int
) -> None:
    assert broker.mqtt_port is not None
    client_id = f"away-{version}"
    first = _persistent(broker.mqtt_port, version, client_id)
    first.subscribe(f"away{version}/#", 1)
    first.stop()
    pub = clients(version)
    pub.connect()
    for n in range(3):
        pub.paho.publish(f"away{version}/x", f"m{n}".encode(), qos=1).wait_for_publish(5)
    pub.paho.publish(f"away{version}/x", b"q0", qos=0).wait_for_publish(5)
    back = _persistent(broker.mqtt_port, version, client_id)
    try:
        assert back.connack[0].session_present
        messages = back.received(4)
        assert [m.payload for m in messages[:3]] == [b"m0", b"m1", b"m2"]
    finally:
        back.stop()


@pytest.mark.parametrize("version", [4, 5])
def test_a_clean_session_forgets_the_earlier_one(
    broker: Broker, clients: Callable[..., Client], version: int
) -> None:
    assert broker.mqtt_port is not None
    client_id = f"forget-{version}"
    first = _persistent(broker.mqtt_port, version, client_id)
    first.subscribe(f"forget{version}/#", 1)
    first.stop()
    clean = clients(version, client_id=client_id)
    clean.connect()
    assert not clean.connack[0].session_present


def test_a_persistent_session_survives_a_restart(tmp_path: Path) -> None:
    config = Config(
        port=0, mqtt_port=0, mqtt_ws_port=0, data_dir=tmp_path / "data", management_port=None
    )
    with Broker.in_thread(config) as broker:
        assert broker.mqtt_port is not None
        sub = _persistent(broker.mqtt_port, 5, "restart-me")
        sub.subscribe("plant/+/alarm", 1)
        sub.stop()
        pub = Client(broker.mqtt_port, 5)
        pub.connect()
        pub.paho.publish("plant/p1/alarm", b"hot", qos=1).wait_for_publish(5)
        pub.stop()
    with Broker.in_thread(config) as broker:
        assert broker.mqtt_port is not None
        back = _persistent(broker.mqtt_port, 5, "restart-me")
        assert back.connack[0].session_present
        (message,) = back.received()
        assert (message.topic, message.payload, message.qos) == ("plant/p1/alarm", b"hot", 1)
        pub = Client(broker.mqtt_port, 5)
        pub.connect()
        pub.paho.publish("plant/p2/alarm", b"again", qos=1).wait_for_publish(5)
        wait_for(lambda: len(back.messages) == 2)  # the subscription came back too
        back.stop()
        pub.stop()
