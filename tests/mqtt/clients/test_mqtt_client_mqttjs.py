"""MQTT.js from npm (``tests/node/mqtt_round_trip.js``, installed by ``npm ci`` there) over
TCP and over WebSocket, MQTT 3.1.1 and 5.0.

Skipped when node or the installed package is missing, unless ``PIGEON_REQUIRE_NODE`` is
set (CI sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from mqtt_client_kit import MqttTarget

NODE_DIR = Path(__file__).resolve().parents[2] / "node"


def mqttjs(*args: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    missing = (
        "node is not installed"
        if node is None
        else "MQTT.js is not installed: run `npm ci` in tests/node"
        if not (NODE_DIR / "node_modules" / "mqtt").is_dir()
        else None
    )
    if missing is not None:
        if os.environ.get("PIGEON_REQUIRE_NODE"):
            pytest.fail(f"{missing} (PIGEON_REQUIRE_NODE is set)")
        pytest.skip(missing)
    assert node is not None
    return subprocess.run(
        [node, str(NODE_DIR / "mqtt_round_trip.js"), *args],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )


def _url(target: MqttTarget, transport: str) -> str:
    if transport == "tcp":
        return f"mqtt://{target.host}:{target.port}"
    if target.ws_port is None:
        pytest.skip("no WebSocket URL for the target (PIGEON_TEST_MQTT_WS_URL)")
    return f"ws://{target.host}:{target.ws_port}{target.ws_path}"


@pytest.mark.parametrize("version", ["4", "5"], ids=["3.1.1", "5.0"])
@pytest.mark.parametrize("transport", ["tcp", "websocket"])
def test_mqttjs_publish_subscribe(
    mqtt_target: MqttTarget, names, transport: str, version: str
) -> None:
    topic = names.topic("js")
    credentials = [mqtt_target.username, mqtt_target.password or ""] if mqtt_target.username else []
    result = mqttjs(
        _url(mqtt_target, transport), topic, names.client_id("js"), version, *credentials
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["connack"]["reasonCode"] == 0
    received = out["received"]
    assert [(m["topic"], m["payload"], m["qos"]) for m in received] == [
        (topic, "q0", 0),
        (topic, "q1", 1),
        (topic, "q2", 2),
    ]
    if version == "5":
        assert [m["userProperties"] for m in received] == [{"qos": str(q)} for q in range(3)]
        assert {m["contentType"] for m in received} == {"text/plain"}
