"""Publishing, consuming and acknowledging as a client sees it (amqp0-9-1 class basic).

Properties and bodies survive the trip, prefetch limits deliveries, consumers
are ordered by priority and served round-robin, acks/nacks/rejects and
requeues behave as on RabbitMQ.
"""

from __future__ import annotations

import datetime
import decimal
import os

import pika
import pika.exceptions
import pytest
from helpers import (
    RawClient,
    await_channel_close,
    connect,
    credentials,
    drain_all,
    get_one,
    process_for,
    process_until,
)
from pamqp import commands
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

Delivery = tuple[Basic.Deliver, BasicProperties, bytes]

#: long enough for a broker on loopback to deliver what it is going to deliver
QUIET = 0.3


class Consumer:
    """Collects what a pika consumer receives."""

    def __init__(self, channel: BlockingChannel, queue: str, **options: object) -> None:
        self.channel = channel
        self.deliveries: list[Delivery] = []
        self.tag: str = channel.basic_consume(queue, self._on_message, **options)

    def _on_message(
        self, _channel: object, method: Basic.Deliver, properties: BasicProperties, body: bytes
    ) -> None:
        self.deliveries.append((method, properties, body))

    @property
    def bodies(self) -> list[bytes]:
        return [body for _, _, body in self.deliveries]


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> BlockingChannel:
    return connection.channel()


@pytest.fixture
def queue(channel: BlockingChannel) -> str:
    name: str = channel.queue_declare("", exclusive=True).method.queue
    return name


def publish_many(channel: BlockingChannel, queue: str, count: int, prefix: str = "") -> None:
    for index in range(count):
        channel.basic_publish("", queue, f"{prefix}{index}".encode())


def every_property(user: str) -> BasicProperties:
    headers = {
        "text": "héllo",
        "int": 42,
        "negative": -7,
        "big": 2**40,
        "true": True,
        "false": False,
        "bytes": b"\x00\xff\x01",
        "nested": {"table": {"list": [1, "two", {"three": None}]}},
        "array": [1, 2, 3],
        "decimal": decimal.Decimal("3.14"),
        "time": datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "void": None,
    }
    return BasicProperties(
        content_type="application/json",
        content_encoding="gzip",
        headers=headers,
        delivery_mode=2,
        priority=5,
        correlation_id="correlation-1",
        reply_to="reply-queue",
        expiration="60000",
        message_id="message-1",
        timestamp=1_700_000_000,
        type="example.type",
        user_id=user,
        app_id="pigeon-tests",
    )


PROPERTY_NAMES = [
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
]


def test_every_property_survives_get_and_deliver(
    amqp_url: str, connection: pika.BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    sent = every_property(credentials(amqp_url)[0])
    channel.basic_publish("", queue, b"via get", sent)
    channel.basic_publish("", queue, b"via deliver", sent)
    _, got, body = get_one(channel, queue)
    assert body == b"via get"
    consumer = Consumer(connection.channel(), queue, auto_ack=True)
    process_until(connection, lambda: consumer.deliveries)
    _, delivered, body = consumer.deliveries[0]
    assert body == b"via deliver"
    for received in (got, delivered):
        for name in PROPERTY_NAMES:
            assert getattr(received, name) == getattr(sent, name), name


def test_absent_properties_stay_absent(channel: BlockingChannel, queue: str) -> None:
    channel.basic_publish("", queue, b"bare")
    _, properties, _ = get_one(channel, queue)
    for name in PROPERTY_NAMES:
        assert getattr(properties, name) is None, name


def test_user_id_must_match_the_connection_user(channel: BlockingChannel, queue: str) -> None:
    properties = BasicProperties(user_id="somebody-else")
    error = await_channel_close(channel, lambda: channel.basic_publish("", queue, b"x", properties))
    assert error.reply_code == 406
    assert "user_id property set to 'somebody-else'" in error.reply_text


@pytest.mark.parametrize(
    "size",
    [0, 1, 4088, 4089, 3 * 4088, 1024 * 1024],
    ids=["empty", "one", "frame_max-8", "frame_max-7", "three-frames", "1MiB"],
)
def test_bodies_of_every_size(amqp_url: str, size: int) -> None:
    # frame_max 4096 is the smallest a broker may accept, so it is the negotiated one
    # (amqp0-9-1 §4.2.3): a body of 4088 bytes fills one frame exactly.
    body = os.urandom(size)
    with connect(amqp_url, frame_max=4096) as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, body)
        channel.basic_publish("", queue, body)
        assert get_one(channel, queue)[2] == body
        consumer = Consumer(channel, queue, auto_ack=True)
        process_until(connection, lambda: consumer.deliveries)
        assert consumer.bodies == [body]


def test_binary_body_is_not_decoded(channel: BlockingChannel, queue: str) -> None:
    body = bytes(range(256)) * 8 + b"\xce\x00\x01\x00\x00"  # includes the frame-end octet
    channel.basic_publish("", queue, body, BasicProperties(content_type="text/plain"))
    assert get_one(channel, queue)[2] == body


def test_prefetch_count_limits_unacked_deliveries(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    publish_many(channel, queue, 10)
    consumer_channel = connection.channel()
    consumer_channel.basic_qos(prefetch_count=3)
    consumer = Consumer(consumer_channel, queue)
    process_until(connection, lambda: len(consumer.deliveries) >= 3)
    process_for(connection, QUIET)
    assert consumer.bodies == [b"0", b"1", b"2"]
    consumer_channel.basic_ack(consumer.deliveries[0][0].delivery_tag)
    process_until(connection, lambda: len(consumer.deliveries) >= 4)
    process_for(connection, QUIET)
    assert consumer.bodies == [b"0", b"1", b"2", b"3"]
    # Acking several at once frees that many slots.
    consumer_channel.basic_ack(consumer.deliveries[3][0].delivery_tag, multiple=True)
    process_until(connection, lambda: len(consumer.deliveries) >= 7)
    process_for(connection, QUIET)
    assert len(consumer.deliveries) == 7


def test_global_qos_is_shared_by_the_channels_consumers(
    connection: pika.BlockingConnection, channel: BlockingChannel
) -> None:
    first = channel.queue_declare("", exclusive=True).method.queue
    second = channel.queue_declare("", exclusive=True).method.queue
    publish_many(channel, first, 5, "a")
    publish_many(channel, second, 5, "b")
    consumer_channel = connection.channel()
    consumer_channel.basic_qos(prefetch_count=3, global_qos=True)
    one = Consumer(consumer_channel, first)
    two = Consumer(consumer_channel, second)
    process_until(connection, lambda: len(one.deliveries) + len(two.deliveries) >= 3)
    process_for(connection, QUIET)
    assert len(one.deliveries) + len(two.deliveries) == 3


def test_raising_global_prefetch_applies_to_a_live_consumer(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    publish_many(channel, queue, 6)
    consumer_channel = connection.channel()
    consumer_channel.basic_qos(prefetch_count=1, global_qos=True)
    consumer = Consumer(consumer_channel, queue)
    process_until(connection, lambda: consumer.deliveries)
    process_for(connection, QUIET)
    assert consumer.bodies == [b"0"]
    consumer_channel.basic_qos(prefetch_count=3, global_qos=True)
    process_until(connection, lambda: len(consumer.deliveries) >= 3)
    process_for(connection, QUIET)
    assert consumer.bodies == [b"0", b"1", b"2"]


def test_per_consumer_prefetch_is_fixed_when_the_consumer_starts(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    # RabbitMQ: basic.qos with global=false applies to consumers started after it.
    publish_many(channel, queue, 6)
    consumer_channel = connection.channel()
    consumer_channel.basic_qos(prefetch_count=1)
    consumer = Consumer(consumer_channel, queue)
    process_until(connection, lambda: consumer.deliveries)
    consumer_channel.basic_qos(prefetch_count=3)
    process_for(connection, QUIET)
    assert consumer.bodies == [b"0"]
    second = Consumer(consumer_channel, queue)
    process_until(connection, lambda: len(second.deliveries) >= 3)
    process_for(connection, QUIET)
    assert second.bodies == [b"1", b"2", b"3"]


def test_server_generates_consumer_tags(amqp_url: str, queue: str, uid: str) -> None:
    with RawClient(amqp_url) as raw:
        raw.handshake(*credentials(amqp_url))
        raw.expect(commands.Connection.OpenOk)
        raw.send(1, commands.Channel.Open())
        raw.expect(commands.Channel.OpenOk)
        name = f"ctag-{uid}"
        raw.send(1, commands.Queue.Declare(queue=name, exclusive=True))
        raw.expect(commands.Queue.DeclareOk)
        tags = []
        for _ in range(2):
            raw.send(1, commands.Basic.Consume(queue=name, consumer_tag=""))
            tags.append(raw.expect(commands.Basic.ConsumeOk).consumer_tag)
    assert all(tag.startswith("amq.ctag-") for tag in tags)
    assert tags[0] != tags[1]


def test_exclusive_consumer_keeps_others_out(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    Consumer(channel, queue, exclusive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        Consumer(connection.channel(), queue)
    assert caught.value.reply_code == 403
    assert f"queue '{queue}' in vhost '/' in exclusive use" in caught.value.reply_text


def test_exclusive_consume_on_a_queue_with_consumers(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    Consumer(channel, queue)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        Consumer(connection.channel(), queue, exclusive=True)
    assert caught.value.reply_code == 403


def test_no_ack_consumer_messages_are_gone(channel: BlockingChannel, queue: str) -> None:
    publish_many(channel, queue, 3)
    consumer = Consumer(channel, queue, auto_ack=True)
    process_until(channel.connection, lambda: len(consumer.deliveries) == 3)
    channel.basic_cancel(consumer.tag)
    assert all(not method.redelivered for method, _, _ in consumer.deliveries)
    assert drain_all(channel, queue) == []


def test_consumer_priorities(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    high_channel, low_channel = connection.channel(), connection.channel()
    high_channel.basic_qos(prefetch_count=2)
    low_channel.basic_qos(prefetch_count=10)
    low = Consumer(low_channel, queue)
    high = Consumer(high_channel, queue, arguments={"x-priority": 10})
    publish_many(channel, queue, 5)
    process_until(connection, lambda: len(high.deliveries) + len(low.deliveries) == 5)
    # The high-priority consumer gets messages while it has room in its prefetch.
    assert high.bodies == [b"0", b"1"]
    assert low.bodies == [b"2", b"3", b"4"]


def test_cancel_stops_deliveries(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    consumer = Consumer(channel, queue, auto_ack=True)
    channel.basic_publish("", queue, b"before")
    process_until(connection, lambda: consumer.deliveries)
    channel.basic_cancel(consumer.tag)
    channel.basic_publish("", queue, b"after")
    process_for(connection, QUIET)
    assert consumer.bodies == [b"before"]
    assert drain_all(channel, queue) == [b"after"]


def test_broker_cancels_consumer_when_queue_is_deleted(
    connection: pika.BlockingConnection, channel: BlockingChannel, uid: str
) -> None:
    queue = f"cancel-notify-{uid}"
    channel.queue_declare(queue)
    cancels: list[Basic.Cancel] = []
    channel.add_on_cancel_callback(lambda frame: cancels.append(frame.method))
    consumer = Consumer(channel, queue)
    connection.channel().queue_delete(queue)
    process_until(connection, lambda: cancels)
    assert cancels[0].consumer_tag == consumer.tag
    assert channel.is_open


def test_mandatory_unroutable_is_returned(
    connection: pika.BlockingConnection, channel: BlockingChannel, uid: str
) -> None:
    exchange = f"mandatory-{uid}"
    channel.exchange_declare(exchange, "direct", auto_delete=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, "known")
    returned: list[tuple[Basic.Return, BasicProperties, bytes]] = []
    channel.add_on_return_callback(lambda _ch, m, p, b: returned.append((m, p, b)))
    properties = BasicProperties(message_id="lost")
    channel.basic_publish(exchange, "known", b"routed", mandatory=True)
    channel.basic_publish(exchange, "nobody", b"unroutable", properties, mandatory=True)
    channel.basic_publish(exchange, "nobody", b"dropped silently")
    process_until(connection, lambda: returned)
    process_for(connection, QUIET)
    assert len(returned) == 1
    method, got, body = returned[0]
    assert (method.reply_code, method.reply_text) == (312, "NO_ROUTE")
    assert (method.exchange, method.routing_key) == (exchange, "nobody")
    assert body == b"unroutable"
    assert got.message_id == "lost"
    assert drain_all(channel, queue) == [b"routed"]


def test_cc_and_bcc_headers(channel: BlockingChannel, uid: str) -> None:
    exchange = f"cc-{uid}"
    channel.exchange_declare(exchange, "direct", auto_delete=True)
    queues = {}
    for key in ("main", "cc", "bcc", "other"):
        queues[key] = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queues[key], exchange, key)
    headers = {"CC": ["cc"], "BCC": ["bcc"], "kept": 1}
    channel.basic_publish(exchange, "main", b"copied", BasicProperties(headers=headers))
    for key in ("main", "cc", "bcc"):
        method, properties, body = get_one(channel, queues[key])
        assert body == b"copied"
        assert method.routing_key == "main"
        # BCC never reaches a receiver; CC does (RabbitMQ sender-selected distribution).
        assert properties.headers == {"CC": ["cc"], "kept": 1}, key
    assert drain_all(channel, queues["other"]) == []


def test_get_and_get_empty(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    assert channel.basic_get(queue) == (None, None, None)
    publisher = connection.channel()
    publisher.confirm_delivery()  # once confirmed, the queue holds them: exact counts
    publish_many(publisher, queue, 3)
    method, _, body = get_one(channel, queue)
    assert body == b"0"
    assert isinstance(method, Basic.GetOk)
    assert method.message_count == 2  # messages left after this one
    assert not method.redelivered
    assert (method.exchange, method.routing_key) == ("", queue)
    assert [get_one(channel, queue)[2] for _ in range(2)] == [b"1", b"2"]
    assert channel.basic_get(queue) == (None, None, None)


def test_ack_nack_reject_with_multiple_and_requeue(channel: BlockingChannel, queue: str) -> None:
    publish_many(channel, queue, 5)
    tags = [get_one(channel, queue, auto_ack=False)[0].delivery_tag for _ in range(5)]
    channel.basic_ack(tags[1], multiple=True)  # acks 0 and 1
    channel.basic_nack(tags[3], multiple=True, requeue=True)  # requeues 2 and 3
    channel.basic_reject(tags[4], requeue=False)  # drops 4
    channel.basic_publish("", queue, b"later")
    got = []
    for _ in range(3):
        method, _, body = get_one(channel, queue)
        got.append((body, method.redelivered))
    assert got == [(b"2", True), (b"3", True), (b"later", False)]
    assert channel.basic_get(queue) == (None, None, None)


def test_requeued_message_keeps_its_place(channel: BlockingChannel, queue: str) -> None:
    publish_many(channel, queue, 3)
    method, _, body = get_one(channel, queue, auto_ack=False)
    assert body == b"0"
    channel.basic_reject(method.delivery_tag, requeue=True)
    redelivered = get_one(channel, queue)
    assert (redelivered[2], redelivered[0].redelivered) == (b"0", True)
    assert [get_one(channel, queue)[2] for _ in range(2)] == [b"1", b"2"]


def test_nack_without_requeue_drops(channel: BlockingChannel, queue: str) -> None:
    publish_many(channel, queue, 2)
    first = get_one(channel, queue, auto_ack=False)[0]
    channel.basic_nack(first.delivery_tag, requeue=False)
    assert drain_all(channel, queue) == [b"1"]


def test_recover_requeues_unacked(channel: BlockingChannel, queue: str) -> None:
    publish_many(channel, queue, 3)
    get_one(channel, queue, auto_ack=False)
    get_one(channel, queue, auto_ack=False)
    channel.basic_recover(requeue=True)
    got = [
        (body, method.redelivered) for method, _, body in (get_one(channel, queue) for _ in "123")
    ]
    assert got == [(b"0", True), (b"1", True), (b"2", False)]


@pytest.mark.parametrize("how", ["ack", "double-ack", "nack", "reject"])
def test_unknown_delivery_tag_is_precondition_failed(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str, how: str
) -> None:
    channel.basic_publish("", queue, b"x")
    tag = get_one(channel, queue, auto_ack=False)[0].delivery_tag
    if how == "double-ack":
        channel.basic_ack(tag)
        action = lambda: channel.basic_ack(tag)  # noqa: E731
        bad = tag
    else:
        bad = tag + 100
        action = {
            "ack": lambda: channel.basic_ack(bad),
            "nack": lambda: channel.basic_nack(bad),
            "reject": lambda: channel.basic_reject(bad),
        }[how]
    error = await_channel_close(channel, action)
    assert error.reply_code == 406
    assert error.reply_text == f"PRECONDITION_FAILED - unknown delivery tag {bad}"
    assert connection.is_open


def test_messages_are_delivered_in_order(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    publish_many(channel, queue, 200)
    consumer = Consumer(connection.channel(), queue, auto_ack=True)
    process_until(connection, lambda: len(consumer.deliveries) == 200)
    assert consumer.bodies == [str(index).encode() for index in range(200)]
    tags = [method.delivery_tag for method, _, _ in consumer.deliveries]
    assert tags == list(range(1, 201))


def test_round_robin_between_consumers(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    first = Consumer(connection.channel(), queue, auto_ack=True)
    second = Consumer(connection.channel(), queue, auto_ack=True)
    publish_many(channel, queue, 10)
    process_until(connection, lambda: len(first.deliveries) + len(second.deliveries) == 10)
    assert first.bodies == [b"0", b"2", b"4", b"6", b"8"]
    assert second.bodies == [b"1", b"3", b"5", b"7", b"9"]


def test_channel_close_requeues_unacked(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str
) -> None:
    publish_many(channel, queue, 4)
    consumer_channel = connection.channel()
    consumer = Consumer(consumer_channel, queue)
    process_until(connection, lambda: len(consumer.deliveries) == 4)
    consumer_channel.basic_ack(consumer.deliveries[1][0].delivery_tag)  # acks "1" only
    consumer_channel.close()
    got = [
        (body, method.redelivered) for method, _, body in (get_one(channel, queue) for _ in "abc")
    ]
    assert got == [(b"0", True), (b"2", True), (b"3", True)]


def test_connection_close_requeues_unacked(
    amqp_url: str, channel: BlockingChannel, uid: str
) -> None:
    shared = f"requeue-on-close-{uid}"
    channel.queue_declare(shared, auto_delete=False)
    try:
        publish_many(channel, shared, 3)
        with connect(amqp_url) as other:
            other_channel = other.channel()
            consumer = Consumer(other_channel, shared)
            process_until(other, lambda: len(consumer.deliveries) == 3)
        got = [
            (body, method.redelivered)
            for method, _, body in (get_one(channel, shared) for _ in "abc")
        ]
        assert got == [(b"0", True), (b"1", True), (b"2", True)]
    finally:
        channel.queue_delete(shared)


@pytest.mark.parametrize("no_ack", [True, False], ids=["no-ack", "ack-without-prefetch"])
def test_unlimited_consumer_gets_a_large_backlog_whole_and_in_order(
    connection: pika.BlockingConnection, channel: BlockingChannel, queue: str, no_ack: bool
) -> None:
    # 4,000 x 1 KiB is several of the broker's per-turn output shares for a consumer
    # without a prefetch limit: each share must be followed by the next one.
    count, pad = 4_000, b"." * 1024
    for index in range(count):
        channel.basic_publish("", queue, b"%d:" % index + pad)
    consumer = Consumer(channel, queue, auto_ack=no_ack)
    process_until(connection, lambda: len(consumer.deliveries) >= count, timeout=20)
    assert [body.split(b":")[0] for body in consumer.bodies] == [b"%d" % i for i in range(count)]
    if not no_ack:
        channel.basic_ack(consumer.deliveries[-1][0].delivery_tag, multiple=True)
