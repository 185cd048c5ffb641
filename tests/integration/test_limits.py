"""Queue length limits (``x-max-length``, ``x-max-length-bytes``) and their overflow modes.

As a pika client sees them, on RabbitMQ 3.10 (run with ``PIGEON_TEST_AMQP_URL`` to check).
"""

from __future__ import annotations

import time
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, NackError

pytestmark = pytest.mark.rabbitmq

Arguments = dict[str, Any]


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> BlockingChannel:
    """A channel in confirm mode: each publish returns once the broker has decided."""
    ch = connection.channel()
    ch.confirm_delivery()
    return ch


def declare(ch: BlockingChannel, cleanup: list[str], name: str, arguments: Arguments) -> str:
    ch.queue_declare(name, arguments=arguments)
    cleanup.append(name)
    return name


def publish(ch: BlockingChannel, queue: str, body: bytes) -> None:
    ch.basic_publish("", queue, body)


def bodies(ch: BlockingChannel, queue: str) -> list[bytes]:
    """Every ready message of ``queue``, taken with ``basic.get`` (auto-ack)."""
    out: list[bytes] = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def get_within(ch: BlockingChannel, queue: str, timeout: float = 5.0) -> tuple[Any, Any, bytes]:
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, props, body
        if time.monotonic() > deadline:
            pytest.fail(f"no message in {queue!r} within {timeout} s")
        ch.connection.process_data_events(time_limit=0.02)


def message_count(ch: BlockingChannel, queue: str) -> int:
    return int(ch.queue_declare(queue, passive=True).method.message_count)


# --- drop-head (the default) -----------------------------------------------------------------


def test_max_length_drops_oldest(channel: BlockingChannel, cleanup: list[str], uid: str) -> None:
    q = declare(channel, cleanup, f"maxlen-{uid}", {"x-max-length": 2})
    for body in (b"1", b"2", b"3", b"4"):
        publish(channel, q, body)  # confirmed: drop-head never refuses a publish
    assert message_count(channel, q) == 2
    assert bodies(channel, q) == [b"3", b"4"]


def test_explicit_drop_head_is_the_same(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"maxlen-{uid}", {"x-max-length": 1, "x-overflow": "drop-head"})
    publish(channel, q, b"old")
    publish(channel, q, b"new")
    assert bodies(channel, q) == [b"new"]


def test_max_length_zero_keeps_nothing(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"maxlen-{uid}", {"x-max-length": 0})
    publish(channel, q, b"dropped")
    assert message_count(channel, q) == 0


def test_max_length_counts_ready_messages_only(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"maxlen-{uid}", {"x-max-length": 1})
    publish(channel, q, b"taken")
    method, _, _ = channel.basic_get(q, auto_ack=False)
    assert method is not None
    publish(channel, q, b"ready")  # the unacknowledged one does not count
    assert message_count(channel, q) == 1
    channel.basic_ack(method.delivery_tag)
    assert bodies(channel, q) == [b"ready"]


def test_max_length_bytes_drops_oldest(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    # Only bodies count towards the byte limit: 3 x 4 bytes > 10.
    q = declare(channel, cleanup, f"maxbytes-{uid}", {"x-max-length-bytes": 10})
    for body in (b"aaaa", b"bbbb", b"cccc"):
        publish(channel, q, body)
    assert bodies(channel, q) == [b"bbbb", b"cccc"]


def test_max_length_bytes_ignores_headers(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"maxbytes-{uid}", {"x-max-length-bytes": 8})
    props = pika.BasicProperties(headers={"padding": "x" * 500})
    channel.basic_publish("", q, b"1234", props)
    channel.basic_publish("", q, b"5678", props)
    assert bodies(channel, q) == [b"1234", b"5678"]


def test_both_limits_apply(channel: BlockingChannel, cleanup: list[str], uid: str) -> None:
    q = declare(channel, cleanup, f"limits-{uid}", {"x-max-length": 3, "x-max-length-bytes": 5})
    for body in (b"aa", b"bb", b"cc"):
        publish(channel, q, body)
    assert bodies(channel, q) == [b"bb", b"cc"]  # the byte limit bit first


# --- reject-publish --------------------------------------------------------------------------


def test_reject_publish_nacks_new_message_with_confirms(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(
        channel, cleanup, f"reject-{uid}", {"x-max-length": 2, "x-overflow": "reject-publish"}
    )
    publish(channel, q, b"1")
    publish(channel, q, b"2")
    with pytest.raises(NackError):
        publish(channel, q, b"3")
    assert channel.is_open  # a nack is not an error: the channel goes on
    assert bodies(channel, q) == [b"1", b"2"]
    publish(channel, q, b"4")  # room again: accepted
    assert bodies(channel, q) == [b"4"]


def test_reject_publish_without_confirms_drops_silently(
    connection: pika.BlockingConnection, cleanup: list[str], uid: str
) -> None:
    ch = connection.channel()
    q = declare(ch, cleanup, f"reject-{uid}", {"x-max-length": 1, "x-overflow": "reject-publish"})
    publish(ch, q, b"kept")
    publish(ch, q, b"refused")
    # Any later synchronous round trip proves both publishes were handled.
    assert get_within(ch, q)[2] == b"kept"
    assert ch.basic_get(q, auto_ack=True)[0] is None
    assert ch.is_open


def test_reject_publish_bytes_limit(channel: BlockingChannel, cleanup: list[str], uid: str) -> None:
    q = declare(
        channel,
        cleanup,
        f"reject-{uid}",
        {"x-max-length-bytes": 6, "x-overflow": "reject-publish"},
    )
    publish(channel, q, b"abcd")
    with pytest.raises(NackError):
        publish(channel, q, b"efgh")
    assert bodies(channel, q) == [b"abcd"]


def test_reject_publish_does_not_dead_letter(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    dead = declare(channel, cleanup, f"dead-{uid}", {})
    q = declare(
        channel,
        cleanup,
        f"reject-{uid}",
        {
            "x-max-length": 1,
            "x-overflow": "reject-publish",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead,
        },
    )
    publish(channel, q, b"kept")
    with pytest.raises(NackError):
        publish(channel, q, b"refused")
    assert message_count(channel, dead) == 0


def test_reject_publish_dlx_nacks_and_dead_letters(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    dead = declare(channel, cleanup, f"dead-{uid}", {})
    q = declare(
        channel,
        cleanup,
        f"rejectdlx-{uid}",
        {
            "x-max-length": 1,
            "x-overflow": "reject-publish-dlx",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead,
        },
    )
    publish(channel, q, b"kept")
    with pytest.raises(NackError):
        publish(channel, q, b"refused")
    _, props, body = get_within(channel, dead)
    assert body == b"refused"
    [death] = props.headers["x-death"]
    assert (death["queue"], death["reason"]) == (q, "maxlen")
    assert bodies(channel, q) == [b"kept"]


def test_overflow_applies_per_queue_in_a_fanout(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    # One full queue refuses; the publish is nacked although another queue took it
    # (RabbitMQ nacks when any target queue rejects).
    ex = f"fan-{uid}"
    channel.exchange_declare(ex, "fanout")
    cleanup.append("x:" + ex)
    full = declare(
        channel, cleanup, f"full-{uid}", {"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    free = declare(channel, cleanup, f"free-{uid}", {})
    channel.queue_bind(full, ex)
    channel.queue_bind(free, ex)
    with pytest.raises(NackError):
        channel.basic_publish(ex, "", b"both")
    assert bodies(channel, free) == [b"both"]
    assert message_count(channel, full) == 0


# --- argument validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "detail"),
    [
        ({"x-max-length": -1}, "x-max-length' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
        (
            {"x-max-length-bytes": -1},
            "x-max-length-bytes' for queue '{q}' in vhost '/': {{value_negative,-1}}",
        ),
        ({"x-overflow": "bogus"}, "x-overflow' for queue '{q}' in vhost '/': invalid_overflow"),
    ],
    ids=["max-length-negative", "max-length-bytes-negative", "overflow-unknown"],
)
def test_invalid_limit_argument_is_406(
    channel: BlockingChannel, uid: str, arguments: Arguments, detail: str
) -> None:
    q = f"badlimit-{uid}"
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(q, arguments=arguments)
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - invalid arg '" + detail.format(q=q)


def test_redeclare_with_other_limit_is_406(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"maxlen-{uid}", {"x-max-length": 1})
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(q, arguments={"x-max-length": 2})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': "
        "received '2' but current is '1'"
    )
