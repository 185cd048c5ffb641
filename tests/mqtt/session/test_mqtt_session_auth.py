"""MQTT logins beyond passwords: JWT access tokens as passwords, and 5.0's enhanced
authentication (an Authentication Method in CONNECT), which Pigeon, as RabbitMQ,
does not offer."""

from __future__ import annotations

import socket
import struct
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mqtt_session_clients import Client, wait_for

from pigeon.broker import Broker
from pigeon.config import Config

SCOPES = "rabbitmq.configure:*/* rabbitmq.write:*/* rabbitmq.read:*/*"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def token_broker(key: rsa.RSAPrivateKey) -> Iterator[Broker]:
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = Config(
        port=0,
        mqtt_port=0,
        mqtt_ws_port=0,
        data_dir=None,
        management_port=None,
        tokens={"keys": {"k1": public.decode()}},
    )
    with Broker.in_thread(config) as running:
        yield running


def token(key: rsa.RSAPrivateKey, lifetime: float, **claims: Any) -> str:
    body = {"sub": "svc", "aud": "rabbitmq", "scope": SCOPES, "exp": int(time.time() + lifetime)}
    return jwt.encode({**body, **claims}, key, algorithm="RS256", headers={"kid": "k1"})


def _string(text: bytes) -> bytes:
    return struct.pack(">H", len(text)) + text


def connect_packet(
    version: int,
    *,
    user: bytes | None = None,
    password: bytes | None = None,
    properties: bytes = b"",
) -> bytes:
    """A clean-session CONNECT (5.0: with ``properties``), length in 1 or 2 bytes."""
    flags = 0x02 | (0x80 if user is not None else 0) | (0x40 if password is not None else 0)
    body = _string(b"MQTT") + bytes([version, flags]) + struct.pack(">H", 60)
    if version == 5:
        body += bytes([len(properties)]) + properties
    body += _string(f"auth-{uuid.uuid4().hex[:8]}".encode())
    body += b"".join(_string(field) for field in (user, password) if field is not None)
    size = len(body)
    length = bytes([size]) if size < 128 else bytes([(size & 0x7F) | 0x80, size >> 7])
    return b"\x10" + length + body


def exchange(broker: Broker, packet: bytes) -> tuple[bytes, bool]:
    """The first packet the broker answers with, and whether it closed after it."""
    assert broker.mqtt_port is not None
    with socket.create_connection(("127.0.0.1", broker.mqtt_port), timeout=5) as sock:
        sock.sendall(packet)
        answer = b""
        while len(answer) < 2 or len(answer) < 2 + answer[1]:
            chunk = sock.recv(256)
            if not chunk:
                return answer, True
            answer += chunk
        if answer[3:4] == b"\x00":
            return answer, False  # accepted: not waited on
        try:
            return answer, sock.recv(256) == b""
        except ConnectionResetError:
            return answer, True


# -- JWT tokens as passwords ------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 5])
def test_a_valid_token_logs_in(token_broker: Broker, key: rsa.RSAPrivateKey, version: int) -> None:
    assert token_broker.mqtt_port is not None
    subscriber = Client(token_broker.mqtt_port, version)
    publisher = Client(token_broker.mqtt_port, version)
    try:
        for client in (subscriber, publisher):
            # The username is not looked at: the token's sub names the user.
            client.paho.username_pw_set("anyone", token(key, 60))
            assert client.connect() == 0
        topic = f"token/{uuid.uuid4().hex[:8]}"
        assert subscriber.subscribe(topic, 1)[0].value == 1
        publisher.paho.publish(topic, b"by token", qos=1)
        assert subscriber.received()[0].payload == b"by token"
    finally:
        subscriber.stop()
        publisher.stop()


def test_a_token_scopes_what_its_client_may_do(
    token_broker: Broker, key: rsa.RSAPrivateKey
) -> None:
    assert token_broker.mqtt_port is not None
    client = Client(token_broker.mqtt_port, 5)
    # Read, no write: a QoS 1 publish is refused with PUBACK 0x87 (RabbitMQ 3.13).
    read_only = "rabbitmq.configure:*/* rabbitmq.read:*/*"
    client.paho.username_pw_set("anyone", token(key, 60, scope=read_only))
    acks: list[Any] = []
    client.paho.on_publish = lambda c, u, mid, reason, props: acks.append(reason)
    try:
        assert client.connect() == 0
        client.paho.publish("token/denied", b"no", qos=1)
        deadline = time.monotonic() + 5
        while not acks and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [reason.value for reason in acks] == [0x87]
    finally:
        client.stop()


def test_the_connection_ends_with_its_token(token_broker: Broker, key: rsa.RSAPrivateKey) -> None:
    """As RabbitMQ, a token login is closed when its token expires (5.0: DISCONNECT
    0xA0 Maximum connect time first), and its will is published."""
    assert token_broker.mqtt_port is not None
    watcher = Client(token_broker.mqtt_port, 5)
    short = Client(token_broker.mqtt_port, 5)
    topic = f"token/will/{uuid.uuid4().hex[:8]}"
    try:
        watcher.paho.username_pw_set("anyone", token(key, 60))
        assert watcher.connect() == 0
        assert watcher.subscribe(topic, 1)[0].value == 1
        short.paho.username_pw_set("anyone", token(key, 2))
        short.paho.will_set(topic, b"token expired", qos=1)
        assert short.connect() == 0
        wait_for(lambda: short.disconnected is not None, timeout=10)
        assert short.disconnected.value == 0xA0
        assert [m.payload for m in watcher.received()] == [b"token expired"]
    finally:
        watcher.stop()
        short.stop()


def test_an_expired_token_is_refused_in_5(token_broker: Broker, key: rsa.RSAPrivateKey) -> None:
    expired = token(key, -60).encode()
    answer, closed = exchange(token_broker, connect_packet(5, user=b"svc", password=expired))
    assert answer[:4] == b"\x20\x03\x00\x86"  # Bad User Name or Password
    assert closed


def test_an_expired_token_is_refused_in_3_1_1(token_broker: Broker, key: rsa.RSAPrivateKey) -> None:
    expired = token(key, -60).encode()
    answer, closed = exchange(token_broker, connect_packet(4, user=b"svc", password=expired))
    assert (answer, closed) == (b"\x20\x02\x00\x04", True)


def test_a_token_signed_by_another_key_is_refused(token_broker: Broker) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = token(stranger, 60).encode()
    answer, _ = exchange(token_broker, connect_packet(4, user=b"svc", password=forged))
    assert answer == b"\x20\x02\x00\x04"


# -- enhanced authentication ------------------------------------------------------------


def _authentication_method(name: bytes, data: bytes | None = None) -> bytes:
    properties = b"\x15" + _string(name)
    return properties + (b"\x16" + _string(data) if data is not None else b"")


@pytest.mark.parametrize("data", [None, b"client-first"])
def test_an_authentication_method_gets_0x8c(token_broker: Broker, data: bytes | None) -> None:
    # [MQTT-4.12.0-1]: a method the server does not support: CONNACK 0x8C, then close.
    packet = connect_packet(
        5, user=b"guest", password=b"guest", properties=_authentication_method(b"SCRAM-SHA-1", data)
    )
    answer, closed = exchange(token_broker, packet)
    assert answer[:4] == b"\x20\x03\x00\x8c"
    assert closed


def test_auth_without_a_method_is_a_protocol_error(token_broker: Broker) -> None:
    """§4.12: a client that named no method sends no AUTH; one that does gets
    DISCONNECT 0x82 Protocol Error after its accepted CONNECT."""
    assert token_broker.mqtt_port is not None
    with socket.create_connection(("127.0.0.1", token_broker.mqtt_port), timeout=5) as sock:
        sock.sendall(connect_packet(5, user=b"guest", password=b"guest"))
        answer = b""
        while len(answer) < 2 or len(answer) < 2 + answer[1]:
            answer += sock.recv(256)
        assert answer[3] == 0x00
        sock.sendall(b"\xf0\x02\x18\x00")  # AUTH, Continue authentication, no properties
        rest = answer[2 + answer[1] :]
        while len(rest) < 3 and (chunk := sock.recv(256)):
            rest += chunk
        assert rest[:1] == b"\xe0" and rest[2:3] == b"\x82"  # DISCONNECT 0x82
