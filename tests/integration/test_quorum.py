"""Quorum queues as a pika client sees them: declaration rules, delivery counts, the
delivery limit, at-least-once dead-lettering, global QoS.

Every assertion is RabbitMQ 3.10's behaviour (run with ``PIGEON_TEST_AMQP_URL``);
names start with ``quorum-`` and each test deletes what it made.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest
from helpers import EXTERNAL, connect, get_one, process_for, process_until
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, NackError

pytestmark = pytest.mark.rabbitmq

QUORUM = {"x-queue-type": "quorum"}


@pytest.fixture
def names(connection: pika.BlockingConnection, uid: str) -> Iterator[dict[str, str]]:
    """Queue and exchange names for one test, deleted after it."""
    made = {"queue": f"quorum-{uid}", "dlq": f"quorum-dlq-{uid}", "dlx": f"quorum-dlx-{uid}"}
    yield made
    if connection.is_open:
        channel = connection.channel()
        channel.queue_delete(made["queue"])
        channel.queue_delete(made["dlq"])
        channel.exchange_delete(made["dlx"])
        channel.close()


def refused(connection: pika.BlockingConnection, name: str, **declare: Any) -> str:
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as closed:
        channel.queue_declare(name, **declare)
    assert closed.value.reply_code == 406
    return str(closed.value.reply_text)


def dead_letter_target(channel: BlockingChannel, names: dict[str, str]) -> None:
    channel.exchange_declare(names["dlx"], "fanout")
    channel.queue_declare(names["dlq"], durable=True)
    channel.queue_bind(names["dlq"], names["dlx"])


@pytest.mark.parametrize(
    ("flags", "what"),
    [
        ({"durable": True, "exclusive": True}, "exclusive-owner"),
        ({"durable": True, "auto_delete": True}, "auto-delete"),
        ({"durable": False}, "non-durable"),
        ({"durable": False, "exclusive": True, "auto_delete": True}, "auto-delete"),
    ],
)
def test_a_quorum_queue_is_durable_only(
    connection: pika.BlockingConnection, names: dict[str, str], flags: dict[str, bool], what: str
) -> None:
    queue = names["queue"]
    assert refused(connection, queue, arguments=QUORUM, **flags) == (
        f"PRECONDITION_FAILED - invalid property '{what}' for queue '{queue}' in vhost '/'"
    )


@pytest.mark.parametrize(
    ("kind", "argument", "value"),
    [
        ("quorum", "x-max-priority", 5),
        ("quorum", "x-queue-mode", "lazy"),
        ("quorum", "x-queue-version", 2),
        ("classic", "x-delivery-limit", 3),
        ("classic", "x-dead-letter-strategy", "at-least-once"),
        ("classic", "x-quorum-initial-group-size", 3),
    ],
)
def test_arguments_of_another_queue_type_are_refused(
    connection: pika.BlockingConnection,
    names: dict[str, str],
    kind: str,
    argument: str,
    value: object,
) -> None:
    queue = names["queue"]
    text = refused(
        connection, queue, durable=True, arguments={"x-queue-type": kind, argument: value}
    )
    assert text == (
        f"PRECONDITION_FAILED - invalid arg '{argument}' for queue '{queue}' in "
        f"vhost '/' of queue type rabbit_{kind}_queue"
    )


@pytest.mark.parametrize(
    ("value", "problem"), [("bogus", "invalid_dlx_strategy"), (5, "{unacceptable_type,signedint}")]
)
def test_dead_letter_strategy_is_validated(
    connection: pika.BlockingConnection, names: dict[str, str], value: object, problem: str
) -> None:
    queue = names["queue"]
    text = refused(
        connection, queue, durable=True, arguments={**QUORUM, "x-dead-letter-strategy": value}
    )
    assert text == (
        f"PRECONDITION_FAILED - invalid arg 'x-dead-letter-strategy' for queue "
        f"'{queue}' in vhost '/': {problem}"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [("bogus", "\"unsupported queue type 'bogus'\""), (1, "{unacceptable_type,signedint}")],
)
def test_an_unknown_queue_type_is_refused(
    connection: pika.BlockingConnection, names: dict[str, str], value: object, problem: str
) -> None:
    queue = names["queue"]
    text = refused(connection, queue, durable=True, arguments={"x-queue-type": value})
    assert text == (
        f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{queue}' "
        f"in vhost '/': {problem}"
    )


def test_a_server_named_quorum_queue_is_refused(connection: pika.BlockingConnection) -> None:
    assert refused(connection, "", durable=True, arguments=QUORUM) == (
        "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue"
    )


def test_redeclaring_with_another_type_is_inequivalent(
    connection: pika.BlockingConnection, names: dict[str, str]
) -> None:
    queue = names["queue"]
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments=QUORUM)
    channel.queue_declare(queue, durable=True, arguments=QUORUM)  # equivalent: fine
    prefix = f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{queue}' in "
    assert refused(connection, queue, durable=True) == (
        prefix + "vhost '/': received none but current is the value 'quorum' of type 'longstr'"
    )
    assert refused(connection, queue, durable=True, arguments={"x-queue-type": "classic"}) == (
        prefix + "vhost '/': received 'classic' but current is 'quorum'"
    )
    channel.queue_delete(queue)
    channel.queue_declare(queue, durable=True)
    assert refused(connection, queue, durable=True, arguments=QUORUM) == (
        prefix + "vhost '/': received the value 'quorum' of type 'longstr' but current is none"
    )


@pytest.mark.skipif(EXTERNAL, reason="RabbitMQ has streams; Pigeon refuses them for now")
def test_a_stream_is_refused_clearly(
    connection: pika.BlockingConnection, names: dict[str, str]
) -> None:
    queue = names["queue"]
    assert refused(connection, queue, durable=True, arguments={"x-queue-type": "stream"}) == (
        f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{queue}' in vhost '/': "
        '{unsupported_queue_type,<<"stream">>}'
    )


def test_basic_get_counts_returns_and_the_limit_dead_letters(
    connection: pika.BlockingConnection, names: dict[str, str]
) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    dead_letter_target(channel, names)
    queue = names["queue"]
    channel.queue_declare(
        queue,
        durable=True,
        arguments={**QUORUM, "x-delivery-limit": 2, "x-dead-letter-exchange": names["dlx"]},
    )
    channel.basic_publish(
        "", queue, b"poison", pika.BasicProperties(headers={"app": "x"}, expiration="60000")
    )
    for count in range(3):
        method, props, _ = get_one(channel, queue, auto_ack=False)
        # Every basic.get names the count, 0 included; redelivered once it was returned.
        assert props.headers == {"app": "x", "x-delivery-count": count}
        assert method.redelivered == (count > 0)
        channel.basic_nack(method.delivery_tag, requeue=True)
    _, props, body = get_one(channel, names["dlq"])
    assert body == b"poison"
    assert "x-delivery-count" not in props.headers
    assert props.headers["x-first-death-reason"] == "delivery_limit"
    death = props.headers["x-death"][0]
    assert (death["reason"], death["queue"], death["count"]) == ("delivery_limit", queue, 1)
    assert death["original-expiration"] == "60000"
    assert channel.queue_declare(queue, passive=True).method.message_count == 0


def test_consumers_see_the_count_on_redelivery_and_the_limit_drops(
    connection: pika.BlockingConnection, names: dict[str, str]
) -> None:
    channel = connection.channel()
    queue = names["queue"]
    channel.queue_declare(queue, durable=True, arguments={**QUORUM, "x-delivery-limit": 1})
    seen: list[tuple[bool, dict[str, Any] | None]] = []

    def nack(ch: BlockingChannel, method: Any, props: pika.BasicProperties, _body: bytes) -> None:
        seen.append((method.redelivered, props.headers))
        ch.basic_nack(method.delivery_tag, requeue=True)

    channel.basic_consume(queue, nack)
    channel.basic_publish("", queue, b"m")
    process_until(connection, lambda: len(seen) == 2)
    process_for(connection, 0.3)  # no third delivery: over the limit, and no DLX
    assert seen == [(False, None), (True, {"x-delivery-count": 1})]
    assert channel.queue_declare(queue, passive=True).method.message_count == 0


def test_closing_a_channel_counts_a_return(
    connection: pika.BlockingConnection, names: dict[str, str]
) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    queue = names["queue"]
    channel.queue_declare(queue, durable=True, arguments=QUORUM)
    channel.basic_publish("", queue, b"m")
    other = connection.channel()
    get_one(other, queue, auto_ack=False)
    other.close()
    method, props, _ = get_one(channel, queue)
    assert method.redelivered and props.headers == {"x-delivery-count": 1}


@pytest.mark.cluster_gap("TTL: an expired message is dead-lettered when fetched, not at expiry")
def test_per_message_ttl_is_kept(
    connection: pika.BlockingConnection, names: dict[str, str]
) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    dead_letter_target(channel, names)
    queue = names["queue"]
    channel.queue_declare(
        queue, durable=True, arguments={**QUORUM, "x-dead-letter-exchange": names["dlx"]}
    )
    channel.basic_publish("", queue, b"brief", pika.BasicProperties(expiration="50"))
    _, props, body = get_one(channel, names["dlq"])
    assert body == b"brief" and props.headers["x-death"][0]["reason"] == "expired"


def test_global_qos_consumers_are_refused(
    amqp_url: str, connection: pika.BlockingConnection, names: dict[str, str]
) -> None:
    queue = names["queue"]
    connection.channel().queue_declare(queue, durable=True, arguments=QUORUM)
    with connect(amqp_url) as other:
        channel = other.channel()
        channel.basic_qos(prefetch_count=0, global_qos=True)  # no limit: allowed
        channel.basic_qos(prefetch_count=5)  # per consumer: allowed
        channel.basic_consume(queue, lambda *_: None)
        channel.basic_qos(prefetch_count=10, global_qos=True)
        with pytest.raises(ConnectionClosedByBroker) as closed:
            channel.basic_consume(queue, lambda *_: None)
    assert closed.value.reply_code == 540
    assert closed.value.reply_text == (
        f"NOT_IMPLEMENTED - queue '{queue}' in vhost '/' does not support global qos"
    )


@pytest.mark.parametrize("flag", ["if_unused", "if_empty"])
def test_conditional_delete_is_not_implemented(
    amqp_url: str, connection: pika.BlockingConnection, names: dict[str, str], flag: str
) -> None:
    queue = names["queue"]
    connection.channel().queue_declare(queue, durable=True, arguments=QUORUM)
    with connect(amqp_url) as other, pytest.raises(ConnectionClosedByBroker) as closed:
        other.channel().queue_delete(queue, **{flag: True})
    assert closed.value.reply_code == 540
    assert closed.value.reply_text == (
        f"NOT_IMPLEMENTED - cannot delete queue '{queue}' in vhost '/'. queue.delete "
        f"operations with {flag.replace('_', '-')} flag set are not supported by quorum queues"
    )


@pytest.mark.cluster_gap("length limits (x-max-length) are refused for durable queues")
def test_reject_publish_takes_one_past_the_limit(
    connection: pika.BlockingConnection, names: dict[str, str]
) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    queue = names["queue"]
    channel.queue_declare(
        queue, durable=True, arguments={**QUORUM, "x-max-length": 1, "x-overflow": "reject-publish"}
    )
    channel.basic_publish("", queue, b"1")
    channel.basic_publish("", queue, b"2")
    with pytest.raises(NackError):
        channel.basic_publish("", queue, b"3")


@pytest.mark.cluster_gap("length limits (x-max-length) are refused for durable queues")
def test_at_least_once_keeps_dead_letters_until_a_queue_takes_them(
    connection: pika.BlockingConnection, names: dict[str, str]
) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    channel.exchange_declare(names["dlx"], "fanout")  # nothing bound yet
    queue = names["queue"]
    channel.queue_declare(
        queue,
        durable=True,
        arguments={
            **QUORUM,
            "x-max-length": 1,
            "x-overflow": "reject-publish",
            "x-dead-letter-strategy": "at-least-once",
            "x-dead-letter-exchange": names["dlx"],
        },
    )
    channel.basic_publish("", queue, b"dead", pika.BasicProperties(delivery_mode=2))
    method, _, _ = get_one(channel, queue, auto_ack=False)
    channel.basic_reject(method.delivery_tag, requeue=False)
    # Unrouted, it stays in the queue and takes room: one more fits, then none.
    channel.basic_publish("", queue, b"next")
    with pytest.raises(NackError):
        channel.basic_publish("", queue, b"refused")
    if EXTERNAL:
        return  # RabbitMQ retries unrouted dead letters every 180 s: too long to wait here
    channel.queue_declare(names["dlq"], durable=True)
    channel.queue_bind(names["dlq"], names["dlx"])
    _, props, body = get_one(channel, names["dlq"])
    assert body == b"dead" and props.headers["x-death"][0]["reason"] == "rejected"
    channel.basic_publish("", queue, b"room again")


@pytest.mark.cluster_gap("length limits (x-max-length) are refused for durable queues")
def test_at_most_once_is_the_default(
    connection: pika.BlockingConnection, names: dict[str, str]
) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    channel.exchange_declare(names["dlx"], "fanout")
    queue = names["queue"]
    channel.queue_declare(
        queue,
        durable=True,
        arguments={
            **QUORUM,
            "x-max-length": 1,
            "x-overflow": "reject-publish",
            "x-dead-letter-exchange": names["dlx"],
        },
    )
    channel.basic_publish("", queue, b"dead")
    method, _, _ = get_one(channel, queue, auto_ack=False)
    channel.basic_reject(method.delivery_tag, requeue=False)
    channel.basic_publish("", queue, b"1")  # the dead letter is gone: two fit again
    channel.basic_publish("", queue, b"2")


@pytest.mark.cluster_gap("length limits (x-max-length) are refused for durable queues")
def test_reject_publish_dlx_acts_as_drop_head(
    connection: pika.BlockingConnection, names: dict[str, str]
) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    dead_letter_target(channel, names)
    queue = names["queue"]
    channel.queue_declare(
        queue,
        durable=True,
        arguments={
            **QUORUM,
            "x-max-length": 1,
            "x-overflow": "reject-publish-dlx",
            "x-dead-letter-exchange": names["dlx"],
        },
    )
    channel.basic_publish("", queue, b"old")
    channel.basic_publish("", queue, b"new")  # accepted: the head goes instead
    _, props, body = get_one(channel, names["dlq"])
    assert body == b"old" and props.headers["x-death"][0]["reason"] == "maxlen"
    assert get_one(channel, queue)[2] == b"new"
