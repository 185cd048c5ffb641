"""Queues as a client sees them (amqp0-9-1 §3.1.4, class queue).

Naming, declare rules and counts, exclusivity, auto-delete, purge and delete,
bindings, and the reply codes and texts RabbitMQ uses.
"""

from __future__ import annotations

import pika
import pika.exceptions
import pytest
from helpers import connect, drain_all, wait_until
from pika.adapters.blocking_connection import BlockingChannel

LOCKED = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue"


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> BlockingChannel:
    return connection.channel()


@pytest.fixture
def confirmed(connection: pika.BlockingConnection) -> BlockingChannel:
    """A channel in confirm mode: once ``basic_publish`` returns, the queue holds
    the message, so counts reported afterwards include it."""
    channel = connection.channel()
    channel.confirm_delivery()
    return channel


def queue_exists(amqp_url: str, queue: str) -> bool:
    """Whether ``queue`` exists, seen from a new connection (405: someone's exclusive)."""
    with connect(amqp_url) as other:
        try:
            other.channel().queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            assert error.reply_code in (404, 405), error
            return bool(error.reply_code == 405)
        return True


def test_server_named_queue(channel: BlockingChannel) -> None:
    first = channel.queue_declare("", exclusive=True).method.queue
    second = channel.queue_declare("", exclusive=True).method.queue
    assert first.startswith("amq.gen-")
    assert second.startswith("amq.gen-")
    assert first != second
    channel.basic_publish("", first, b"to a generated name")
    assert drain_all(channel, first) == [b"to a generated name"]


def test_passive_declare_of_missing_queue(channel: BlockingChannel, uid: str) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        channel.queue_declare(f"missing-{uid}", passive=True)
    assert caught.value.reply_code == 404
    assert caught.value.reply_text == f"NOT_FOUND - no queue 'missing-{uid}' in vhost '/'"


def test_declare_ok_counts_messages_and_consumers(
    connection: pika.BlockingConnection, confirmed: BlockingChannel, uid: str
) -> None:
    queue = f"counts-{uid}"
    ok = confirmed.queue_declare(queue, exclusive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (queue, 0, 0)
    for index in range(3):
        confirmed.basic_publish("", queue, str(index).encode())
    ok = confirmed.queue_declare(queue, passive=True).method
    assert (ok.message_count, ok.consumer_count) == (3, 0)
    consumer_channel = connection.channel()
    consumer_channel.basic_qos(prefetch_count=1)
    consumer_channel.basic_consume(queue, lambda *args: None)
    # message_count counts ready messages only: one is now unacknowledged.
    ok = wait_until(
        lambda: (m := confirmed.queue_declare(queue, passive=True).method).message_count == 2 and m
    )
    assert ok.consumer_count == 1


@pytest.mark.parametrize(
    ("second", "arg"),
    [
        ({"durable": True}, "durable"),
        ({"auto_delete": False}, "auto_delete"),
        ({"arguments": {"x-max-length": 5}}, "x-max-length"),
    ],
)
def test_redeclare_with_other_settings_is_precondition_failed(
    connection: pika.BlockingConnection, uid: str, second: dict[str, object], arg: str
) -> None:
    queue = f"redeclare-{uid}"
    channel = connection.channel()
    channel.queue_declare(queue, auto_delete=True)
    channel.basic_consume(queue, lambda *args: None)  # auto-delete applies after a consumer
    settings: dict[str, object] = {"auto_delete": True, **second}
    other = connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        other.queue_declare(queue, **settings)
    assert caught.value.reply_code == 406
    assert f"inequivalent arg '{arg}' for queue '{queue}'" in caught.value.reply_text
    channel.queue_delete(queue)


@pytest.mark.parametrize(
    "operation",
    ["declare", "declare_passive", "consume", "get", "purge", "delete", "bind"],
)
def test_exclusive_queue_is_locked_for_other_connections(
    amqp_url: str, channel: BlockingChannel, uid: str, operation: str
) -> None:
    queue = f"exclusive-{uid}"
    channel.queue_declare(queue, exclusive=True)
    actions = {
        "declare": lambda ch: ch.queue_declare(queue, exclusive=True),
        "declare_passive": lambda ch: ch.queue_declare(queue, passive=True),
        "consume": lambda ch: ch.basic_consume(queue, lambda *args: None),
        "get": lambda ch: ch.basic_get(queue),
        "purge": lambda ch: ch.queue_purge(queue),
        "delete": lambda ch: ch.queue_delete(queue),
        "bind": lambda ch: ch.queue_bind(queue, "amq.fanout"),
    }
    with connect(amqp_url) as other:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
            actions[operation](other.channel())
        assert caught.value.reply_code == 405
        assert caught.value.reply_text.startswith(f"{LOCKED} '{queue}' in vhost '/'")
    # The owner still uses its queue.
    channel.queue_declare(queue, passive=True)


def test_other_connections_may_publish_to_an_exclusive_queue(
    amqp_url: str, channel: BlockingChannel, uid: str
) -> None:
    queue = f"exclusive-publish-{uid}"
    channel.queue_declare(queue, exclusive=True)
    with connect(amqp_url) as other:
        other_channel = other.channel()
        other_channel.confirm_delivery()
        other_channel.basic_publish("", queue, b"from outside")
    assert drain_all(channel, queue) == [b"from outside"]


def test_exclusive_queue_removed_when_its_connection_closes(amqp_url: str, uid: str) -> None:
    queue = f"exclusive-gone-{uid}"
    with connect(amqp_url) as owner:
        owner.channel().queue_declare(queue, exclusive=True)
        assert queue_exists(amqp_url, queue)
    wait_until(lambda: not queue_exists(amqp_url, queue))
    # The name is free again for anyone.
    with connect(amqp_url) as other:
        other.channel().queue_declare(queue, exclusive=True)


def test_auto_delete_queue_removed_after_last_consumer_cancels(
    amqp_url: str, channel: BlockingChannel, uid: str
) -> None:
    queue = f"auto-delete-{uid}"
    channel.queue_declare(queue, auto_delete=True)
    first = channel.basic_consume(queue, lambda *args: None)
    second = channel.basic_consume(queue, lambda *args: None)
    channel.basic_cancel(first)
    assert queue_exists(amqp_url, queue)
    channel.basic_cancel(second)
    wait_until(lambda: not queue_exists(amqp_url, queue))


def test_auto_delete_queue_without_consumers_stays(
    amqp_url: str, channel: BlockingChannel, uid: str
) -> None:
    queue = f"auto-delete-unused-{uid}"
    channel.queue_declare(queue, auto_delete=True)
    channel.basic_publish("", queue, b"kept")
    assert drain_all(channel, queue) == [b"kept"]
    assert queue_exists(amqp_url, queue)
    channel.queue_delete(queue)


def test_purge_returns_the_count(confirmed: BlockingChannel, uid: str) -> None:
    queue = f"purge-{uid}"
    confirmed.queue_declare(queue, exclusive=True)
    for index in range(5):
        confirmed.basic_publish("", queue, str(index).encode())
    assert confirmed.queue_purge(queue).method.message_count == 5
    assert confirmed.queue_purge(queue).method.message_count == 0
    assert confirmed.queue_declare(queue, passive=True).method.message_count == 0


def test_delete_returns_the_count(amqp_url: str, confirmed: BlockingChannel, uid: str) -> None:
    queue = f"delete-{uid}"
    confirmed.queue_declare(queue)
    for index in range(4):
        confirmed.basic_publish("", queue, str(index).encode())
    assert confirmed.queue_delete(queue).method.message_count == 4
    assert not queue_exists(amqp_url, queue)


def test_delete_missing_queue_is_ok(channel: BlockingChannel, uid: str) -> None:
    # RabbitMQ 3.x: deleting a queue that does not exist answers delete-ok.
    assert channel.queue_delete(f"never-existed-{uid}").method.message_count == 0


def test_delete_if_unused_with_a_consumer(
    connection: pika.BlockingConnection, channel: BlockingChannel, uid: str
) -> None:
    queue = f"if-unused-{uid}"
    channel.queue_declare(queue, exclusive=True)
    channel.basic_consume(queue, lambda *args: None)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        connection.channel().queue_delete(queue, if_unused=True)
    assert caught.value.reply_code == 406
    assert caught.value.reply_text == f"PRECONDITION_FAILED - queue '{queue}' in vhost '/' in use"


def test_delete_if_empty_with_messages(
    connection: pika.BlockingConnection, confirmed: BlockingChannel, uid: str
) -> None:
    queue = f"if-empty-{uid}"
    confirmed.queue_declare(queue, exclusive=True)
    confirmed.basic_publish("", queue, b"still here")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        connection.channel().queue_delete(queue, if_empty=True)
    assert caught.value.reply_code == 406
    assert caught.value.reply_text == (
        f"PRECONDITION_FAILED - queue '{queue}' in vhost '/' not empty"
    )
    # Both conditions hold once it is empty and unused.
    confirmed.queue_purge(queue)
    confirmed.queue_delete(queue, if_unused=True, if_empty=True)


def test_bindings_with_arguments_are_distinct(channel: BlockingChannel, uid: str) -> None:
    exchange = f"bind-args-{uid}"
    channel.exchange_declare(exchange, "direct", auto_delete=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    anchor = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(anchor, exchange, "anchor")  # keeps the auto-delete exchange
    channel.queue_bind(queue, exchange, "k", arguments={"tag": 1})
    channel.queue_bind(queue, exchange, "k", arguments={"tag": 2})
    channel.basic_publish(exchange, "k", b"two bindings, one copy")
    channel.queue_unbind(queue, exchange, "k", arguments={"tag": 1})
    channel.basic_publish(exchange, "k", b"still bound by tag 2")
    channel.queue_unbind(queue, exchange, "k", arguments={"tag": 2})
    channel.basic_publish(exchange, "k", b"unbound")
    assert drain_all(channel, queue) == [b"two bindings, one copy", b"still bound by tag 2"]


def test_headers_binding_arguments_and_unbind(channel: BlockingChannel, uid: str) -> None:
    exchange = f"bind-headers-{uid}"
    channel.exchange_declare(exchange, "headers", auto_delete=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    anchor = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(anchor, exchange, arguments={"anchor": True})
    arguments = {"x-match": "all", "color": "red"}
    channel.queue_bind(queue, exchange, arguments=arguments)
    red = pika.BasicProperties(headers={"color": "red"})
    channel.basic_publish(exchange, "", b"red", red)
    # Unbinding with other arguments removes nothing.
    channel.queue_unbind(queue, exchange, arguments={"x-match": "all", "color": "blue"})
    channel.basic_publish(exchange, "", b"red again", red)
    channel.queue_unbind(queue, exchange, arguments=arguments)
    channel.basic_publish(exchange, "", b"after unbind", red)
    assert drain_all(channel, queue) == [b"red", b"red again"]


def test_unbind_of_a_missing_binding_is_ok(channel: BlockingChannel, uid: str) -> None:
    queue = f"unbind-none-{uid}"
    channel.queue_declare(queue, exclusive=True)
    channel.queue_unbind(queue, "amq.direct", f"never-bound-{uid}")
    assert channel.is_open


def test_bind_to_missing_queue_or_exchange(connection: pika.BlockingConnection, uid: str) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        connection.channel().queue_bind(f"missing-{uid}", "amq.direct", "k")
    assert caught.value.reply_code == 404
    assert caught.value.reply_text == f"NOT_FOUND - no queue 'missing-{uid}' in vhost '/'"
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        channel.queue_bind(queue, f"missing-{uid}", "k")
    assert caught.value.reply_code == 404
    assert caught.value.reply_text == f"NOT_FOUND - no exchange 'missing-{uid}' in vhost '/'"


def test_queue_name_with_amq_prefix_is_access_refused(channel: BlockingChannel, uid: str) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        channel.queue_declare(f"amq.mine-{uid}")
    assert caught.value.reply_code == 403
    assert caught.value.reply_text == (
        f"ACCESS_REFUSED - queue name 'amq.mine-{uid}' contains reserved prefix 'amq.*'"
    )


def test_durable_queue_declare_and_delete(
    amqp_url: str, channel: BlockingChannel, uid: str
) -> None:
    queue = f"durable-{uid}"
    try:
        ok = channel.queue_declare(queue, durable=True).method
        assert ok.queue == queue
        channel.queue_declare(queue, durable=True)  # same settings: fine
    finally:
        channel.queue_delete(queue)
    assert not queue_exists(amqp_url, queue)
