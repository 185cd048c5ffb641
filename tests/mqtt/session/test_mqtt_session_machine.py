"""The MQTT session as a state machine: bytes in, packets out, a manual clock, no sockets.

The session runs under the shared transport glue on a fake transport
(tests/unit/glue_fakes.py), with a core of its own in memory.
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
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Will,
)
from pigeon.protocols.mqtt.properties import Properties
from pigeon.protocols.mqtt.reasons import ReasonCode
from pigeon.protocols.mqtt.session import MQTTSession, session_factory
from pigeon.protocols.mqtt.settings import MQTTContext
from pigeon.transport.glue import Connection, Hub
from unit.glue_fakes import ManualClock, connect, hub


class Peer:
    """One client connection: packets in, the packets the broker answered out."""

    def __init__(self, hub: Hub[MQTTSession], clock: ManualClock, version: int) -> None:
        self.connection, self.transport = connect(hub, clock)
        self.clock = clock
        self.version = version
        self.decoder = Decoder(version=version, from_client=False)
        self.seen = 0

    def send(self, *packets: Packet) -> list[Packet]:
        self.connection.data_received(b"".join(encode(p, self.version) for p in packets))
        self.clock.run()
        return self.answers()

    def answers(self) -> list[Packet]:
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
    context = MQTTContext(services, clock)
    return hub(session_factory(context), clock, limits=services.limits)


def opened(
    mqtt: Hub[MQTTSession], clock: ManualClock, version: int, client_id: str, **kw: object
) -> Peer:
    peer = Peer(mqtt, clock, version)
    (connack,) = peer.send(Connect(version, client_id, **kw))  # type: ignore[arg-type]
    assert isinstance(connack, Connack) and connack.reason_code == ReasonCode.SUCCESS
    return peer


def test_connect_subscribe_publish_ack_as_packets(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    sub = opened(mqtt, clock, MQTT_3_1_1, "sub")
    suback = sub.send(Subscribe(1, (("t/+", SubscriptionOptions(qos=1)),)))
    assert suback == [Suback(1, (ReasonCode.GRANTED_QOS_1,))]
    pub = opened(mqtt, clock, MQTT_3_1_1, "pub")
    assert pub.send(Publish("t/a", b"hi", qos=1, packet_id=5)) == [Puback(5)]
    (delivery,) = sub.answers()
    assert isinstance(delivery, Publish) and delivery.packet_id is not None
    assert (delivery.topic, delivery.payload, delivery.qos, delivery.dup) == (
        "t/a",
        b"hi",
        1,
        False,
    )
    assert sub.send(Puback(delivery.packet_id)) == []
    assert sub.send(Pingreq()) == [Pingresp()]


def test_a_resent_qos_2_publish_is_routed_once(mqtt: Hub[MQTTSession], clock: ManualClock) -> None:
    sub = opened(mqtt, clock, MQTT_5, "sub2")
    sub.send(Subscribe(1, (("q2", SubscriptionOptions(qos=2)),)))
    pub = opened(mqtt, clock, MQTT_5, "pub2")
    first = Publish("q2", b"once", qos=2, packet_id=9)
    assert pub.send(first) == [Pubrec(9)]
    again = Publish("q2", b"once", qos=2, packet_id=9, dup=True)
    assert pub.send(again) == [Pubrec(9)]  # [MQTT-4.3.3-10]: not routed again
    assert pub.send(Pubrel(9)) == [Pubcomp(9)]
    deliveries = sub.answers()
    assert [type(p) for p in deliveries] == [Publish]
    (delivery,) = deliveries
    assert isinstance(delivery, Publish) and delivery.packet_id is not None
    assert sub.send(Pubrec(delivery.packet_id)) == [Pubrel(delivery.packet_id)]
    assert sub.send(Pubcomp(delivery.packet_id)) == []


def test_keepalive_drops_a_client_silent_for_one_and_a_half_intervals(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    peer = opened(mqtt, clock, MQTT_3_1_1, "quiet", keepalive=10)
    clock.advance(14)
    assert not peer.transport.closing
    peer.send(Pingreq())  # heard from: the count starts again
    clock.advance(14)
    assert not peer.transport.closing
    clock.advance(2)  # 16 s > 15 s [MQTT-3.1.2-24]
    assert peer.transport.aborted


def test_no_connect_in_time_closes_the_connection(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    connection, transport = connect(mqtt, clock)
    clock.advance(11)
    assert transport.aborted
    assert isinstance(connection, Connection)


def test_the_first_packet_must_be_connect(mqtt: Hub[MQTTSession], clock: ManualClock) -> None:
    peer = Peer(mqtt, clock, MQTT_5)
    peer.connection.data_received(encode(Pingreq(), MQTT_5))
    clock.run()
    assert peer.transport.closing


def test_takeover_tells_the_old_5_0_connection(mqtt: Hub[MQTTSession], clock: ManualClock) -> None:
    old = opened(mqtt, clock, MQTT_5, "same")
    opened(mqtt, clock, MQTT_5, "same")
    assert old.answers() == [Disconnect(ReasonCode.SESSION_TAKEN_OVER)]
    assert old.transport.closing


def test_a_3_1_1_client_with_an_empty_id_and_no_clean_session_is_rejected(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    peer = Peer(mqtt, clock, MQTT_3_1_1)
    (connack,) = peer.send(Connect(MQTT_3_1_1, "", clean_start=False))
    assert connack == Connack(False, ReasonCode.CLIENT_IDENTIFIER_NOT_VALID)
    assert peer.transport.closing


def test_the_will_is_published_when_the_connection_is_lost(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    watcher = opened(mqtt, clock, MQTT_5, "watcher")
    watcher.send(Subscribe(1, (("last/words", SubscriptionOptions(qos=0)),)))
    dying = opened(mqtt, clock, MQTT_5, "dying", will=Will("last/words", b"bye"))
    dying.transport.abort()
    clock.run()
    (will,) = watcher.answers()
    assert isinstance(will, Publish) and will.payload == b"bye"


def test_the_will_waits_for_its_delay(mqtt: Hub[MQTTSession], clock: ManualClock) -> None:
    watcher = opened(mqtt, clock, MQTT_5, "w-watcher")
    watcher.send(Subscribe(1, (("delayed/will", SubscriptionOptions(qos=0)),)))
    will = Will("delayed/will", b"late", properties=Properties(will_delay_interval=30))
    session = Properties(session_expiry_interval=600)
    dying = opened(mqtt, clock, MQTT_5, "w-dying", will=will, properties=session)
    dying.transport.abort()
    clock.advance(29)
    assert watcher.answers() == []
    clock.advance(2)
    (published,) = watcher.answers()
    assert isinstance(published, Publish) and published.payload == b"late"


def test_a_client_back_before_the_will_delay_cancels_the_will(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    watcher = opened(mqtt, clock, MQTT_5, "c-watcher")
    watcher.send(Subscribe(1, (("cancel/will", SubscriptionOptions(qos=0)),)))
    will = Will("cancel/will", b"late", properties=Properties(will_delay_interval=30))
    session = Properties(session_expiry_interval=600)
    dying = opened(mqtt, clock, MQTT_5, "c-dying", will=will, properties=session)
    dying.transport.abort()
    clock.advance(10)
    opened(mqtt, clock, MQTT_5, "c-dying", clean_start=False, properties=session)
    clock.advance(60)
    assert watcher.answers() == []  # [MQTT-3.1.3-9]


def test_disconnect_with_will_message_publishes_the_will(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    watcher = opened(mqtt, clock, MQTT_5, "d-watcher")
    watcher.send(Subscribe(1, (("asked/will", SubscriptionOptions(qos=0)),)))
    leaving = opened(mqtt, clock, MQTT_5, "d-leaving", will=Will("asked/will", b"as asked"))
    leaving.send(Disconnect(ReasonCode.DISCONNECT_WITH_WILL_MESSAGE))
    (published,) = watcher.answers()
    assert isinstance(published, Publish) and published.payload == b"as asked"


def test_no_local_skips_the_sessions_own_messages(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    peer = opened(mqtt, clock, MQTT_5, "self-talk")
    options = SubscriptionOptions(qos=1, no_local=True)
    peer.send(Subscribe(1, (("echo/#", options),)))
    assert peer.send(Publish("echo/a", b"mine", qos=1, packet_id=2)) == [Puback(2)]
    other = opened(mqtt, clock, MQTT_5, "other-talk")
    other.send(Publish("echo/a", b"theirs", qos=0))
    (delivery,) = peer.answers()
    assert isinstance(delivery, Publish) and delivery.payload == b"theirs"


def test_a_message_above_the_clients_maximum_packet_size_is_not_sent(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    small = Properties(maximum_packet_size=64)
    peer = opened(mqtt, clock, MQTT_5, "small-client", properties=small)
    peer.send(Subscribe(1, (("size/#", SubscriptionOptions(qos=1)),)))
    other = opened(mqtt, clock, MQTT_5, "size-publisher")
    other.send(Publish("size/a", b"x" * 100, qos=1, packet_id=1))
    other.send(Publish("size/a", b"fits", qos=1, packet_id=2))
    (delivery,) = peer.answers()  # [MQTT-3.1.2-25]
    assert isinstance(delivery, Publish) and delivery.payload == b"fits"


def test_a_clients_topic_alias_names_the_topic_later(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    sub = opened(mqtt, clock, MQTT_5, "alias-sub")
    sub.send(Subscribe(1, (("alias/t", SubscriptionOptions(qos=0)),)))
    pub = opened(mqtt, clock, MQTT_5, "alias-pub")
    pub.send(Publish("alias/t", b"one", properties=Properties(topic_alias=1)))
    pub.send(Publish("", b"two", properties=Properties(topic_alias=1)))
    assert [(p.topic, p.payload) for p in sub.answers() if isinstance(p, Publish)] == [
        ("alias/t", b"one"),
        ("alias/t", b"two"),
    ]


def test_a_topic_alias_above_the_maximum_is_refused(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    pub = opened(mqtt, clock, MQTT_5, "alias-bad")
    answers = pub.send(Publish("alias/t", b"x", properties=Properties(topic_alias=65)))
    assert answers == [Disconnect(ReasonCode.TOPIC_ALIAS_INVALID)]
    assert pub.transport.closing


def test_unacknowledged_deliveries_come_again_with_dup_after_a_reconnect(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    keep = Properties(session_expiry_interval=600)
    sub = opened(mqtt, clock, MQTT_5, "dup-sub", properties=keep)
    sub.send(Subscribe(1, (("dup/t", SubscriptionOptions(qos=1)),)))
    pub = opened(mqtt, clock, MQTT_5, "dup-pub")
    pub.send(Publish("dup/t", b"again", qos=1, packet_id=1))
    (first,) = sub.answers()
    assert isinstance(first, Publish) and not first.dup
    sub.transport.abort()  # no PUBACK
    clock.run()
    back = Peer(mqtt, clock, MQTT_5)
    connack, second = back.send(Connect(MQTT_5, "dup-sub", clean_start=False, properties=keep))
    assert isinstance(connack, Connack) and connack.session_present
    assert (
        isinstance(second, Publish) and second.dup and second.payload == b"again"
    )  # [MQTT-4.4.0-1]


def test_a_pubrel_waiting_for_pubcomp_is_sent_again_after_a_reconnect(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    keep = Properties(session_expiry_interval=600)
    sub = opened(mqtt, clock, MQTT_5, "rel-sub", properties=keep)
    sub.send(Subscribe(1, (("rel/t", SubscriptionOptions(qos=2)),)))
    pub = opened(mqtt, clock, MQTT_5, "rel-pub")
    pub.send(Publish("rel/t", b"exactly", qos=2, packet_id=1), Pubrel(1))
    (delivery,) = sub.answers()
    assert isinstance(delivery, Publish) and delivery.packet_id is not None
    assert sub.send(Pubrec(delivery.packet_id)) == [Pubrel(delivery.packet_id)]
    sub.transport.abort()  # no PUBCOMP
    clock.run()
    back = Peer(mqtt, clock, MQTT_5)
    answers = back.send(Connect(MQTT_5, "rel-sub", clean_start=False, properties=keep))
    assert answers[1:] == [Pubrel(delivery.packet_id)]  # not the message again
    assert back.send(Pubcomp(delivery.packet_id)) == []


def test_a_shared_subscription_hands_each_message_to_one_member(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    members = [opened(mqtt, clock, MQTT_5, f"member-{n}") for n in range(2)]
    for member in members:
        assert member.send(Subscribe(1, (("$share/g/jobs/+", SubscriptionOptions(qos=0)),))) == [
            Suback(1, (ReasonCode.GRANTED_QOS_0,))
        ]
    pub = opened(mqtt, clock, MQTT_5, "boss")
    for n in range(4):
        pub.send(Publish("jobs/a", f"job {n}".encode()))
    got = [[p.payload for p in m.answers() if isinstance(p, Publish)] for m in members]
    assert sorted(got[0] + got[1]) == [b"job 0", b"job 1", b"job 2", b"job 3"]
    assert got[0] and got[1]
