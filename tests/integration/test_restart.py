"""What a clean restart keeps: durable definitions, persistent messages, users."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from pigeon.auth.users import PermissionSet
from pigeon.broker import Broker
from pigeon.config import Config


def on_loop(broker: Broker, action: object) -> None:
    assert broker.node is not None
    loop = broker.node.scheduler
    assert isinstance(loop, asyncio.AbstractEventLoop)
    asyncio.run_coroutine_threadsafe(_call(action), loop).result(timeout=10)


async def _call(action: object) -> None:
    assert callable(action)
    action()


def test_durable_things_come_back_and_transient_ones_do_not(tmp_path: Path) -> None:
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path / "data", management_port=None
    )
    with Broker.in_thread(config) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        channel = connection.channel()
        channel.exchange_declare("orders", "topic", durable=True)
        channel.exchange_declare("scratch", "fanout", durable=False)
        channel.queue_declare("kept", durable=True, arguments={"x-max-length": 100})
        channel.queue_declare("gone", durable=False)
        channel.queue_declare("mine", durable=True, exclusive=True)
        channel.queue_bind("kept", "orders", "order.#")
        channel.queue_bind("gone", "orders", "order.#")
        channel.confirm_delivery()
        channel.basic_publish(
            "orders", "order.new", b"persistent", pika.BasicProperties(delivery_mode=2)
        )
        channel.basic_publish("orders", "order.new", b"transient")
        connection.close()
    with Broker.in_thread(config) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        channel = connection.channel()
        # Redeclaring with the same arguments succeeds: the settings came back too.
        kept = channel.queue_declare("kept", durable=True, arguments={"x-max-length": 100})
        assert kept.method.message_count == 1
        method, _, body = channel.basic_get("kept", auto_ack=True)
        assert method is not None and body == b"persistent" and method.redelivered
        channel.basic_publish("orders", "order.again", b"routed")  # the binding is back
        assert channel.basic_get("kept", auto_ack=True)[2] == b"routed"
        for name in ("gone", "mine"):
            with pytest.raises(ChannelClosedByBroker) as missing:
                channel.queue_declare(name, passive=True)
            assert missing.value.reply_code == 404
            channel = connection.channel()
        with pytest.raises(ChannelClosedByBroker):
            channel.exchange_declare("scratch", passive=True)
        connection.close()


def test_users_and_permissions_come_back(tmp_path: Path) -> None:
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path / "data", management_port=None
    )
    with Broker.in_thread(config) as broker:
        assert broker.context is not None
        users = broker.context.users

        def add() -> None:
            users.add_user("alice", "s3cret", frozenset({"monitoring"}))
            users.set_permission("/", "alice", PermissionSet("^alice-", ".*", ".*"))

        on_loop(broker, add)
        url = broker.amqp_url.replace("guest:guest", "alice:s3cret")
    with Broker.in_thread(config) as broker:
        url = broker.amqp_url.replace("guest:guest", "alice:s3cret")
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        channel.queue_declare("alice-q")
        with pytest.raises(ChannelClosedByBroker) as refused:
            channel.queue_declare("bob-q")
        assert refused.value.reply_code == 403
        connection.close()


@pytest.mark.parametrize("extra", [{}, {"x-message-ttl": 600_000}])  # paged, and read at start
def test_a_quorum_queue_keeps_its_type_and_delivery_counts(
    tmp_path: Path, extra: dict[str, int]
) -> None:
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path / "data", management_port=None
    )
    arguments = {"x-queue-type": "quorum", "x-delivery-limit": 2, **extra}
    with Broker.in_thread(config) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        channel = connection.channel()
        channel.queue_declare("qq", durable=True, arguments=arguments)
        channel.confirm_delivery()
        channel.basic_publish(
            "",
            "qq",
            b"twice",
            pika.BasicProperties(delivery_mode=2, headers={"x-delivery-count": "mine"}),
        )
        channel.basic_publish("", "qq", b"never", pika.BasicProperties(delivery_mode=2))
        for _ in range(2):
            method, _, body = channel.basic_get("qq")
            assert method is not None and body == b"twice"
            channel.basic_nack(method.delivery_tag, requeue=True)
        connection.close()
    with Broker.in_thread(config) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        channel = connection.channel()
        channel.queue_declare("qq", durable=True, arguments=arguments)
        with pytest.raises(ChannelClosedByBroker) as classic:
            channel.queue_declare("qq", durable=True)
        assert "inequivalent arg 'x-queue-type'" in classic.value.reply_text
        channel = connection.channel()
        method, props, body = channel.basic_get("qq")
        assert method is not None and body == b"twice"
        assert props.headers == {"x-delivery-count": 2}  # the publisher's own is replaced
        channel.basic_nack(method.delivery_tag, requeue=True)  # the third return: dropped
        method, props, body = channel.basic_get("qq", auto_ack=True)
        assert method is not None and body == b"never"
        assert props.headers == {"x-delivery-count": 0}
        assert channel.basic_get("qq")[0] is None
        connection.close()


def test_a_recovered_message_keeps_its_own_ttl(tmp_path: Path) -> None:
    # The store keeps a message's TTL (docs/messages.md): after a restart it counts again,
    # and the message expires, dead-lettered with its original expiration.
    config = Config(
        mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=tmp_path / "data", management_port=None
    )
    arguments = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "expired"}
    with Broker.in_thread(config) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        channel = connection.channel()
        channel.queue_declare("expired", durable=True)
        # No consumer and a TTL longer than the restart: it expires after recovery.
        channel.queue_declare("short-lived", durable=True, arguments=arguments)
        channel.confirm_delivery()
        persistent = pika.BasicProperties(delivery_mode=2, expiration="1500")
        channel.basic_publish("", "short-lived", b"ttl", persistent)
        channel.basic_publish("", "short-lived", b"kept", pika.BasicProperties(delivery_mode=2))
        connection.close()
    with Broker.in_thread(config) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
        channel = connection.channel()
        method, properties, body = next(channel.consume("expired", inactivity_timeout=10))
        assert method is not None and body == b"ttl"
        death = properties.headers["x-death"][0]
        assert (death["reason"], death["original-expiration"]) == ("expired", "1500")
        channel.cancel()
        assert channel.queue_declare("short-lived", passive=True).method.message_count == 1
        connection.close()
