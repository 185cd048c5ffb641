"""OAuth 2.0 / JWT access tokens as AMQP passwords, configured as a user would."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pika
import pika.exceptions
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pigeon.broker import Broker
from pigeon.config import Config

SCOPES = "rabbitmq.configure:*/* rabbitmq.write:*/* rabbitmq.read:*/*"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def broker(key: rsa.RSAPrivateKey) -> Iterator[Broker]:
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = Config(
        mqtt_port=0,
        mqtt_ws_port=0,
        port=0,
        data_dir=None,
        management_port=None,
        tokens={"keys": {"k1": public.decode()}},
    )
    with Broker.in_thread(config) as running:
        yield running


def token(key: rsa.RSAPrivateKey, lifetime: float, **claims: Any) -> str:
    body = {
        "sub": "svc",
        "aud": "rabbitmq",
        "scope": SCOPES,
        "exp": int(time.time() + lifetime),
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def params(broker: Broker, password: str) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        "127.0.0.1", broker.amqp_port, credentials=pika.PlainCredentials("", password)
    )


def test_a_valid_token_logs_in_with_its_scopes(broker: Broker, key: rsa.RSAPrivateKey) -> None:
    connection = pika.BlockingConnection(params(broker, token(key, 60)))
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, b"by token")
        assert channel.basic_get(queue, auto_ack=True)[2] == b"by token"
    finally:
        connection.close()


def test_a_token_signed_by_another_key_is_refused(broker: Broker) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(params(broker, token(stranger, 60)))


def test_the_connection_closes_when_its_token_expires(
    broker: Broker, key: rsa.RSAPrivateKey
) -> None:
    connection = pika.BlockingConnection(params(broker, token(key, 2)))
    try:
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                connection.process_data_events(time_limit=0.5)
        assert closed.value.reply_code == 320
        assert "credential expired" in closed.value.reply_text
    finally:
        if connection.is_open:
            connection.close()


def test_update_secret_extends_a_token_connection(broker: Broker, key: rsa.RSAPrivateKey) -> None:
    connection = pika.BlockingConnection(params(broker, token(key, 2)))
    try:
        connection.update_secret(token(key, 60), "refresh")
        connection.process_data_events(time_limit=3.5)  # past the first token's expiry
        assert connection.is_open
        assert connection.channel().queue_declare("", exclusive=True)
    finally:
        connection.close()


def test_update_secret_applies_the_new_scopes_to_open_channels(
    broker: Broker, key: rsa.RSAPrivateKey
) -> None:
    """Channels opened before update-secret are checked with the new token's scopes
    (nothing cached from the old token lets a publish through)."""
    connection = pika.BlockingConnection(params(broker, token(key, 60)))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, b"allowed")  # cached as allowed on this channel
        read_only = "rabbitmq.configure:*/* rabbitmq.read:*/*"
        connection.update_secret(token(key, 60, scope=read_only), "fewer scopes")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.basic_publish("", queue, b"refused")
        assert refused.value.reply_code == 403
        assert "access to exchange 'amq.default'" in refused.value.reply_text
    finally:
        connection.close()
