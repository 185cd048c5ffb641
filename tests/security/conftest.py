"""A real broker for the security tests, and a check that it still serves others."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pigeon.broker import Broker
from pigeon.config import Config


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    with Broker.in_thread(
        Config(mqtt_port=0, mqtt_ws_port=0, port=0, data_dir=None, management_port=None)
    ) as running:
        yield running


@pytest.fixture
def port(broker: Broker) -> int:
    return broker.amqp_port
