"""Fixtures shared by the client-level tests."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest
from helpers import connect


@pytest.fixture
def connection(amqp_url: str) -> Iterator[pika.BlockingConnection]:
    """A pika connection to the broker under test, closed after the test."""
    with connect(amqp_url) as conn:
        yield conn


@pytest.fixture
def cleanup(connection: pika.BlockingConnection) -> Iterator[list[str]]:
    """Names appended here (queues, or ``"x:"`` + exchange) are deleted after the test."""
    names: list[str] = []
    yield names
    if not connection.is_open:
        return
    channel = connection.channel()
    for name in names:
        if name.startswith("x:"):
            channel.exchange_delete(name[2:])
        else:
            channel.queue_delete(name)
    channel.close()
