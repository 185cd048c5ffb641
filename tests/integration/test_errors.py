"""Errors as a client sees them (amqp0-9-1 §1.4.2, §4.2.3 and the reply codes).

A channel exception closes only that channel; a connection exception closes
only that connection. Everything else keeps working, and the reply texts say
what was wrong in RabbitMQ's words.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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
    process_until,
)
from pamqp import commands
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import BasicProperties


@dataclass
class Scene:
    """What a failing action may use, and a bystander that must be unaffected."""

    uid: str
    queue: str  # a shared queue
    foreign_exclusive: str  # an exclusive queue owned by the bystander connection
    bystander: pika.BlockingConnection
    bystander_channel: BlockingChannel
    received: list[bytes]  # what the bystander's consumer on ``queue`` got


@pytest.fixture
def scene(amqp_url: str, uid: str) -> Iterator[Scene]:
    with connect(amqp_url) as bystander:
        channel = bystander.channel()
        queue = f"errors-{uid}"
        foreign = f"errors-foreign-{uid}"
        channel.queue_declare(queue)
        channel.queue_declare(foreign, exclusive=True)
        received: list[bytes] = []
        channel.basic_consume(queue, lambda _c, _m, _p, body: received.append(body), auto_ack=True)
        yield Scene(uid, queue, foreign, bystander, channel, received)
        channel.queue_delete(queue)


def assert_bystander_works(scene: Scene, note: bytes) -> None:
    """The other connection still publishes, routes and consumes."""
    publisher = scene.bystander.channel()
    publisher.basic_publish("", scene.queue, note)
    process_until(scene.bystander, lambda: note in scene.received)
    publisher.close()


Action = Callable[[BlockingChannel, Scene], object]

# (id, action, reply code, expected start of the reply text); {q}, {f} and {u} stand
# for the shared queue, the foreign exclusive queue and the test's unique suffix.
CHANNEL_ERRORS: list[tuple[str, Action, int, str]] = [
    (
        "passive-queue",
        lambda ch, s: ch.queue_declare(f"missing-{s.uid}", passive=True),
        404,
        "NOT_FOUND - no queue 'missing-{u}' in vhost '/'",
    ),
    (
        "passive-exchange",
        lambda ch, s: ch.exchange_declare(f"missing-{s.uid}", passive=True),
        404,
        "NOT_FOUND - no exchange 'missing-{u}' in vhost '/'",
    ),
    (
        "publish-missing-exchange",
        lambda ch, s: ch.basic_publish(f"missing-{s.uid}", "", b"x"),
        404,
        "NOT_FOUND - no exchange 'missing-{u}' in vhost '/'",
    ),
    (
        "consume-missing-queue",
        lambda ch, s: ch.basic_consume(f"missing-{s.uid}", lambda *a: None),
        404,
        "NOT_FOUND - no queue 'missing-{u}' in vhost '/'",
    ),
    (
        "queue-inequivalent",
        lambda ch, s: ch.queue_declare(s.queue, durable=True),
        406,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/'",
    ),
    (
        "reserved-queue-name",
        lambda ch, s: ch.queue_declare(f"amq.{s.uid}"),
        403,
        "ACCESS_REFUSED - queue name 'amq.{u}' contains reserved prefix 'amq.*'",
    ),
    (
        "reserved-exchange-name",
        lambda ch, s: ch.exchange_declare(f"amq.{s.uid}", "direct"),
        403,
        "ACCESS_REFUSED - exchange name 'amq.{u}' contains reserved prefix 'amq.*'",
    ),
    (
        "bind-default-exchange",
        lambda ch, s: ch.queue_bind(s.queue, "", "k"),
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange",
    ),
    (
        "exclusive-locked",
        lambda ch, s: ch.queue_declare(s.foreign_exclusive, passive=True),
        405,
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{f}' in vhost '/'",
    ),
    (
        "unknown-delivery-tag",
        lambda ch, s: ch.basic_ack(77),
        406,
        "PRECONDITION_FAILED - unknown delivery tag 77",
    ),
    (
        "user-id-mismatch",
        lambda ch, s: ch.basic_publish("", s.queue, b"x", BasicProperties(user_id="mallory")),
        406,
        "PRECONDITION_FAILED - user_id property set to 'mallory'",
    ),
    (
        "delete-in-use",
        lambda ch, s: ch.queue_delete(s.queue, if_unused=True),
        406,
        "PRECONDITION_FAILED - queue '{q}' in vhost '/' in use",
    ),
]


@pytest.mark.parametrize(
    ("action", "code", "text"),
    [case[1:] for case in CHANNEL_ERRORS],
    ids=[case[0] for case in CHANNEL_ERRORS],
)
def test_channel_error_closes_only_that_channel(
    connection: pika.BlockingConnection, scene: Scene, action: Action, code: int, text: str
) -> None:
    sibling = connection.channel()
    sibling_queue = sibling.queue_declare("", exclusive=True).method.queue
    failing = connection.channel()
    number = failing.channel_number

    error = await_channel_close(failing, lambda: action(failing, scene))

    assert error.reply_code == code
    expected = text.format(q=scene.queue, f=scene.foreign_exclusive, u=scene.uid)
    assert error.reply_text.startswith(expected), error.reply_text
    assert failing.is_closed
    assert connection.is_open
    # The sibling channel on the same connection is untouched ...
    sibling.basic_publish("", sibling_queue, b"sibling")
    assert drain_all(sibling, sibling_queue) == [b"sibling"]
    # ... the channel number can be used again ...
    reopened = connection.channel(channel_number=number)
    reopened.queue_declare(scene.queue, passive=True)
    # ... and other connections never noticed.
    assert_bystander_works(scene, b"after channel error")


def test_channel_error_requeues_that_channels_unacked(
    connection: pika.BlockingConnection, scene: Scene, uid: str
) -> None:
    queue = f"requeue-on-error-{uid}"
    channel = connection.channel()
    channel.queue_declare(queue, exclusive=True)
    channel.basic_publish("", queue, b"unacked")
    get_one(channel, queue, auto_ack=False)
    error = await_channel_close(channel, lambda: channel.basic_ack(999))
    assert error.reply_code == 406
    method, _, body = get_one(connection.channel(), queue)
    assert (body, method.redelivered) == (b"unacked", True)


@pytest.mark.parametrize(
    ("action", "code", "text"),
    [
        (
            lambda ch, s: ch.exchange_declare(f"weird-{s.uid}", "no-such-type"),
            503,
            "COMMAND_INVALID - unknown exchange type 'no-such-type'",
        ),
        (
            lambda ch, s: ch.connection.channel(channel_number=ch.channel_number),
            504,
            "CHANNEL_ERROR - second 'channel.open' seen",
        ),
    ],
    ids=["unknown-exchange-type", "second-channel-open"],
)
def test_connection_error_closes_only_that_connection(
    connection: pika.BlockingConnection, scene: Scene, action: Action, code: int, text: str
) -> None:
    channel = connection.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as caught:
        action(channel, scene)
        connection.process_data_events(time_limit=1)
    assert caught.value.reply_code == code
    assert caught.value.reply_text.startswith(text), caught.value.reply_text
    assert connection.is_closed
    assert_bystander_works(scene, b"after connection error")


def test_connection_error_requeues_unacked_of_every_channel(
    amqp_url: str, scene: Scene, uid: str
) -> None:
    queue = f"requeue-on-connection-error-{uid}"
    owner = scene.bystander.channel()
    owner.queue_declare(queue, auto_delete=False)
    try:
        owner.basic_publish("", queue, b"one")
        owner.basic_publish("", queue, b"two")
        with connect(amqp_url) as doomed:
            first, second = doomed.channel(), doomed.channel()
            get_one(first, queue, auto_ack=False)
            get_one(second, queue, auto_ack=False)
            with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
                first.exchange_declare(f"weird-{uid}", "no-such-type")
        got = [(m.redelivered, b) for m, _, b in (get_one(owner, queue) for _ in "12")]
        assert got == [(True, b"one"), (True, b"two")]
    finally:
        owner.queue_delete(queue)


def _open(raw: RawClient, amqp_url: str) -> None:
    raw.handshake(*credentials(amqp_url))
    raw.expect(commands.Connection.OpenOk)
    raw.send(1, commands.Channel.Open())
    raw.expect(commands.Channel.OpenOk)


def _frame(frame_type: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + end


RawAction = Callable[[RawClient], object]

RAW_CONNECTION_ERRORS: list[tuple[str, RawAction, int, str]] = [
    (
        "second-channel-open",
        lambda raw: raw.send(1, commands.Channel.Open()),
        504,
        "CHANNEL_ERROR - second 'channel.open' seen",
    ),
    (
        "channel-not-open",
        lambda raw: raw.send(5, commands.Queue.Declare(queue="", exclusive=True)),
        504,
        "CHANNEL_ERROR - expected 'channel.open'",
    ),
    (
        "content-header-without-method",
        lambda raw: raw.send(1, ContentHeader(0, 3, commands.Basic.Properties())),
        505,
        "UNEXPECTED_FRAME",
    ),
    (
        "body-without-method",
        lambda raw: raw.send(1, ContentBody(b"abc")),
        505,
        "UNEXPECTED_FRAME",
    ),
    (
        "method-instead-of-content-header",
        lambda raw: (
            raw.send(1, commands.Basic.Publish(exchange="", routing_key="x")),
            raw.send(1, commands.Queue.Declare(queue="", exclusive=True)),
        ),
        505,
        "UNEXPECTED_FRAME",
    ),
    (
        "bad-frame-end",
        lambda raw: raw.sock.sendall(_frame(1, 1, struct.pack(">HH", 20, 10), end=b"\x00")),
        501,
        "FRAME_ERROR",
    ),
    (
        "unknown-frame-type",
        lambda raw: raw.sock.sendall(_frame(9, 1, b"\x00")),
        501,
        "FRAME_ERROR",
    ),
    (
        "reused-consumer-tag",
        lambda raw: (
            raw.send(1, commands.Queue.Declare(queue="", exclusive=True)),
            raw.expect(commands.Queue.DeclareOk),
            raw.send(1, commands.Basic.Consume(queue="", consumer_tag="tag")),
            raw.expect(commands.Basic.ConsumeOk),
            raw.send(1, commands.Basic.Consume(queue="", consumer_tag="tag")),
        ),
        530,
        "NOT_ALLOWED - attempt to reuse consumer tag 'tag'",
    ),
]


@pytest.mark.parametrize(
    ("action", "code", "text"),
    [case[1:] for case in RAW_CONNECTION_ERRORS],
    ids=[case[0] for case in RAW_CONNECTION_ERRORS],
)
def test_protocol_violation_closes_the_connection(
    amqp_url: str, scene: Scene, action: RawAction, code: int, text: str
) -> None:
    with RawClient(amqp_url) as raw:
        _open(raw, amqp_url)
        action(raw)
        close = raw.expect(commands.Connection.Close, commands.Channel.Close)
        assert isinstance(close, commands.Connection.Close), "expected a connection close"
        assert close.reply_code == code
        assert close.reply_text.startswith(text), close.reply_text
        # amqp0-9-1 §4.2.3: after close-ok the broker closes the socket.
        raw.send(0, commands.Connection.CloseOk())
        assert raw.is_closed_by_peer(timeout=5)
    assert_bystander_works(scene, b"after protocol violation")


def test_consume_without_a_declared_queue_names_the_problem(amqp_url: str) -> None:
    # An empty queue name means "the last queue declared on this channel".
    with RawClient(amqp_url) as raw:
        _open(raw, amqp_url)
        raw.send(1, commands.Basic.Consume(queue="", consumer_tag="tag"))
        close = raw.expect(commands.Channel.Close)
    assert close.reply_code == 404
    assert close.reply_text == "NOT_FOUND - no previously declared queue"


def test_channel_close_is_answered_and_channel_reusable(amqp_url: str) -> None:
    with RawClient(amqp_url) as raw:
        _open(raw, amqp_url)
        raw.send(1, commands.Queue.Declare(queue="amq.reserved-name"))
        close = raw.expect(commands.Channel.Close)
        assert close.reply_code == 403
        assert (close.class_id, close.method_id) == (50, 10)  # queue.declare failed
        raw.send(1, commands.Channel.CloseOk())
        raw.send(1, commands.Channel.Open())
        raw.expect(commands.Channel.OpenOk)
        raw.send(1, commands.Queue.Declare(queue="", exclusive=True))
        assert raw.expect(commands.Queue.DeclareOk).queue.startswith("amq.gen-")


def test_many_errors_on_one_connection(connection: pika.BlockingConnection, uid: str) -> None:
    """A client that keeps making mistakes keeps its connection."""
    for index in range(20):
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
            channel.queue_declare(f"missing-{uid}-{index}", passive=True)
        assert caught.value.reply_code == 404
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"still fine")
    assert drain_all(channel, queue) == [b"still fine"]


@pytest.mark.parametrize(
    ("method", "text"),
    [
        (commands.Channel.Flow(active=False), "NOT_IMPLEMENTED - active=false"),
        (commands.Basic.Recover(requeue=False), "NOT_IMPLEMENTED - requeue=false"),
    ],
    ids=["channel.flow-false", "basic.recover-no-requeue"],
)
def test_what_rabbitmq_does_not_implement_closes_with_540(
    amqp_url: str, method: Any, text: str
) -> None:
    with RawClient(amqp_url) as client:
        client.handshake("guest", "guest")
        client.expect(commands.Connection.OpenOk)
        client.send(1, commands.Channel.Open())
        client.expect(commands.Channel.OpenOk)
        client.send(1, commands.Channel.Flow(active=True))
        assert client.expect(commands.Channel.FlowOk).active
        client.send(1, method)
        closed = client.expect(commands.Connection.Close)
        assert (closed.reply_code, closed.reply_text) == (540, text)


def test_update_secret_keeps_a_password_connection_open(amqp_url: str) -> None:
    with connect(amqp_url) as connection:
        connection.update_secret("guest", "rotation")
        channel = connection.channel()
        assert channel.queue_declare("", exclusive=True).method.queue
