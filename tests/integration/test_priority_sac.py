"""Priority queues (``x-max-priority``) and single active consumer, as a pika client sees them.

RabbitMQ 3.10's behaviour (run with ``PIGEON_TEST_AMQP_URL`` to check). Consumer priorities
(``x-priority`` on basic.consume) are covered elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

pytestmark = pytest.mark.rabbitmq

Arguments = dict[str, Any]


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> BlockingChannel:
    """Confirm mode, so messages are in the queue when a publish returns."""
    ch = connection.channel()
    ch.confirm_delivery()
    return ch


def declare(ch: BlockingChannel, cleanup: list[str], name: str, arguments: Arguments) -> str:
    ch.queue_declare(name, arguments=arguments)
    cleanup.append(name)
    return name


def wait_until(
    connection: pika.BlockingConnection, predicate: Callable[[], bool], timeout: float = 5.0
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        connection.process_data_events(time_limit=0.02)
    return predicate()


def publish_all(ch: BlockingChannel, queue: str, messages: list[tuple[bytes, int | None]]) -> None:
    for body, priority in messages:
        ch.basic_publish("", queue, body, pika.BasicProperties(priority=priority))


def get_all(ch: BlockingChannel, queue: str) -> list[tuple[bytes, int | None]]:
    out: list[tuple[bytes, int | None]] = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((body, props.priority))


# --- priorities ------------------------------------------------------------------------------


def test_higher_priority_is_delivered_first(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"prio-{uid}", {"x-max-priority": 10})
    publish_all(
        channel,
        q,
        [(b"low", 1), (b"mid-a", 5), (b"none", None), (b"high", 9), (b"mid-b", 5), (b"zero", 0)],
    )
    # Equal priorities keep publish order; no priority counts as 0.
    assert [body for body, _ in get_all(channel, q)] == [
        b"high",
        b"mid-a",
        b"mid-b",
        b"low",
        b"none",
        b"zero",
    ]


def test_priority_above_max_is_treated_as_max(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"prio-{uid}", {"x-max-priority": 5})
    publish_all(channel, q, [(b"low", 1), (b"at-max", 5), (b"above-max", 9), (b"mid", 3)])
    # "above-max" ranks as 5, so it queues behind "at-max"; its property is not rewritten.
    assert get_all(channel, q) == [(b"at-max", 5), (b"above-max", 9), (b"mid", 3), (b"low", 1)]


def test_queue_without_max_priority_is_fifo(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"fifo-{uid}", {})
    publish_all(channel, q, [(b"a", 1), (b"b", 9), (b"c", 5)])
    assert [body for body, _ in get_all(channel, q)] == [b"a", b"b", b"c"]


def test_consumer_gets_backlog_in_priority_order(
    connection: pika.BlockingConnection, channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"prio-{uid}", {"x-max-priority": 3})
    publish_all(channel, q, [(b"p0", 0), (b"p1", 1), (b"p3", 3), (b"p2", 2)])
    received: list[bytes] = []
    consumer = connection.channel()
    consumer.basic_consume(q, lambda ch, m, p, b: received.append(b), auto_ack=True)
    assert wait_until(connection, lambda: len(received) == 4)
    assert received == [b"p3", b"p2", b"p1", b"p0"]


def test_requeued_message_keeps_its_priority(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"prio-{uid}", {"x-max-priority": 5})
    publish_all(channel, q, [(b"high", 5), (b"low", 1)])
    method, _, body = channel.basic_get(q, auto_ack=False)
    assert body == b"high"
    channel.basic_reject(method.delivery_tag, requeue=True)
    method, _, body = channel.basic_get(q, auto_ack=True)
    assert (body, method.redelivered) == (b"high", True)


@pytest.mark.parametrize(
    ("value", "detail"),
    [(256, "{max_value_exceeded,256}"), (-1, "{value_negative,-1}")],
    ids=["too-large", "negative"],
)
def test_invalid_max_priority_is_406(
    channel: BlockingChannel, uid: str, value: int, detail: str
) -> None:
    q = f"badprio-{uid}"
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(q, arguments={"x-max-priority": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/': "
        + detail
    )


# --- single active consumer ------------------------------------------------------------------


class Recorder:
    """Collects (consumer name, body, redelivered) from several consumers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes, bool]] = []

    def callback(self, name: str, ack: bool = True) -> Callable[..., None]:
        def on_message(ch: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
            self.seen.append((name, body, method.redelivered))
            if ack:
                ch.basic_ack(method.delivery_tag)

        return on_message

    def by(self, name: str) -> list[bytes]:
        return [body for who, body, _ in self.seen if who == name]


def sac_queue(ch: BlockingChannel, cleanup: list[str], uid: str) -> str:
    return declare(ch, cleanup, f"sac-{uid}", {"x-single-active-consumer": True})


def test_only_the_first_consumer_receives(
    connection: pika.BlockingConnection, channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = sac_queue(channel, cleanup, uid)
    rec = Recorder()
    first, second = connection.channel(), connection.channel()
    first.basic_consume(q, rec.callback("first"))
    second.basic_consume(q, rec.callback("second"))
    publish_all(channel, q, [(str(i).encode(), None) for i in range(6)])
    assert wait_until(connection, lambda: len(rec.seen) == 6)
    assert rec.by("first") == [str(i).encode() for i in range(6)]
    assert rec.by("second") == []


def test_next_consumer_takes_over_after_cancel(
    connection: pika.BlockingConnection, channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = sac_queue(channel, cleanup, uid)
    rec = Recorder()
    first, second = connection.channel(), connection.channel()
    tag = first.basic_consume(q, rec.callback("first"))
    second.basic_consume(q, rec.callback("second"))
    publish_all(channel, q, [(b"before", None)])
    assert wait_until(connection, lambda: len(rec.seen) == 1)
    first.basic_cancel(tag)
    publish_all(channel, q, [(b"after-1", None), (b"after-2", None)])
    assert wait_until(connection, lambda: len(rec.seen) == 3)
    assert rec.by("first") == [b"before"]
    assert rec.by("second") == [b"after-1", b"after-2"]


def test_inactive_consumer_waits_even_when_active_one_is_full(
    connection: pika.BlockingConnection, channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = sac_queue(channel, cleanup, uid)
    rec = Recorder()
    first, second = connection.channel(), connection.channel()
    first.basic_qos(prefetch_count=1)
    first.basic_consume(q, rec.callback("first", ack=False))
    second.basic_consume(q, rec.callback("second"))
    publish_all(channel, q, [(b"m1", None), (b"m2", None), (b"m3", None)])
    assert wait_until(connection, lambda: len(rec.seen) == 1)
    # The active consumer is at its prefetch limit; the other still gets nothing.
    assert not wait_until(connection, lambda: len(rec.seen) > 1, timeout=0.3)
    # Closing the active consumer's channel requeues m1 and hands everything to "second".
    first.close()
    assert wait_until(connection, lambda: len(rec.seen) == 4)
    assert rec.seen[1:] == [
        ("second", b"m1", True),
        ("second", b"m2", False),
        ("second", b"m3", False),
    ]


def test_invalid_single_active_consumer_argument_is_406(channel: BlockingChannel, uid: str) -> None:
    q = f"badsac-{uid}"
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(q, arguments={"x-single-active-consumer": "yes"})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue '{q}' "
        "in vhost '/': {unacceptable_type,longstr}"
    )
