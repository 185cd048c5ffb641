"""MQTT sessions in the management API: connections, and their queues as ordinary queues."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

from mqtt_session_clients import Client, wait_for

from pigeon.broker import Broker
from pigeon.config import Config


def _get(broker: Broker, path: str) -> Any:
    assert broker.management_url is not None
    request = urllib.request.Request(broker.management_url + path.lstrip("/"))
    token = base64.b64encode(b"guest:guest").decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.load(answer)


def test_mqtt_connections_and_subscription_queues_are_listed() -> None:
    config = Config(port=0, mqtt_port=0, mqtt_ws_port=0, data_dir=None, management_port=0)
    with Broker.in_thread(config) as broker:
        assert broker.mqtt_port is not None
        v5 = Client(broker.mqtt_port, 5, "listed-5")
        v311 = Client(broker.mqtt_port, 4, "listed-4")
        try:
            v5.connect()
            v311.connect()
            v5.subscribe("listed/#", 1)

            def protocols() -> list[str]:
                found = sorted(c["protocol"] for c in _get(broker, "/api/connections"))
                return found if len(found) == 2 else []

            assert wait_for(protocols) == ["MQTT 3.1.1", "MQTT 5.0"]
            queues = {q["name"]: q for q in _get(broker, "/api/queues")}
            assert "mqtt-subscription-listed-5qos1" in queues
        finally:
            for client in (v5, v311):
                client.stop()
