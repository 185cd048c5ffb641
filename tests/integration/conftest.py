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
