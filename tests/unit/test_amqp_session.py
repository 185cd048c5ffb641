"""The AMQP adapter driven through the transport glue: bytes in, bytes out.

A fake transport and a manual clock (glue_fakes.py), no sockets: client frames
are built and the broker's output parsed with pamqp, an independent codec.
"""

from __future__ import annotations

from typing import Any

import pamqp.body
import pamqp.frame
import pamqp.header
import pytest
from glue_fakes import FakeTransport, ManualClock, connect, hub
from pamqp import commands as C
from pamqp.heartbeat import Heartbeat

from pigeon.auth.users import UserStore
from pigeon.core.node import Node
from pigeon.operations.services import Services
from pigeon.protocols.amqp091.session import AMQPSession, session_factory
from pigeon.transport.glue import Connection, Hub

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def frame(channel: int, command: Any) -> bytes:
    return pamqp.frame.marshal(command, channel)


def publish(channel: int, routing_key: str, body: bytes) -> bytes:
    head = pamqp.header.ContentHeader(0, len(body), C.Basic.Properties(delivery_mode=1))
    return (
        frame(channel, C.Basic.Publish(exchange="", routing_key=routing_key))
        + frame(channel, head)
        + frame(channel, pamqp.body.ContentBody(body))
    )


def frames(data: bytes) -> list[tuple[int, Any]]:
    out = []
    while data:
        consumed, channel, parsed = pamqp.frame.unmarshal(data)
        out.append((channel, parsed))
        data = data[consumed:]
    return out


def kinds(data: bytes) -> list[str]:
    return [type(parsed).__name__ for _, parsed in frames(data)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def amqp(clock: ManualClock) -> Hub[AMQPSession]:
    node = Node(clock)
    node.add_vhost("/")
    users = UserStore()
    users.add_user("guest", "guest", frozenset({"administrator"}))
    users.set_permission("/", "guest")
    context = Services(node=node, users=users)
    return hub(session_factory(context, clock), clock, limits=context.limits)


def exchange(
    connection: Connection[AMQPSession], transport: FakeTransport, clock: ManualClock, data: bytes
) -> bytes:
    """Send ``data``, run the loop until idle; what the broker wrote meanwhile."""
    transport.writes.clear()
    connection.data_received(data)
    clock.run()
    return transport.output


def handshake(
    amqp: Hub[AMQPSession],
    clock: ManualClock,
    heartbeat: int = 0,
) -> tuple[Connection[AMQPSession], FakeTransport]:
    connection, transport = connect(amqp, clock)
    start = frames(exchange(connection, transport, clock, PROTOCOL_HEADER))
    assert [type(f) for _, f in start] == [C.Connection.Start]
    tune = frames(
        exchange(
            connection,
            transport,
            clock,
            frame(0, C.Connection.StartOk(mechanism="PLAIN", response="\0guest\0guest")),
        )
    )
    assert [type(f) for _, f in tune] == [C.Connection.Tune]
    opened = exchange(
        connection,
        transport,
        clock,
        frame(0, C.Connection.TuneOk(2047, 131072, heartbeat))
        + frame(0, C.Connection.Open(virtual_host="/"))
        + frame(1, C.Channel.Open()),
    )
    assert kinds(opened) == ["OpenOk", "OpenOk"]
    assert len(transport.writes) == 1
    return connection, transport


def test_a_handshake_as_bytes(amqp: Hub[AMQPSession], clock: ManualClock) -> None:
    connection, transport = handshake(amqp, clock)
    assert connection.session is not None and connection.session.username == "guest"
    clock.advance(3600)  # no heartbeat asked for, and the handshake timeout is off
    assert not transport.closing


def test_a_publish_and_its_delivery_as_bytes(amqp: Hub[AMQPSession], clock: ManualClock) -> None:
    consumer, consumer_transport = handshake(amqp, clock)
    answers = exchange(
        consumer,
        consumer_transport,
        clock,
        frame(1, C.Queue.Declare(queue="glue"))
        + frame(1, C.Basic.Consume(queue="glue", consumer_tag="c")),
    )
    assert kinds(answers) == ["DeclareOk", "ConsumeOk"]
    publisher, publisher_transport = handshake(amqp, clock)
    assert kinds(exchange(publisher, publisher_transport, clock, frame(1, C.Confirm.Select()))) == [
        "SelectOk"
    ]
    consumer_transport.writes.clear()
    confirms = exchange(
        publisher,
        publisher_transport,
        clock,
        b"".join(publish(1, "glue", b"m%d" % n) for n in range(3)),
    )
    acks = [f for _, f in frames(confirms)]
    assert acks and all(isinstance(f, C.Basic.Ack) for f in acks)
    assert acks[-1].delivery_tag == 3
    # Three deliveries, one write: the consumer's output of the turn goes out at once.
    assert len(consumer_transport.writes) == 1
    delivered = frames(consumer_transport.output)
    assert kinds(consumer_transport.output) == ["Deliver", "ContentHeader", "ContentBody"] * 3
    assert [f.value for _, f in delivered if isinstance(f, pamqp.body.ContentBody)] == [
        b"m0",
        b"m1",
        b"m2",
    ]
    assert (
        exchange(
            consumer,
            consumer_transport,
            clock,
            frame(1, C.Basic.Ack(delivery_tag=3, multiple=True)),
        )
        == b""
    )
    # The consumer leaves; nothing is requeued: the publisher finds the queue empty.
    assert kinds(
        exchange(
            consumer, consumer_transport, clock, frame(0, C.Connection.Close(200, "bye", 0, 0))
        )
    ) == ["CloseOk"]
    clock.advance(3)  # it lingers until the client closes, or for 3 s
    assert consumer_transport.closing
    assert kinds(
        exchange(publisher, publisher_transport, clock, frame(1, C.Basic.Get(queue="glue")))
    ) == ["GetEmpty"]


def test_heartbeats_and_a_silent_client(amqp: Hub[AMQPSession], clock: ManualClock) -> None:
    _, transport = handshake(amqp, clock, heartbeat=10)
    transport.writes.clear()
    clock.advance(10)  # open-ok went out in the first 5 s; the next 5 s were idle
    assert [type(f) for _, f in frames(transport.output)] == [Heartbeat]
    clock.advance(10)
    assert not transport.closing
    clock.advance(5)  # over two intervals without a frame from the client
    assert transport.aborted


def test_a_client_that_never_finishes_the_handshake(
    amqp: Hub[AMQPSession], clock: ManualClock
) -> None:
    connection, transport = connect(amqp, clock)
    exchange(connection, transport, clock, PROTOCOL_HEADER)
    clock.advance(9.9)
    assert not transport.closing
    clock.advance(0.2)
    assert transport.aborted
    assert amqp.connections == set()


def test_shutdown_sends_connection_forced(amqp: Hub[AMQPSession], clock: ManualClock) -> None:
    connection, transport = handshake(amqp, clock)
    transport.writes.clear()
    connection.shutdown()
    [(channel, close)] = frames(transport.output)
    assert channel == 0 and isinstance(close, C.Connection.Close)
    assert (close.reply_code, close.reply_text) == (320, "CONNECTION_FORCED - broker shutdown")
    assert transport.closing
