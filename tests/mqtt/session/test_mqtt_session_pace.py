"""A QoS 1 subscriber keeps pace with a QoS 1 publisher, turn for turn.

Sans-IO, as test_mqtt_session_machine.py: the sessions run under the shared
transport glue on fake transports and a manual clock, so a "turn" is one read of
the publisher's socket (at most the glue's budget of packets) and one read of the
subscriber's PUBACKs. A session's inflight window smaller than what a publisher puts
into a queue in one turn made the backlog grow by the difference on every turn, for
as long as the publisher went on (issue 15's QoS 1 run: 12,000 PUBACKs/s against
1,100 deliveries/s, seconds of delay).
"""

from __future__ import annotations

import pytest

from pigeon.auth.users import UserStore
from pigeon.core.node import Node
from pigeon.operations.services import Services
from pigeon.operations.vocabulary import RABBITMQ
from pigeon.protocols.mqtt.codec import Decoder, encode
from pigeon.protocols.mqtt.packets import (
    MQTT_3_1_1,
    Connack,
    Connect,
    Packet,
    Puback,
    Publish,
    Suback,
    Subscribe,
    SubscriptionOptions,
)
from pigeon.protocols.mqtt.reasons import ReasonCode
from pigeon.protocols.mqtt.session import MQTTSession, session_factory
from pigeon.protocols.mqtt.settings import MQTTContext
from pigeon.transport.glue import Hub
from unit.glue_fakes import ManualClock, connect, hub


class Peer:
    def __init__(self, mqtt: Hub[MQTTSession], clock: ManualClock, client_id: str) -> None:
        self.connection, self.transport = connect(mqtt, clock)
        self.clock = clock
        self.decoder = Decoder(version=MQTT_3_1_1, from_client=False)
        self.seen = 0
        (connack,) = self.send(Connect(MQTT_3_1_1, client_id))
        assert isinstance(connack, Connack) and connack.reason_code == ReasonCode.SUCCESS

    def send(self, *packets: Packet) -> list[Packet]:
        self.connection.data_received(b"".join(encode(p, MQTT_3_1_1) for p in packets))
        self.clock.run()
        data = self.transport.output[self.seen :]
        self.seen += len(data)
        return self.decoder.feed(data)


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
    return hub(session_factory(MQTTContext(services, clock)), clock, limits=services.limits)


def test_every_publish_of_a_turn_reaches_a_qos_1_subscriber_in_that_turn(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    sub = Peer(mqtt, clock, "pace-sub")
    assert sub.send(Subscribe(1, (("pace", SubscriptionOptions(qos=1)),))) == [
        Suback(1, (ReasonCode.GRANTED_QOS_1,))
    ]
    pub = Peer(mqtt, clock, "pace-pub")
    turn = mqtt.tuning.budget  # what the glue handles of one connection per turn
    received: list[bytes] = []
    owed: list[Packet] = []
    for round_ in range(20):
        batch = [
            Publish("pace", b"%d" % (round_ * turn + n), qos=1, packet_id=n + 1)
            for n in range(turn)
        ]
        assert pub.send(*batch) == [Puback(n + 1) for n in range(turn)]
        # One turn of the subscriber: one write of the PUBACKs it owes, as a client
        # reading its socket sends them, and what is there for it now.
        deliveries = sub.send(*owed)
        assert all(isinstance(p, Publish) and p.qos == 1 for p in deliveries)
        received += [p.payload for p in deliveries if isinstance(p, Publish)]
        owed = [Puback(p.packet_id) for p in deliveries if isinstance(p, Publish) and p.packet_id]
        assert len(received) == (round_ + 1) * turn, f"behind after round {round_}"
    assert received == [b"%d" % n for n in range(20 * turn)]


def test_one_read_of_publishes_to_several_topics_keeps_their_order(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    # Publishes to one topic are routed together (a run); a change of topic, QoS 0
    # among QoS 1 or a RETAIN ends a run, and none of that may reorder anything.
    sub = Peer(mqtt, clock, "order-sub")
    sub.send(Subscribe(1, (("order/+", SubscriptionOptions(qos=1)),)))
    pub = Peer(mqtt, clock, "order-pub")
    topics = ["order/a"] * 5 + ["order/b"] * 3 + ["order/a"] * 4 + ["order/c"]
    batch = [
        Publish(topic, b"%d" % n, qos=n % 2, retain=n == 7, packet_id=n + 1 if n % 2 else None)
        for n, topic in enumerate(topics)
    ]
    assert pub.send(*batch) == [Puback(n + 1) for n in range(len(topics)) if n % 2]
    deliveries = [p for p in sub.send() if isinstance(p, Publish)]
    assert [(p.topic, p.payload) for p in deliveries] == [
        (topic, b"%d" % n) for n, topic in enumerate(topics)
    ]
    assert [p.qos for p in deliveries] == [n % 2 for n in range(len(topics))]
