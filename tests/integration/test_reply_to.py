"""Request/reply: RabbitMQ's direct reply-to and the classic exclusive reply queue.

RabbitMQ 3.10's behaviour as pika clients see it (run with ``PIGEON_TEST_AMQP_URL`` to check).
The requester and the responder use separate connections, as real services do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, UnroutableError

pytestmark = pytest.mark.rabbitmq

REPLY_TO = "amq.rabbitmq.reply-to"
Delivery = tuple[Any, pika.BasicProperties, bytes]


def open_connection(amqp_url: str) -> Iterator[pika.BlockingConnection]:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        yield conn
    finally:
        if conn.is_open:
            conn.close()


@pytest.fixture
def requester(amqp_url: str) -> Iterator[pika.BlockingConnection]:
    yield from open_connection(amqp_url)


@pytest.fixture
def responder(amqp_url: str) -> Iterator[pika.BlockingConnection]:
    yield from open_connection(amqp_url)


@pytest.fixture
def request_queue(responder: pika.BlockingConnection, uid: str) -> Iterator[str]:
    ch = responder.channel()
    name = f"rpc-{uid}"
    ch.queue_declare(name)
    yield name
    if responder.is_open:
        responder.channel().queue_delete(name)


def wait_until(
    connection: pika.BlockingConnection, predicate: Callable[[], bool], timeout: float = 5.0
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        connection.process_data_events(time_limit=0.02)
    return predicate()


def get_within(ch: BlockingChannel, queue: str, timeout: float = 5.0) -> Delivery:
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, props, body
        if time.monotonic() > deadline:
            pytest.fail(f"no message in {queue!r} within {timeout} s")
        ch.connection.process_data_events(time_limit=0.02)


def serve_one(ch: BlockingChannel, queue: str, answer: Callable[[bytes], bytes]) -> str:
    """Take one request and publish its answer to its ``reply_to``; return that address."""
    _, props, body = get_within(ch, queue)
    assert props.reply_to
    ch.basic_publish(
        "", props.reply_to, answer(body), pika.BasicProperties(correlation_id=props.correlation_id)
    )
    return str(props.reply_to)


def request(ch: BlockingChannel, queue: str, body: bytes, corr: str, reply_to: str) -> None:
    props = pika.BasicProperties(reply_to=reply_to, correlation_id=corr)
    ch.basic_publish("", queue, body, props)


# --- direct reply-to -------------------------------------------------------------------------


def test_direct_reply_to_round_trip(
    requester: pika.BlockingConnection, responder: pika.BlockingConnection, request_queue: str
) -> None:
    client = requester.channel()
    replies: list[Delivery] = []
    tag = client.basic_consume(
        REPLY_TO, lambda ch, m, p, b: replies.append((m, p, b)), auto_ack=True
    )
    request(client, request_queue, b"ping", "c-1", REPLY_TO)
    address = serve_one(responder.channel(), request_queue, lambda body: body + b"/pong")
    # The responder sees a per-channel address, not the pseudo-queue's bare name.
    assert address.startswith(REPLY_TO + ".")
    assert len(address) > len(REPLY_TO) + 1
    assert wait_until(requester, lambda: len(replies) == 1)
    method, props, body = replies[0]
    assert body == b"ping/pong"
    assert props.correlation_id == "c-1"
    assert method.consumer_tag == tag
    assert method.exchange == ""
    assert method.routing_key == address
    assert method.redelivered is False


def test_direct_reply_to_many_requests_matched_by_correlation_id(
    requester: pika.BlockingConnection, responder: pika.BlockingConnection, request_queue: str
) -> None:
    client = requester.channel()
    replies: dict[str, bytes] = {}

    def on_reply(ch: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        replies[props.correlation_id] = body

    client.basic_consume(REPLY_TO, on_reply, auto_ack=True)
    for i in range(5):
        request(client, request_queue, str(i).encode(), f"c-{i}", REPLY_TO)
    server = responder.channel()
    for _ in range(5):
        serve_one(server, request_queue, lambda body: body * 2)
    assert wait_until(requester, lambda: len(replies) == 5)
    assert replies == {f"c-{i}": str(i).encode() * 2 for i in range(5)}


def test_reply_address_exists_while_consumer_lives(
    requester: pika.BlockingConnection, responder: pika.BlockingConnection, request_queue: str
) -> None:
    client = requester.channel()
    client.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    request(client, request_queue, b"q", "c", REPLY_TO)
    server = responder.channel()
    _, props, _ = get_within(server, request_queue)
    ok = server.queue_declare(props.reply_to, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (props.reply_to, 0, 1)


def test_reply_to_a_gone_requester_is_dropped(
    requester: pika.BlockingConnection, responder: pika.BlockingConnection, request_queue: str
) -> None:
    client = requester.channel()
    client.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    request(client, request_queue, b"q", "c", REPLY_TO)
    server = responder.channel()
    server.confirm_delivery()
    _, props, _ = get_within(server, request_queue)
    client.close()
    server.basic_publish("", props.reply_to, b"late")  # no error without mandatory
    with pytest.raises(UnroutableError):
        server.basic_publish("", props.reply_to, b"late", mandatory=True)
    with pytest.raises(ChannelClosedByBroker) as info:
        server.queue_declare(props.reply_to, passive=True)
    assert info.value.reply_code == 404


def test_pseudo_queue_declares_passively(requester: pika.BlockingConnection) -> None:
    ch = requester.channel()
    ok = ch.queue_declare(REPLY_TO, passive=True).method
    assert (ok.queue, ok.message_count) == (REPLY_TO, 0)


def test_reply_to_without_consumer_is_406(requester: pika.BlockingConnection, uid: str) -> None:
    ch = requester.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        request(ch, f"anything-{uid}", b"q", "c", REPLY_TO)
        ch.queue_declare("", exclusive=True)  # a round trip to receive the close
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - fast reply consumer does not exist"


def test_reply_consumer_on_other_channel_does_not_count(
    requester: pika.BlockingConnection, uid: str
) -> None:
    consumer, publisher = requester.channel(), requester.channel()
    consumer.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    with pytest.raises(ChannelClosedByBroker) as info:
        request(publisher, f"anything-{uid}", b"q", "c", REPLY_TO)
        publisher.queue_declare("", exclusive=True)
    assert info.value.reply_code == 406
    assert consumer.is_open


def test_reply_consumer_with_acks_is_406(requester: pika.BlockingConnection) -> None:
    ch = requester.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - reply consumer cannot acknowledge"


def test_second_reply_consumer_on_channel_is_406(requester: pika.BlockingConnection) -> None:
    ch = requester.channel()
    ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - reply consumer already set"


# --- classic request/reply with an exclusive server-named queue ------------------------------


def test_exclusive_reply_queue_round_trip(
    requester: pika.BlockingConnection, responder: pika.BlockingConnection, request_queue: str
) -> None:
    client = requester.channel()
    reply_queue = client.queue_declare("", exclusive=True).method.queue
    assert reply_queue.startswith("amq.gen-")
    replies: list[Delivery] = []
    client.basic_consume(reply_queue, lambda ch, m, p, b: replies.append((m, p, b)))
    request(client, request_queue, b"2+2", "c-42", reply_queue)
    address = serve_one(responder.channel(), request_queue, lambda _: b"4")
    assert address == reply_queue
    assert wait_until(requester, lambda: len(replies) == 1)
    method, props, body = replies[0]
    assert (body, props.correlation_id, method.routing_key) == (b"4", "c-42", reply_queue)


def test_exclusive_reply_queue_is_private_and_dies_with_its_connection(
    amqp_url: str, responder: pika.BlockingConnection
) -> None:
    owner = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        reply_queue = owner.channel().queue_declare("", exclusive=True).method.queue
        other = responder.channel()
        with pytest.raises(ChannelClosedByBroker) as info:
            other.basic_consume(reply_queue, lambda *a: None)
        assert info.value.reply_code == 405
        assert info.value.reply_text == (
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue "
            f"'{reply_queue}' in vhost '/'. It could be originally declared on another "
            "connection or the exclusive property value does not match that of the original "
            "declaration."
        )
    finally:
        owner.close()
    probe = responder.channel()
    probe.confirm_delivery()
    assert wait_until(responder, lambda: not routable(probe, reply_queue))


def routable(ch: BlockingChannel, queue: str) -> bool:
    """Whether ``queue`` exists, probed by a mandatory publish on a confirm-mode channel."""
    try:
        ch.basic_publish("", queue, b"probe", mandatory=True)
    except UnroutableError:
        return False
    return True
