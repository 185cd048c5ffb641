"""Numbered messages and a draining consumer, over pika, for the durability tests."""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def body_of(number: int, size: int = 200) -> bytes:
    """A body that says its number and whose every byte can be checked."""
    head = b"%010d:" % number
    return head + random.Random(number).randbytes(max(0, size - len(head)))


def number_of(body: bytes, size: int = 200) -> int:
    """The number of a body made by :func:`body_of`; AssertionError if it is not one."""
    number = int(body[:10])
    assert body == body_of(number, size), f"message {number} came back altered"
    return number


def connect(url: str, **options: object) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.blocked_connection_timeout = None
    for name, value in options.items():
        setattr(params, name, value)
    return pika.BlockingConnection(params)


def abandon(connection: pika.BlockingConnection | None) -> None:
    """Close a connection whose broker may have been killed, and its socket with it.

    (pika only closes the socket of a dead connection once it notices; a
    connection left for the garbage collector warns about an unclosed socket.)
    """
    if connection is not None:
        with contextlib.suppress(pika.exceptions.AMQPError, OSError):
            connection.close()


@dataclass(frozen=True)
class Received:
    number: int
    redelivered: bool


def drain(url: str, queue: str, size: int = 200, timeout: float = 20.0) -> list[Received]:
    """Consume and ack everything ready in ``queue``, in delivery order.

    The count to wait for comes from ``queue.declare(passive)``, so nothing is
    left to a "no more messages for a while" guess; the acks are processed
    before ``connection.close-ok`` comes back (frames of a connection are
    handled in order).
    """
    connection = connect(url)
    try:
        channel = connection.channel()
        expected = channel.queue_declare(queue, passive=True).method.message_count
        got: list[Received] = []
        tags: list[int] = []

        def on_message(
            _ch: object, method: pika.spec.Basic.Deliver, _props: object, body: bytes
        ) -> None:
            got.append(Received(number_of(body, size), bool(method.redelivered)))
            tags.append(method.delivery_tag)

        if expected:
            tag = channel.basic_consume(queue, on_message)
            deadline = time.monotonic() + timeout
            while len(got) < expected:
                assert time.monotonic() < deadline, (
                    f"drained {len(got)} of {expected} messages of {queue}"
                )
                connection.process_data_events(time_limit=0.05)
            channel.basic_ack(tags[-1], multiple=True)
            channel.basic_cancel(tag)
        left = channel.queue_declare(queue, passive=True).method.message_count
        assert left == 0, f"{left} messages appeared in {queue} while it was drained"
        return got
    finally:
        connection.close()


def declare(channel: BlockingChannel, queue: str) -> None:
    channel.queue_declare(queue, durable=True)
