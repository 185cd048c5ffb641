"""Users, permissions and topic permissions for MQTT clients (RabbitMQ's rules), and the
keep-alive the broker enforces."""

from __future__ import annotations

import socket
import struct
import time
import uuid
from collections.abc import Callable

import pytest
from mqtt_session_clients import Client, wait_for

from pigeon.auth.users import PermissionSet, TopicPermission
from pigeon.broker import Broker
from pigeon.config import Config


def _user(broker: Broker, *, topic_read: str = ".*", topic_write: str = ".*") -> str:
    assert broker.context is not None
    users = broker.context.users
    name = f"u-{uuid.uuid4().hex[:8]}"
    users.add_user(name, "secret")
    users.set_permission("/", name, PermissionSet())
    users.set_topic_permission(
        "/", name, TopicPermission("amq.topic", write=topic_write, read=topic_read)
    )
    return name


def _code(reason: object) -> int:
    return int(getattr(reason, "value", reason))  # type: ignore[call-overload]


@pytest.mark.parametrize(("version", "refused"), [(4, 0x80), (5, 0x87)])
def test_a_subscription_denied_by_topic_permissions_gets_its_code(
    broker: Broker, clients: Callable[..., Client], version: int, refused: int
) -> None:
    name = _user(broker, topic_read="^public\\.")
    client = clients(version)
    client.paho.username_pw_set(name, "secret")
    assert _code(client.connect()) == 0
    codes = client.subscribe("secret/#", 1)
    assert [_code(c) for c in codes] == [refused]
    codes = client.subscribe("public/#", 1)
    assert [_code(c) for c in codes] == [1]


def test_a_vhost_in_the_username_is_used(broker: Broker, clients: Callable[..., Client]) -> None:
    name = _user(broker)
    client = clients(5)
    client.paho.username_pw_set(f"/:{name}", "secret")
    assert _code(client.connect()) == 0


def test_mqtt_5_publish_to_a_denied_topic_gets_puback_0x87(
    broker: Broker, clients: Callable[..., Client]
) -> None:
    name = _user(broker, topic_write="^open\\.")
    client = clients(5)
    client.paho.username_pw_set(name, "secret")
    client.connect()
    acks: list[object] = []
    client.paho.on_publish = lambda c, u, mid, reason, props: acks.append(reason)
    client.paho.publish("closed/door", b"x", qos=1)
    wait_for(lambda: acks)
    assert _code(acks[0]) == 0x87
    assert client.paho.is_connected()


def test_mqtt_3_1_1_publish_to_a_denied_topic_closes_the_connection(
    broker: Broker, clients: Callable[..., Client]
) -> None:
    name = _user(broker, topic_write="^open\\.")
    client = clients(4)
    client.paho.username_pw_set(name, "secret")
    client.connect()
    client.paho.publish("closed/door", b"x", qos=1)
    wait_for(lambda: client.disconnected is not None)


def test_anonymous_clients_can_be_refused() -> None:
    config = Config(
        port=0,
        mqtt_port=0,
        mqtt_ws_port=0,
        data_dir=None,
        management_port=None,
        mqtt_anonymous="never",
    )
    with Broker.in_thread(config) as broker:
        assert broker.mqtt_port is not None
        client = Client(broker.mqtt_port, 5)
        try:
            assert _code(client.connect()) == 0x86
        finally:
            client.stop()


def test_a_silent_client_is_dropped_after_one_and_a_half_keepalives(broker: Broker) -> None:
    assert broker.mqtt_port is not None
    body = b"\x00\x04MQTT\x04\x02" + struct.pack(">H", 1) + b"\x00\x06silent"
    with socket.create_connection(("127.0.0.1", broker.mqtt_port), timeout=10) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        assert sock.recv(4) == b"\x20\x02\x00\x00"
        start = time.monotonic()
        assert sock.recv(1) == b""  # closed by the broker [MQTT-3.1.2-24]
        waited = time.monotonic() - start
    assert 1.4 <= waited < 5
