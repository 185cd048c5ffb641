"""QoS 0, 1 and 2 in both directions: the publisher's flow ends with the acknowledgement
of its QoS (none, PUBACK, PUBREC/PUBREL/PUBCOMP), the subscriber gets the message at the
lower of the publish and subscription QoS ([MQTT-3.8.4-6]), in order, exactly once."""

from __future__ import annotations

import pytest
from mqtt_client_kit import barrier


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_delivery_qos_is_the_lower_of_publish_and_subscription(
    client, names, v5: bool, pub_qos: int, sub_qos: int
) -> None:
    topic = names.topic("q")
    sub = client("sub", v5=v5)
    sub.connect()
    assert sub.subscribe(topic, qos=sub_qos) == [sub_qos]  # SUBACK grants the QoS asked for
    pub = client("pub", v5=v5)
    pub.connect()
    for i in range(5):
        assert pub.publish(topic, f"m{i}".encode(), qos=pub_qos) == 0  # 0x00 Success
    got = sub.expect(5)
    assert [m.payload for m in got] == [f"m{i}".encode() for i in range(5)]
    assert {m.qos for m in got} == {min(pub_qos, sub_qos)}
    assert {m.topic for m in got} == {topic}
    assert not any(m.retain for m in got)
    assert barrier(sub, topic) == []  # nothing delivered twice


@pytest.mark.parametrize("qos", [1, 2])
def test_many_messages_keep_their_order(client, names, qos: int) -> None:
    """[MQTT-4.6.0-5]: one publisher's messages on one topic arrive in the order sent."""
    topic = names.topic("order")
    sub = client("sub")
    sub.connect()
    sub.subscribe(topic, qos=qos)
    pub = client("pub")
    pub.connect()
    infos = [pub.paho.publish(topic, str(i).encode(), qos=qos) for i in range(200)]
    for info in infos:
        info.wait_for_publish(10)
    got = sub.expect(200)
    assert [int(m.payload) for m in got] == list(range(200))


def test_qos2_message_received_exactly_once_when_subscriber_acks_late(client, names) -> None:
    """A QoS 2 delivery the subscriber takes its time to acknowledge (manual ack) is not
    handed over twice."""
    topic = names.topic("late")
    sub = client("sub", manual_ack=True)
    sub.connect()
    sub.subscribe(topic, qos=2)
    pub = client("pub")
    pub.connect()
    pub.publish(topic, b"once", qos=2)
    (m,) = sub.expect(1)
    assert m.qos == 2
    sub.paho.ack(m.mid, m.qos)
    assert [x.payload for x in barrier(sub, topic)] == []
