"""The MQTT listener's settings, the embedded broker's mqtt_url and the pytest fixture."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from mqtt_session_clients import Client

from pigeon.broker import Broker
from pigeon.config import Config, ConfigError, load


def test_the_mqtt_url_fixture_points_to_a_listener(mqtt_url: str) -> None:
    url = urlsplit(mqtt_url)
    assert (url.scheme, url.hostname) == ("mqtt", "127.0.0.1")
    assert url.port is not None
    client = Client(url.port, 5)
    try:
        assert client.connect() == 0
    finally:
        client.stop()


def test_mqtt_port_settings() -> None:
    assert Config().mqtt_port == 1883
    assert load(environ={"PIGEON_MQTT_PORT": "off"}).mqtt_port is None
    assert load(environ={"PIGEON_MQTT_PORT": "0"}).mqtt_port == 0
    assert load(environ={}, overrides={"mqtt_port": 1884}).mqtt_port == 1884
    with pytest.raises(ConfigError):
        Config(mqtt_anonymous="sometimes")


def test_a_broker_without_mqtt_has_no_mqtt_url() -> None:
    config = Config(port=0, mqtt_port=None, data_dir=None, management_port=None)
    with Broker.in_thread(config) as broker:
        assert broker.mqtt_port is None
        with pytest.raises(RuntimeError):
            _ = broker.mqtt_url


def test_the_embedded_default_listens_for_mqtt_on_a_free_port() -> None:
    with Broker.in_thread() as broker:
        assert broker.mqtt_port not in (None, 1883)
        assert broker.mqtt_url == f"mqtt://127.0.0.1:{broker.mqtt_port}"
