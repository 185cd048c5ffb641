"""The broker the MQTT client tests talk to: Pigeon, or an external broker.

Set ``PIGEON_TEST_MQTT_URL`` (``mqtt://127.0.0.1:18830``, optionally with
``user:password@`` of a user the broker knows) and ``PIGEON_TEST_MQTT_WS_URL``
(``ws://127.0.0.1:18831/mqtt``) to run these tests against another broker, such as
Mosquitto (README.md in this folder), to check that the tests describe the
standards. Otherwise they run against the session's Pigeon broker (``pigeon_broker``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from mqtt_client_kit import MqttTarget, is_mosquitto

EXTERNAL_URL = os.environ.get("PIGEON_TEST_MQTT_URL")
EXTERNAL_WS_URL = os.environ.get("PIGEON_TEST_MQTT_WS_URL")
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test here describes the standards, so it can run against another broker:
    ``-m mosquitto`` selects them."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.mosquitto)


def _target_from_urls(name: str, url: str, ws_url: str | None) -> MqttTarget:
    parts = urlsplit(url)
    ws = urlsplit(ws_url) if ws_url else None
    return MqttTarget(
        name=name,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 1883,
        username=parts.username,
        password=parts.password,
        ws_port=ws.port if ws else None,
        ws_path=(ws.path or "/") if ws else "/ws",
    )


def _broker_url(broker: Any, name: str) -> str | None:
    """``broker.<name>``, or None where the broker has no such listener (the property
    is missing, or raises RuntimeError as ``Broker.mqtt_url`` does without one)."""
    try:
        return getattr(broker, name, None)
    except RuntimeError:
        return None


@pytest.fixture(scope="session")
def mqtt_target(request: pytest.FixtureRequest) -> MqttTarget:
    """Host, ports and credentials of the MQTT broker under test."""
    if EXTERNAL_URL:
        target = _target_from_urls("external", EXTERNAL_URL, EXTERNAL_WS_URL)
    else:
        broker = request.getfixturevalue("pigeon_broker")
        url = broker.mqtt_url  # Pigeon's test broker always has an MQTT listener
        ws_url = _broker_url(broker, "mqtt_ws_url")
        target = _target_from_urls("pigeon", url, ws_url)
        if target.username is None:  # Pigeon's default user, as for AMQP
            target = replace(target, username="guest", password="guest")
    return replace(target, mosquitto=is_mosquitto(target))


@dataclass
class Names:
    """Unique client ids and topics for one test, so tests never share state."""

    prefix: str

    def client_id(self, role: str = "c") -> str:
        return f"{self.prefix}-{role}"

    def topic(self, *levels: str) -> str:
        return "/".join((f"pigeon-test/{self.prefix}", *levels))


@pytest.fixture
def names() -> Names:
    return Names(uuid.uuid4().hex[:12])


@pytest.fixture
def mosquitto_deviates(
    mqtt_target: MqttTarget, request: pytest.FixtureRequest
) -> Callable[..., None]:
    """``mosquitto_deviates(reason)``: the test is expected to fail against Mosquitto
    only. Strict by default (a Mosquitto that gets it right fails the test as XPASS);
    ``strict=False`` where Mosquitto's deviation depends on timing."""

    def mark(reason: str, *, strict: bool = True) -> None:
        if mqtt_target.mosquitto:
            request.applymarker(pytest.mark.xfail(strict=strict, reason=f"Mosquitto: {reason}"))

    return mark


@pytest.fixture
def cleanup_retained(mqtt_target: MqttTarget) -> Any:
    """``cleanup_retained(topic)`` registers a topic whose retained message is cleared
    (an empty retained publish) after the test."""
    from mqtt_client_kit import clear_retained

    topics: list[str] = []
    yield topics.append
    for topic in topics:
        clear_retained(mqtt_target, topic)


@pytest.fixture
def client(mqtt_target: MqttTarget, names: Names) -> Any:
    """``client(role, v5=True, clean=True, manual_ack=False)``: a paho-mqtt client with
    this test's client id for ``role``, stopped after the test."""
    from mqtt_client_kit import Client

    made: list[Client] = []

    def make(role: str = "c", **options: Any) -> Client:
        c = Client(mqtt_target, names.client_id(role), **options)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
