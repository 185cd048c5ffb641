"""Brokers for the embedded-API tests: one on the test's own loop, one on a thread."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from pigeon.broker import Broker
from pigeon.config import Config


def embedded_config() -> Config:
    return Config(
        mqtt_port=0, mqtt_ws_port=0, host="127.0.0.1", port=0, data_dir=None, management_port=None
    )


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    """A broker running on the test's event loop."""
    async with Broker(embedded_config()) as running:
        yield running


@pytest.fixture(scope="module")
def thread_broker() -> Iterator[Broker]:
    """A broker on its own thread and loop, shared by a module's tests (unique names!)."""
    with Broker.in_thread(embedded_config()) as running:
        yield running


@pytest.fixture
def name() -> str:
    """A unique queue or exchange name."""
    return f"q-{uuid.uuid4().hex[:10]}"
