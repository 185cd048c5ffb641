"""A broker with MQTT for the raw-socket tests, its limits set low enough to reach."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from mqtt_raw_client import (
    CONNECT_TIMEOUT,
    MAX_CLIENT_ID,
    MAX_CONNECT,
    MAX_LEVELS,
    MAX_PACKET,
    MAX_TOPIC,
    RawClient,
)

from pigeon.broker import Broker
from pigeon.config import Config
from pigeon.protocols.mqtt.packets import MQTT_5


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    config = Config(
        port=0,
        mqtt_port=0,
        mqtt_ws_port=0,
        data_dir=None,
        management_port=None,
        mqtt_max_packet_size=MAX_PACKET,
        mqtt_max_packet_size_unauthenticated=MAX_CONNECT,
        mqtt_max_client_id_length=MAX_CLIENT_ID,
        mqtt_max_topic_length=MAX_TOPIC,
        mqtt_max_topic_levels=MAX_LEVELS,
        mqtt_connect_timeout=CONNECT_TIMEOUT,
    )
    with Broker.in_thread(config) as running:
        yield running


@pytest.fixture
def raw(broker: Broker) -> Iterator[Callable[..., RawClient]]:
    made: list[RawClient] = []

    def make(version: int = MQTT_5) -> RawClient:
        assert broker.mqtt_port is not None
        client = RawClient(broker.mqtt_port, version)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
