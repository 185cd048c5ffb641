"""A broker with MQTT for the session tests, and paho-mqtt clients on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mqtt_session_clients import Client

from pigeon.broker import Broker
from pigeon.config import Config


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    with Broker.in_thread(
        Config(port=0, mqtt_port=0, mqtt_ws_port=0, data_dir=None, management_port=None)
    ) as running:
        yield running


@pytest.fixture
def clients(broker: Broker) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(version: int = 5, client_id: str | None = None, **kw: Any) -> Client:
        assert broker.mqtt_port is not None
        client = Client(broker.mqtt_port, version, client_id, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()
