"""What a persistent session gets back when its client returns, beyond its queue: the
shared subscriptions it made, and the retained QoS 1/2 messages it had not acknowledged
(sent again with DUP [MQTT-4.4.0-1]). Packets through the state machine (a manual
clock); a broker restart over a socket with paho for the shared subscription."""

from __future__ import annotations

from pathlib import Path

from mqtt_session_clients import Client
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties
from test_mqtt_session_machine import Peer, clock, mqtt, opened

from pigeon.broker import Broker
from pigeon.config import Config
from pigeon.protocols.mqtt.packets import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Puback,
    Publish,
    Subscribe,
    SubscriptionOptions,
)
from pigeon.protocols.mqtt.properties import Properties
from pigeon.protocols.mqtt.session import MQTTSession
from pigeon.transport.glue import Hub
from unit.glue_fakes import ManualClock

__all__ = ["clock", "mqtt"]  # the fixtures of the state machine's tests

KEEP = Properties(session_expiry_interval=3600)


def test_a_resumed_session_gets_its_shared_subscription_back(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    member = opened(mqtt, clock, MQTT_5, "shared-member", properties=KEEP)
    member.send(Subscribe(1, (("$share/g/chores/+", SubscriptionOptions(qos=1)),)))
    member.send(Disconnect())
    back = Peer(mqtt, clock, MQTT_5)
    (connack,) = back.send(Connect(MQTT_5, "shared-member", clean_start=False, properties=KEEP))
    assert isinstance(connack, Connack) and connack.session_present
    pub = opened(mqtt, clock, MQTT_5, "shared-boss")
    pub.send(Publish("chores/a", b"job", qos=1, packet_id=1))
    (delivery,) = back.answers()
    assert isinstance(delivery, Publish) and (delivery.topic, delivery.payload) == (
        "chores/a",
        b"job",
    )


def test_a_persistent_groups_messages_wait_while_its_members_are_away(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    member = opened(mqtt, clock, MQTT_5, "away-member", properties=KEEP)
    member.send(Subscribe(1, (("$share/g3/later/+", SubscriptionOptions(qos=1)),)))
    member.send(Disconnect())
    pub = opened(mqtt, clock, MQTT_5, "away-boss")
    assert pub.send(Publish("later/a", b"kept", qos=1, packet_id=1)) == [Puback(1)]
    back = Peer(mqtt, clock, MQTT_5)
    answers = back.send(Connect(MQTT_5, "away-member", clean_start=False, properties=KEEP))
    assert [p.payload for p in answers if isinstance(p, Publish)] == [b"kept"]


def test_a_clean_session_does_not_get_its_shared_subscription_back(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    member = opened(mqtt, clock, MQTT_5, "gone-member", properties=KEEP)
    member.send(Subscribe(1, (("$share/g2/done/+", SubscriptionOptions(qos=1)),)))
    member.send(Disconnect())
    fresh = opened(mqtt, clock, MQTT_5, "gone-member", properties=KEEP)  # clean start
    pub = opened(mqtt, clock, MQTT_5, "gone-boss")
    pub.send(Publish("done/a", b"x", qos=1, packet_id=1))
    assert fresh.answers() == []  # (the group's queue keeps it for members to come)


def test_an_unacknowledged_retained_qos_1_message_is_sent_again(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    pub = opened(mqtt, clock, MQTT_3_1_1, "ret-pub")
    pub.send(Publish("ret/t", b"kept", qos=1, packet_id=1, retain=True))
    sub = opened(mqtt, clock, MQTT_3_1_1, "ret-sub", clean_start=False)
    _, first = sub.send(Subscribe(1, (("ret/#", SubscriptionOptions(qos=1)),)))
    assert isinstance(first, Publish) and first.retain and not first.dup
    sub.transport.abort()  # no PUBACK
    clock.run()
    back = Peer(mqtt, clock, MQTT_3_1_1)
    connack, again = back.send(Connect(MQTT_3_1_1, "ret-sub", clean_start=False))
    assert isinstance(connack, Connack) and connack.session_present
    assert isinstance(again, Publish) and again.packet_id is not None
    assert (again.topic, again.payload, again.retain, again.dup) == ("ret/t", b"kept", True, True)
    assert back.send(Puback(again.packet_id)) == []
    back.transport.abort()
    clock.run()
    last = Peer(mqtt, clock, MQTT_3_1_1)
    assert len(last.send(Connect(MQTT_3_1_1, "ret-sub", clean_start=False))) == 1  # acked


def test_a_shared_subscription_survives_a_restart(tmp_path: Path) -> None:
    config = Config(port=0, mqtt_port=0, data_dir=tmp_path / "data", management_port=None)
    props = PahoProperties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    with Broker.in_thread(config) as broker:
        assert broker.mqtt_port is not None
        member = Client(broker.mqtt_port, 5, "restart-member")
        member.connect(clean_start=False, properties=props)
        member.subscribe("$share/crew/tasks/#", 1)
        member.stop()
        pub = Client(broker.mqtt_port, 5)
        pub.connect()
        pub.paho.publish("tasks/0", b"while away", qos=1).wait_for_publish(5)
        pub.stop()
    with Broker.in_thread(config) as broker:
        assert broker.mqtt_port is not None
        member = Client(broker.mqtt_port, 5, "restart-member")
        member.connect(clean_start=False, properties=props)
        assert member.connack[0].session_present
        pub = Client(broker.mqtt_port, 5)
        pub.connect()
        pub.paho.publish("tasks/1", b"do it", qos=1).wait_for_publish(5)
        got = [(m.topic, m.payload) for m in member.received(2)]
        assert got == [("tasks/0", b"while away"), ("tasks/1", b"do it")]
        member.stop()
        pub.stop()


def test_a_message_that_expires_while_its_session_is_away_is_not_delivered(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    """[MQTT-3.3.2-5]: gone once its interval passes in the offline session's queue; the
    other one delivered with what is left of its interval [MQTT-3.3.2-6]."""
    sub = opened(mqtt, clock, MQTT_5, "exp-sub", properties=KEEP)
    sub.send(Subscribe(1, (("exp/#", SubscriptionOptions(qos=1)),)))
    sub.send(Disconnect())
    pub = opened(mqtt, clock, MQTT_5, "exp-pub")
    short = Properties(message_expiry_interval=5)
    pub.send(Publish("exp/a", b"short", qos=1, packet_id=1, properties=short))
    pub.send(
        Publish(
            "exp/b", b"long", qos=1, packet_id=2, properties=Properties(message_expiry_interval=30)
        )
    )
    clock.advance(10)
    back = Peer(mqtt, clock, MQTT_5)
    connack, *deliveries = back.send(Connect(MQTT_5, "exp-sub", clean_start=False, properties=KEEP))
    assert isinstance(connack, Connack) and connack.session_present
    assert [(p.payload, p.properties.message_expiry_interval) for p in deliveries] == [  # type: ignore[union-attr]
        (b"long", 20)
    ]
