"""Message TTL, queue expiry and dead-lettering, as a pika client sees them.

Every assertion here is RabbitMQ 3.10's behaviour (run with ``PIGEON_TEST_AMQP_URL`` to check).
TTLs are short (100-300 ms) and every wait is a poll with a deadline, never a bare sleep.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, UnroutableError

pytestmark = pytest.mark.rabbitmq

Arguments = dict[str, Any]
Got = tuple[Any, pika.BasicProperties, bytes]


@pytest.fixture
def channel(connection: pika.BlockingConnection) -> BlockingChannel:
    # Confirms make each publish return once the queue holds the message, so the
    # message counts read right after it are exact (RabbitMQ does not order a passive
    # declare after an unconfirmed publish).
    ch = connection.channel()
    ch.confirm_delivery()
    return ch


def wait_until(
    connection: pika.BlockingConnection, predicate: Callable[[], bool], timeout: float = 5.0
) -> bool:
    """Poll ``predicate`` while serving the connection, until true or the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        connection.process_data_events(time_limit=0.02)
    return predicate()


def message_count(ch: BlockingChannel, queue: str) -> int:
    return int(ch.queue_declare(queue, passive=True).method.message_count)


def get_within(ch: BlockingChannel, queue: str, timeout: float = 5.0, ack: bool = True) -> Got:
    """``basic.get`` until a message arrives or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=ack)
        if method is not None:
            return method, props, body
        if time.monotonic() > deadline:
            pytest.fail(f"no message in {queue!r} within {timeout} s")
        ch.connection.process_data_events(time_limit=0.02)


def declare(
    ch: BlockingChannel, cleanup: list[str], name: str, arguments: Arguments | None = None
) -> str:
    ch.queue_declare(name, arguments=arguments)
    cleanup.append(name)
    return name


def dlx_pair(ch: BlockingChannel, cleanup: list[str], uid: str, args: Arguments) -> tuple[str, str]:
    """A fanout dead-letter exchange bound to a queue ``dead``; a source queue using it."""
    dlx = f"dlx-{uid}"
    ch.exchange_declare(dlx, "fanout")
    cleanup.append("x:" + dlx)
    dead = declare(ch, cleanup, f"dead-{uid}")
    ch.queue_bind(dead, dlx)
    source = declare(ch, cleanup, f"src-{uid}", {"x-dead-letter-exchange": dlx, **args})
    return source, dead


def publish(ch: BlockingChannel, queue: str, body: bytes, **props: Any) -> None:
    ch.basic_publish("", queue, body, pika.BasicProperties(**props))


# --- x-message-ttl -------------------------------------------------------------------------


def test_queue_ttl_expired_message_is_not_delivered(
    connection: pika.BlockingConnection, channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"ttl-{uid}", {"x-message-ttl": 300})
    publish(channel, q, b"short-lived")
    assert message_count(channel, q) == 1
    assert wait_until(connection, lambda: message_count(channel, q) == 0)
    assert channel.basic_get(q, auto_ack=True) == (None, None, None)


def test_queue_ttl_message_consumed_in_time_is_delivered(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"ttl-{uid}", {"x-message-ttl": 60_000})
    publish(channel, q, b"in time")
    _, _, body = get_within(channel, q)
    assert body == b"in time"


def test_queue_ttl_zero_drops_message_without_consumer(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"ttl0-{uid}", {"x-message-ttl": 0})
    publish(channel, q, b"gone")
    assert message_count(channel, q) == 0
    assert channel.basic_get(q, auto_ack=True) == (None, None, None)


def test_per_message_expiration_expires(
    connection: pika.BlockingConnection, channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"exp-{uid}")
    publish(channel, q, b"expiring", expiration="100")
    publish(channel, q, b"lasting")
    # The expiring message is at the head, so it is removed at its time.
    assert wait_until(connection, lambda: message_count(channel, q) == 1)
    _, props, body = get_within(channel, q)
    assert body == b"lasting"
    assert props.expiration is None


def test_expiration_property_is_delivered_unchanged(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"exp-{uid}")
    publish(channel, q, b"x", expiration="60000")
    _, props, _ = get_within(channel, q)
    assert props.expiration == "60000"


@pytest.mark.parametrize(
    ("queue_ttl", "message_ttl"),
    [(100, "60000"), (60_000, "100")],
    ids=["queue-lower", "msg-lower"],
)
def test_lower_of_queue_and_message_ttl_wins(
    connection: pika.BlockingConnection,
    channel: BlockingChannel,
    cleanup: list[str],
    uid: str,
    queue_ttl: int,
    message_ttl: str,
) -> None:
    q = declare(channel, cleanup, f"ttl-{uid}", {"x-message-ttl": queue_ttl})
    publish(channel, q, b"x", expiration=message_ttl)
    assert wait_until(connection, lambda: message_count(channel, q) == 0, timeout=5.0)


def test_expiration_zero_is_delivered_to_a_waiting_consumer(
    connection: pika.BlockingConnection, channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"exp0-{uid}")
    received: list[bytes] = []
    channel.basic_consume(q, lambda ch, m, p, b: received.append(b), auto_ack=True)
    publisher = connection.channel()
    publisher.confirm_delivery()
    publish(publisher, q, b"now or never", expiration="0")
    assert wait_until(connection, lambda: received == [b"now or never"])


def test_expiration_zero_without_consumer_is_dropped(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"exp0-{uid}")
    publish(channel, q, b"nobody listening", expiration="0")
    publish(channel, q, b"marker")
    _, _, body = get_within(channel, q)
    assert body == b"marker"
    assert message_count(channel, q) == 0


@pytest.mark.parametrize(
    ("expiration", "detail"),
    [
        ("abc", "no_integer"),
        ("-1", "{value_negative,-1}"),
        ("1.5", '{leftover_string,".5"}'),
        ("", "no_integer"),
    ],
)
def test_invalid_expiration_closes_channel_406(
    channel: BlockingChannel, cleanup: list[str], uid: str, expiration: str, detail: str
) -> None:
    q = declare(channel, cleanup, f"exp-{uid}")
    with pytest.raises(ChannelClosedByBroker) as info:
        publish(channel, q, b"x", expiration=expiration)
        channel.queue_declare(q, passive=True)  # a round trip to receive the close
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid expiration '{expiration}': {detail}"
    )


# --- x-expires -------------------------------------------------------------------------------


def queue_exists(ch: BlockingChannel, name: str) -> bool:
    """Probe with a mandatory publish: a declare or basic.get would renew the lease."""
    try:
        ch.basic_publish("", name, b"probe", mandatory=True)
    except UnroutableError:
        return False
    return True


def test_unused_queue_is_deleted_after_expires(
    connection: pika.BlockingConnection, channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"expires-{uid}", {"x-expires": 200})
    assert queue_exists(channel, q)
    assert wait_until(connection, lambda: not queue_exists(channel, q), timeout=5.0)


def test_queue_with_consumer_does_not_expire(
    connection: pika.BlockingConnection, channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"expires-{uid}", {"x-expires": 150})
    tag = channel.basic_consume(q, lambda *a: None, auto_ack=True)
    # Wait several expiry periods: the queue must still be there (a wait for a non-event).
    assert not wait_until(connection, lambda: not queue_exists(channel, q), timeout=0.8)
    channel.basic_cancel(tag)
    # Once the consumer is gone the period starts and the queue goes.
    assert wait_until(connection, lambda: not queue_exists(channel, q), timeout=5.0)


# --- argument validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "detail"),
    [
        (
            {"x-message-ttl": -1},
            "invalid arg 'x-message-ttl' for queue '{q}' in vhost '/': {{value_negative,-1}}",
        ),
        (
            {"x-message-ttl": "abc"},
            "invalid arg 'x-message-ttl' for queue '{q}' in vhost '/': "
            '"expected integer, got longstr"',
        ),
        (
            {"x-expires": 0},
            "invalid arg 'x-expires' for queue '{q}' in vhost '/': {{value_zero,0}}",
        ),
        (
            {"x-expires": -5},
            "invalid arg 'x-expires' for queue '{q}' in vhost '/': {{value_negative,-5}}",
        ),
        (
            {"x-dead-letter-routing-key": "rk"},
            "invalid arg 'x-dead-letter-routing-key' for "
            "queue '{q}' in vhost '/': routing_key_but_no_dlx_defined",
        ),
        (
            {"x-dead-letter-exchange": 5},
            "invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '{q}' in vhost '/'",
        ),
    ],
    ids=[
        "ttl-negative",
        "ttl-string",
        "expires-zero",
        "expires-negative",
        "dlrk-without-dlx",
        "dlx-not-string",
    ],
)
def test_invalid_queue_argument_is_406(
    channel: BlockingChannel, uid: str, arguments: Arguments, detail: str
) -> None:
    q = f"badarg-{uid}"
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(q, arguments=arguments)
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - " + detail.format(q=q)


# --- dead-lettering --------------------------------------------------------------------------


def death_of(props: pika.BasicProperties) -> list[dict[str, Any]]:
    assert props.headers is not None, "dead-lettered message has no headers"
    deaths = props.headers["x-death"]
    assert isinstance(deaths, list)
    return deaths


@pytest.mark.parametrize("how", ["reject", "nack"])
def test_rejected_message_is_dead_lettered(
    channel: BlockingChannel, cleanup: list[str], uid: str, how: str
) -> None:
    source, dead = dlx_pair(channel, cleanup, uid, {})
    publish(channel, source, b"refused", headers={"mine": "kept"}, message_id="m1")
    method, _, _ = get_within(channel, source, ack=False)
    if how == "reject":
        channel.basic_reject(method.delivery_tag, requeue=False)
    else:
        channel.basic_nack(method.delivery_tag, requeue=False)
    method, props, body = get_within(channel, dead)
    assert body == b"refused"
    assert props.message_id == "m1"
    assert props.headers["mine"] == "kept"
    assert method.exchange == f"dlx-{uid}"
    assert method.routing_key == source  # the original routing key is kept
    [death] = death_of(props)
    assert death["queue"] == source
    assert death["reason"] == "rejected"
    assert death["count"] == 1
    assert death["exchange"] == ""
    assert death["routing-keys"] == [source]
    assert isinstance(death["time"], datetime.datetime)
    assert props.headers["x-first-death-queue"] == source
    assert props.headers["x-first-death-reason"] == "rejected"
    assert props.headers["x-first-death-exchange"] == ""
    assert message_count(channel, source) == 0


def test_requeued_reject_is_not_dead_lettered(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    source, dead = dlx_pair(channel, cleanup, uid, {})
    publish(channel, source, b"again")
    method, _, _ = get_within(channel, source, ack=False)
    channel.basic_reject(method.delivery_tag, requeue=True)
    method, _, body = get_within(channel, source)
    assert (body, method.redelivered) == (b"again", True)
    assert message_count(channel, dead) == 0


def test_expired_message_is_dead_lettered(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    source, dead = dlx_pair(channel, cleanup, uid, {"x-message-ttl": 100})
    publish(channel, source, b"too late")
    _, props, body = get_within(channel, dead)
    assert body == b"too late"
    [death] = death_of(props)
    assert (death["queue"], death["reason"], death["count"]) == (source, "expired", 1)
    assert props.headers["x-first-death-reason"] == "expired"


def test_per_message_expiry_dead_letters_without_expiration(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    source, dead = dlx_pair(channel, cleanup, uid, {})
    publish(channel, source, b"per message", expiration="100")
    _, props, body = get_within(channel, dead)
    assert body == b"per message"
    # The dead-lettered copy must not expire again: its expiration moves into x-death.
    assert props.expiration is None
    [death] = death_of(props)
    assert death["reason"] == "expired"
    assert death["original-expiration"] == "100"


def test_dead_letter_routing_key_replaces_routing_key(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    dlx = f"dlx-{uid}"
    channel.exchange_declare(dlx, "direct")
    cleanup.append("x:" + dlx)
    dead = declare(channel, cleanup, f"dead-{uid}")
    channel.queue_bind(dead, dlx, routing_key="to-dead")
    source = declare(
        channel,
        cleanup,
        f"src-{uid}",
        {"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "to-dead"},
    )
    publish(channel, source, b"rerouted")
    method, _, _ = get_within(channel, source, ack=False)
    channel.basic_nack(method.delivery_tag, requeue=False)
    method, props, body = get_within(channel, dead)
    assert (body, method.routing_key) == (b"rerouted", "to-dead")
    [death] = death_of(props)
    assert death["routing-keys"] == [source]  # the routing keys it was published with


def test_default_exchange_as_dlx_with_routing_key(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    dead = declare(channel, cleanup, f"dead-{uid}")
    source = declare(
        channel,
        cleanup,
        f"src-{uid}",
        {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead},
    )
    publish(channel, source, b"via default")
    method, _, _ = get_within(channel, source, ack=False)
    channel.basic_reject(method.delivery_tag, requeue=False)
    _, props, body = get_within(channel, dead)
    assert body == b"via default"
    assert death_of(props)[0]["exchange"] == ""


def test_published_via_exchange_records_exchange_and_cc_keys(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    ex = f"ex-{uid}"
    channel.exchange_declare(ex, "direct")
    cleanup.append("x:" + ex)
    source, dead = dlx_pair(channel, cleanup, uid, {})
    channel.queue_bind(source, ex, routing_key="main")
    channel.basic_publish(ex, "main", b"cc", pika.BasicProperties(headers={"CC": ["other"]}))
    method, _, _ = get_within(channel, source, ack=False)
    channel.basic_reject(method.delivery_tag, requeue=False)
    _, props, _ = get_within(channel, dead)
    [death] = death_of(props)
    assert death["exchange"] == ex
    assert death["routing-keys"] == ["main", "other"]
    assert props.headers["x-first-death-exchange"] == ex


def test_repeated_dead_lettering_increments_count(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    # A queue that dead-letters into itself: each rejection is a new death in the same
    # (queue, reason) pair, so RabbitMQ bumps its count instead of adding an entry.
    q = f"loop-{uid}"
    declare(channel, cleanup, q, {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q})
    publish(channel, q, b"boomerang")
    for rejections in range(4):
        method, props, body = get_within(channel, q, ack=False)
        assert body == b"boomerang"
        if rejections == 0:
            assert props.headers is None
        else:
            [death] = death_of(props)
            assert (death["queue"], death["reason"]) == (q, "rejected")
            assert death["count"] == rejections
        channel.basic_reject(method.delivery_tag, requeue=False)


def test_deaths_in_two_queues_are_listed_newest_first(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    last = declare(channel, cleanup, f"last-{uid}")
    second = declare(
        channel,
        cleanup,
        f"second-{uid}",
        {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": last},
    )
    first = declare(
        channel,
        cleanup,
        f"first-{uid}",
        {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": second, "x-message-ttl": 50},
    )
    publish(channel, first, b"twice")
    method, _, _ = get_within(channel, second, ack=False)
    channel.basic_reject(method.delivery_tag, requeue=False)
    _, props, _ = get_within(channel, last)
    deaths = death_of(props)
    assert [(d["queue"], d["reason"]) for d in deaths] == [
        (second, "rejected"),
        (first, "expired"),
    ]
    assert props.headers["x-first-death-queue"] == first
    assert props.headers["x-first-death-reason"] == "expired"


def test_max_length_drop_head_dead_letters_oldest(
    channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    source, dead = dlx_pair(channel, cleanup, uid, {"x-max-length": 1})
    publish(channel, source, b"old")
    publish(channel, source, b"new")
    _, props, body = get_within(channel, dead)
    assert body == b"old"
    [death] = death_of(props)
    assert (death["queue"], death["reason"]) == (source, "maxlen")
    assert get_within(channel, source)[2] == b"new"


def test_dead_lettering_to_missing_exchange_drops_silently(
    connection: pika.BlockingConnection, channel: BlockingChannel, cleanup: list[str], uid: str
) -> None:
    q = declare(channel, cleanup, f"src-{uid}", {"x-dead-letter-exchange": f"missing-{uid}"})
    publish(channel, q, b"lost")
    method, _, _ = get_within(channel, q, ack=False)
    channel.basic_reject(method.delivery_tag, requeue=False)
    # Closing the channel would requeue the message had the reject not removed it.
    channel.close()
    other = connection.channel()
    assert message_count(other, q) == 0
    assert other.basic_get(q, auto_ack=True) == (None, None, None)
    assert connection.is_open
