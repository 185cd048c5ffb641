"""Publisher confirms and transactions, as pika clients (blocking and select) see them.

RabbitMQ 3.10's behaviour (run with ``PIGEON_TEST_AMQP_URL`` to check). The raw confirm frames
(delivery tags, ``multiple``) are watched with a ``SelectConnection``; the everyday API with a
``BlockingConnection``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.channel import Channel
from pika.exceptions import ChannelClosedByBroker, NackError, UnroutableError
from pika.spec import Basic

pytestmark = pytest.mark.rabbitmq

Event = tuple[Any, ...]


def declare(
    ch: BlockingChannel,
    cleanup: list[str],
    name: str,
    arguments: dict[str, Any] | None = None,
    durable: bool = False,
) -> str:
    ch.queue_declare(name, durable=durable, arguments=arguments)
    cleanup.append(name)
    return name


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


# --- a SelectConnection harness that records what the broker sends --------------------------


def run_select(
    amqp_url: str,
    script: Callable[[Channel], None],
    done: Callable[[list[Event]], bool],
    timeout: float = 5.0,
) -> list[Event]:
    """Open a confirm-mode channel, run ``script`` on it, record events until ``done``.

    Events: ``("ack" | "nack", delivery_tag, multiple)`` and ``("return", reply_code, body)``.
    """
    events: list[Event] = []

    def finish() -> None:
        if conn.is_open:
            conn.close()

    def on_confirm(frame: Any) -> None:
        method = frame.method
        kind = "ack" if isinstance(method, Basic.Ack) else "nack"
        events.append((kind, method.delivery_tag, method.multiple))
        if done(events):
            finish()

    def on_return(ch: Channel, method: Any, props: Any, body: bytes) -> None:
        events.append(("return", method.reply_code, body))

    def on_channel(ch: Channel) -> None:
        ch.add_on_return_callback(on_return)
        ch.confirm_delivery(on_confirm, callback=lambda _frame: script(ch))

    conn = pika.SelectConnection(
        pika.URLParameters(amqp_url),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_open_error_callback=lambda c, err: c.ioloop.stop(),
        on_close_callback=lambda c, reason: c.ioloop.stop(),
    )
    conn.ioloop.call_later(timeout, finish)
    try:
        conn.ioloop.start()
    finally:
        conn.ioloop.close()  # its wake-up socket pair, else a ResourceWarning
    return events


def outcome_per_tag(events: list[Event]) -> dict[int, str]:
    """Expand ``multiple`` confirms into one outcome per delivery tag."""
    outcome: dict[int, str] = {}
    for kind, tag, *rest in events:
        if kind not in ("ack", "nack"):
            continue
        multiple = rest[0]
        tags = range(1, tag + 1) if multiple else [tag]
        for t in tags:
            if t not in outcome:
                outcome[t] = kind
            elif not multiple or t == tag:
                pytest.fail(f"delivery tag {t} confirmed twice: {events}")
    return outcome


def confirmed(n: int) -> Callable[[list[Event]], bool]:
    return lambda events: len(outcome_per_tag(events)) >= n


# --- publisher confirms ----------------------------------------------------------------------


def test_every_publish_is_acked_with_increasing_tags(
    amqp_url: str, connection: pika.BlockingConnection, cleanup: list[str], uid: str
) -> None:
    q = declare(connection.channel(), cleanup, f"confirm-{uid}")

    def script(ch: Channel) -> None:
        for i in range(50):
            ch.basic_publish("", q, str(i).encode())

    events = run_select(amqp_url, script, confirmed(50))
    assert outcome_per_tag(events) == {t: "ack" for t in range(1, 51)}
    tags = [tag for _, tag, _ in events]
    assert tags == sorted(set(tags)), "confirm tags must strictly increase"
    assert message_count(connection.channel(), q) == 50


def test_unroutable_mandatory_is_returned_then_acked(
    amqp_url: str, connection: pika.BlockingConnection, cleanup: list[str], uid: str
) -> None:
    def script(ch: Channel) -> None:
        ch.basic_publish("", f"nowhere-{uid}", b"lost", mandatory=True)

    events = run_select(amqp_url, script, confirmed(1))
    assert events == [("return", 312, b"lost"), ("ack", 1, False)]


def test_unroutable_without_mandatory_is_just_acked(amqp_url: str, uid: str) -> None:
    def script(ch: Channel) -> None:
        ch.basic_publish("", f"nowhere-{uid}", b"lost")

    assert run_select(amqp_url, script, confirmed(1)) == [("ack", 1, False)]


def test_overflow_reject_publish_is_nacked_by_tag(
    amqp_url: str, connection: pika.BlockingConnection, cleanup: list[str], uid: str
) -> None:
    args = {"x-max-length": 1, "x-overflow": "reject-publish"}
    q = declare(connection.channel(), cleanup, f"full-{uid}", args)

    def script(ch: Channel) -> None:
        for body in (b"fits", b"over-1", b"over-2"):
            ch.basic_publish("", q, body)

    events = run_select(amqp_url, script, confirmed(3))
    assert outcome_per_tag(events) == {1: "ack", 2: "nack", 3: "nack"}


def test_blocking_confirms_many_publishes(
    connection: pika.BlockingConnection, cleanup: list[str], uid: str
) -> None:
    ch = connection.channel()
    q = declare(ch, cleanup, f"confirm-{uid}")
    ch.confirm_delivery()
    for i in range(200):
        ch.basic_publish("", q, str(i).encode())  # raises on nack: every one was acked
    assert message_count(ch, q) == 200


def test_blocking_mandatory_unroutable_raises(
    connection: pika.BlockingConnection, uid: str
) -> None:
    ch = connection.channel()
    ch.confirm_delivery()
    with pytest.raises(UnroutableError) as info:
        ch.basic_publish("", f"nowhere-{uid}", b"lost", mandatory=True)
    [returned] = info.value.messages
    assert returned.body == b"lost"
    assert ch.is_open


def test_blocking_nack_raises(
    connection: pika.BlockingConnection, cleanup: list[str], uid: str
) -> None:
    ch = connection.channel()
    args = {"x-max-length": 0, "x-overflow": "reject-publish"}
    q = declare(ch, cleanup, f"full-{uid}", args)
    ch.confirm_delivery()
    with pytest.raises(NackError):
        ch.basic_publish("", q, b"refused")
    ch.basic_publish("", f"nowhere-{uid}", b"fine")  # the channel goes on
    assert ch.is_open


def test_persistent_message_to_durable_queue_is_confirmed(
    connection: pika.BlockingConnection, cleanup: list[str], uid: str
) -> None:
    ch = connection.channel()
    q = declare(ch, cleanup, f"durable-{uid}", durable=True)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"kept", pika.BasicProperties(delivery_mode=2))
    _, props, body = get_within(ch, q)
    assert (body, props.delivery_mode) == (b"kept", 2)


def test_confirm_tags_are_per_channel(
    amqp_url: str, connection: pika.BlockingConnection, cleanup: list[str], uid: str
) -> None:
    q = declare(connection.channel(), cleanup, f"confirm-{uid}")

    def script(ch: Channel) -> None:
        ch.basic_publish("", q, b"one")

    # Two separate connections (and channels): each numbers its publishes from 1.
    assert outcome_per_tag(run_select(amqp_url, script, confirmed(1))) == {1: "ack"}
    assert outcome_per_tag(run_select(amqp_url, script, confirmed(1))) == {1: "ack"}


# --- transactions ----------------------------------------------------------------------------


def test_tx_commit_makes_publishes_visible(
    connection: pika.BlockingConnection, cleanup: list[str], uid: str
) -> None:
    tx, observer = connection.channel(), connection.channel()
    q = declare(observer, cleanup, f"tx-{uid}")
    tx.tx_select()
    tx.basic_publish("", q, b"one")
    tx.basic_publish("", q, b"two")
    assert observer.basic_get(q, auto_ack=True)[0] is None  # not before commit
    tx.tx_commit()
    assert [get_within(observer, q)[2], get_within(observer, q)[2]] == [b"one", b"two"]


def test_tx_rollback_discards_publishes(
    connection: pika.BlockingConnection, cleanup: list[str], uid: str
) -> None:
    tx = connection.channel()
    q = declare(tx, cleanup, f"tx-{uid}")
    tx.tx_select()
    tx.basic_publish("", q, b"discarded")
    tx.tx_rollback()
    tx.basic_publish("", q, b"committed")  # still transactional after a rollback
    tx.tx_commit()
    assert get_within(tx, q)[2] == b"committed"
    assert tx.basic_get(q, auto_ack=True)[0] is None


def test_ack_in_rolled_back_tx_is_not_applied(
    connection: pika.BlockingConnection, cleanup: list[str], uid: str
) -> None:
    setup = connection.channel()
    q = declare(setup, cleanup, f"tx-{uid}")
    setup.confirm_delivery()
    setup.basic_publish("", q, b"work")
    tx = connection.channel()
    tx.tx_select()
    method, _, _ = tx.basic_get(q, auto_ack=False)
    assert method is not None
    tx.basic_ack(method.delivery_tag)
    tx.tx_rollback()
    tx.close()  # the message is still unacknowledged, so closing requeues it
    method, _, body = get_within(setup, q)
    assert (body, method.redelivered) == (b"work", True)


def test_ack_in_committed_tx_is_applied(
    connection: pika.BlockingConnection, cleanup: list[str], uid: str
) -> None:
    setup = connection.channel()
    q = declare(setup, cleanup, f"tx-{uid}")
    setup.confirm_delivery()
    setup.basic_publish("", q, b"work")
    tx = connection.channel()
    tx.tx_select()
    method, _, _ = tx.basic_get(q, auto_ack=False)
    tx.basic_ack(method.delivery_tag)
    tx.tx_commit()
    tx.close()
    assert message_count(setup, q) == 0


@pytest.mark.parametrize("call", ["tx_commit", "tx_rollback"])
def test_tx_without_select_is_406(connection: pika.BlockingConnection, call: str) -> None:
    ch = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        getattr(ch, call)()
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - channel is not transactional"


def test_confirm_select_on_tx_channel_is_406(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    ch.tx_select()
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.confirm_delivery()
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - cannot switch from tx to confirm mode"


def test_tx_select_on_confirm_channel_is_406(connection: pika.BlockingConnection) -> None:
    ch = connection.channel()
    ch.confirm_delivery()
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.tx_select()
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - cannot switch from confirm to tx mode"
