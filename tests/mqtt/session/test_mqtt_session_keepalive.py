"""Keep-alive and session expiry as a state machine (a manual clock, no sockets):
DISCONNECT 0x8D on a missed keep-alive (5.0), Server Keep Alive, and a 5.0
DISCONNECT's Session Expiry Interval; the 0x8D on a real socket too."""

from __future__ import annotations

import socket

import pytest
from test_mqtt_session_machine import Peer, opened

from pigeon.auth.users import UserStore
from pigeon.broker import Broker
from pigeon.core.node import Node
from pigeon.operations.services import Services
from pigeon.operations.vocabulary import RABBITMQ
from pigeon.protocols.mqtt.packets import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
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
def node(clock: ManualClock) -> Node:
    node = Node(clock, vocabulary=RABBITMQ)
    node.add_vhost("/")
    return node


@pytest.fixture
def mqtt(clock: ManualClock, node: Node) -> Hub[MQTTSession]:
    users = UserStore()
    users.add_user("guest", "guest", frozenset({"administrator"}), loopback_only=True)
    users.set_permission("/", "guest")
    services = Services(node=node, users=users)
    context = MQTTContext(services, clock, MQTTSettings(max_keepalive=60))
    return hub(session_factory(context), clock, limits=services.limits)


def test_a_5_0_client_that_misses_its_keepalive_is_told_0x8d(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    peer = opened(mqtt, clock, MQTT_5, "quiet5", keepalive=10)
    clock.advance(14)
    assert peer.answers() == []
    clock.advance(6)  # past 15 s [MQTT-3.1.2-24], at the check's next tick
    assert peer.answers() == [Disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT)]
    assert peer.transport.closing


@pytest.mark.parametrize("asked", [0, 600])
def test_a_5_0_keepalive_above_the_maximum_is_lowered(
    mqtt: Hub[MQTTSession], clock: ManualClock, asked: int
) -> None:
    peer = Peer(mqtt, clock, MQTT_5)
    (connack,) = peer.send(Connect(MQTT_5, "slow", keepalive=asked))
    assert isinstance(connack, Connack) and connack.reason_code == ReasonCode.SUCCESS
    assert connack.properties.server_keep_alive == 60  # [MQTT-3.2.2-21]
    clock.advance(89)
    assert peer.send(Pingreq()) == [Pingresp()]
    clock.advance(91)  # 1.5 x 60 s of the Server Keep Alive, not the client's
    assert peer.answers() == [Disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT)]


def test_a_5_0_keepalive_within_the_maximum_is_kept(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    peer = Peer(mqtt, clock, MQTT_5)
    (connack,) = peer.send(Connect(MQTT_5, "fine", keepalive=30))
    assert isinstance(connack, Connack) and connack.properties.server_keep_alive is None


def test_a_3_1_1_keepalive_above_the_maximum_is_refused(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    peer = Peer(mqtt, clock, MQTT_3_1_1)
    (connack,) = peer.send(Connect(MQTT_3_1_1, "slow311", keepalive=61))
    assert isinstance(connack, Connack)
    assert connack.reason_code == ReasonCode.CLIENT_IDENTIFIER_NOT_VALID  # 3.1.1: 0x02
    assert peer.transport.closing


def test_disconnect_may_not_give_an_expiry_to_a_session_that_had_none(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    peer = opened(mqtt, clock, MQTT_5, "no-expiry")
    answers = peer.send(Disconnect(properties=Properties(session_expiry_interval=60)))
    assert answers == [Disconnect(ReasonCode.PROTOCOL_ERROR)]  # [MQTT-3.14.2-2]


def test_disconnect_with_expiry_0_ends_a_persistent_session(
    mqtt: Hub[MQTTSession], clock: ManualClock, node: Node
) -> None:
    kept = Properties(session_expiry_interval=3600)
    peer = opened(mqtt, clock, MQTT_5, "ending", properties=kept)
    peer.send(Subscribe(1, (("t", SubscriptionOptions(qos=1)),)))
    assert "mqtt-subscription-endingqos1" in node.vhosts["/"].queues
    peer.send(Disconnect(properties=Properties(session_expiry_interval=0)))
    assert "mqtt-subscription-endingqos1" not in node.vhosts["/"].queues
    again = Peer(mqtt, clock, MQTT_5)
    (connack,) = again.send(Connect(MQTT_5, "ending", clean_start=False, properties=kept))
    assert isinstance(connack, Connack) and not connack.session_present


def test_disconnect_may_shorten_a_session_expiry(
    mqtt: Hub[MQTTSession], clock: ManualClock
) -> None:
    kept = Properties(session_expiry_interval=3600)
    peer = opened(mqtt, clock, MQTT_5, "shorter", properties=kept)
    peer.send(Disconnect(properties=Properties(session_expiry_interval=10)))
    clock.advance(11)
    again = Peer(mqtt, clock, MQTT_5)
    (connack,) = again.send(Connect(MQTT_5, "shorter", clean_start=False, properties=kept))
    assert isinstance(connack, Connack) and not connack.session_present


def test_a_silent_5_0_client_reads_disconnect_0x8d_on_its_socket(broker: Broker) -> None:
    """Over a socket: CONNECT with keep-alive 1 s, then silence; within 1.5 s and a
    check's tick the broker writes DISCONNECT 0x8D and closes."""
    assert broker.mqtt_port is not None
    body = b"\x00\x04MQTT\x05\x02\x00\x01\x00" + b"\x00\x06silent"
    with socket.create_connection(("127.0.0.1", broker.mqtt_port), timeout=10) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        received = b""
        while chunk := sock.recv(1024):  # until the broker closes
            received += chunk
    connack_length = received[1]
    after = received[2 + connack_length :]
    assert received[0] == 0x20 and received[3] == 0  # CONNACK, success
    assert after in (b"\xe0\x01\x8d", b"\xe0\x02\x8d\x00")  # DISCONNECT 0x8D
