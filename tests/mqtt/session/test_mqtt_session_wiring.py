"""The MQTT listener's settings, the embedded broker's mqtt_url and the pytest fixture."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from mqtt_session_clients import Client
from paho.mqtt.enums import CallbackAPIVersion

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


@pytest.mark.parametrize(
    "setting",
    [
        {"mqtt_max_packet_size": 1},
        {"mqtt_max_packet_size_unauthenticated": 0},
        {"mqtt_max_client_id_length": 0},
        {"mqtt_max_topic_length": 0},
        {"mqtt_max_topic_levels": -1},
        {"mqtt_inflight": 0},
        {"mqtt_connect_timeout": 0},
    ],
)
def test_mqtt_limits_out_of_range_are_refused_by_name(setting: dict[str, float]) -> None:
    [name] = setting
    with pytest.raises(ConfigError, match=name):
        Config(**setting)


def test_a_broker_without_mqtt_has_no_mqtt_url() -> None:
    config = Config(port=0, mqtt_port=None, data_dir=None, management_port=None)
    with Broker.in_thread(config) as broker:
        assert broker.mqtt_port is None
        assert broker.mqtt_ws_url is None  # --no-mqtt: no MQTT listener of any kind
        assert broker.mqtts_url is None and broker.mqtt_wss_url is None
        with pytest.raises(RuntimeError):
            _ = broker.mqtt_url


def test_the_embedded_default_listens_for_mqtt_on_a_free_port() -> None:
    with Broker.in_thread() as broker:
        assert broker.mqtt_port not in (None, 1883)
        assert broker.mqtt_ws_url is not None and ":15675/" not in broker.mqtt_ws_url
        assert broker.mqtts_url is None  # no certificate configured
        assert broker.mqtt_url == f"mqtt://127.0.0.1:{broker.mqtt_port}"


def test_mqtt_over_websocket() -> None:
    config = Config(port=0, mqtt_port=0, mqtt_ws_port=0, data_dir=None, management_port=None)
    with Broker.in_thread(config) as broker:
        assert broker.mqtt_ws_url is not None
        url = urlsplit(broker.mqtt_ws_url)
        assert url.path == "/ws"
        got: list[bytes] = []
        arrived = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, transport="websockets"
        )
        client.ws_set_options(path="/ws")
        client.on_message = lambda c, u, m: (got.append(m.payload), arrived.set())
        subscribed = threading.Event()
        client.on_subscribe = lambda *args: subscribed.set()
        client.connect("127.0.0.1", url.port or 0)
        client.loop_start()
        try:
            client.subscribe("ws/t", 1)
            assert subscribed.wait(5)
            client.publish("ws/t", b"over websocket", qos=1)
            assert arrived.wait(5)
            assert got == [b"over websocket"]
        finally:
            client.disconnect()
            client.loop_stop()
            client.reinitialise()


def test_mqtt_over_websocket_and_tls_defaults() -> None:
    # WebSocket is on by default (RabbitMQ needs its Web MQTT plugin for it); the TLS
    # ports listen only with a certificate; --no-mqtt-ws / "off" turn WebSocket off.
    assert Config().mqtt_ws_port == 15675
    assert (Config().mqtt_tls_port, Config().mqtt_wss_port) == (8883, 15676)
    assert load(environ={"PIGEON_MQTT_WS_PORT": "off"}).mqtt_ws_port is None
    assert load(environ={"PIGEON_MQTT_TLS_PORT": "0"}).mqtt_tls_port == 0
    assert not Config().has_tls
