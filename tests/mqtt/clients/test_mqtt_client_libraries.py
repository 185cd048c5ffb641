"""Other clients than paho-mqtt: aiomqtt (asyncio, over TCP and WebSocket), gmqtt, and
Debian's ``mosquitto_pub`` / ``mosquitto_sub``."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from typing import Any

import aiomqtt
import pytest
from mqtt_client_kit import MqttTarget, publish_props

TIMEOUT = 10.0


def _aiomqtt(target: MqttTarget, identifier: str, *, websocket: bool = False) -> aiomqtt.Client:
    if websocket:
        if target.ws_port is None:
            pytest.skip("no WebSocket URL for the target (PIGEON_TEST_MQTT_WS_URL)")
        return aiomqtt.Client(
            target.host,
            target.ws_port,
            identifier=identifier,
            username=target.username,
            password=target.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            transport="websockets",
            websocket_path=target.ws_path,
        )
    return aiomqtt.Client(
        target.host,
        target.port,
        identifier=identifier,
        username=target.username,
        password=target.password,
        protocol=aiomqtt.ProtocolVersion.V5,
    )


@pytest.mark.parametrize("websocket", [False, True], ids=["tcp", "websocket"])
async def test_aiomqtt_round_trip(mqtt_target: MqttTarget, names, websocket: bool) -> None:
    """aiomqtt subscribes, publishes QoS 0, 1 and 2 with properties and gets them back in
    order, at the granted QoS."""
    topic = names.topic("aio")
    async with _aiomqtt(mqtt_target, names.client_id("aio"), websocket=websocket) as c:
        await c.subscribe(topic, qos=2)
        for qos in (0, 1, 2):
            await c.publish(
                topic,
                f"q{qos}".encode(),
                qos=qos,
                properties=publish_props(UserProperty=[("qos", str(qos))]),
            )
        got = []
        async with asyncio.timeout(TIMEOUT):
            async for message in c.messages:
                got.append(message)
                if len(got) == 3:
                    break
    assert [(m.payload, m.qos) for m in got] == [(b"q0", 0), (b"q1", 1), (b"q2", 2)]
    assert [m.properties.UserProperty for m in got] == [[("qos", str(q))] for q in range(3)]
    assert {str(m.topic) for m in got} == {topic}


async def test_aiomqtt_wildcard_and_retained(
    mqtt_target: MqttTarget, names, cleanup_retained
) -> None:
    topic = names.topic("aio", "kept")
    cleanup_retained(topic)
    async with _aiomqtt(mqtt_target, names.client_id("pub")) as pub:
        await pub.publish(topic, b"retained", qos=1, retain=True)
    async with _aiomqtt(mqtt_target, names.client_id("sub")) as sub:
        await sub.subscribe(names.topic("aio", "#"), qos=1)
        async with asyncio.timeout(TIMEOUT):
            message = await anext(aiter(sub.messages))
    assert (str(message.topic), message.payload, message.retain) == (topic, b"retained", True)
    assert message.topic.matches(names.topic("aio", "+"))


async def test_gmqtt_round_trip(mqtt_target: MqttTarget, names) -> None:
    """gmqtt (MQTT 5.0): subscribe, publish QoS 1 with a user property and content type,
    receive it with its properties."""
    import gmqtt

    topic = names.topic("gmqtt")
    received: asyncio.Queue[tuple[str, bytes, int, dict[str, Any]]] = asyncio.Queue()
    subscribed = asyncio.Event()

    def on_message(_client: Any, t: str, payload: bytes, qos: int, properties: Any) -> int:
        received.put_nowait((t, payload, qos, properties))
        return 0  # PUBACK reason code: success

    def on_subscribe(*_args: Any) -> None:
        subscribed.set()

    c = gmqtt.Client(names.client_id("gmqtt"))
    c.on_message = on_message
    c.on_subscribe = on_subscribe
    if mqtt_target.username is not None:
        c.set_auth_credentials(mqtt_target.username, mqtt_target.password)
    await c.connect(mqtt_target.host, mqtt_target.port, version=gmqtt.constants.MQTTv50)
    try:
        c.subscribe(topic, qos=1)
        async with asyncio.timeout(TIMEOUT):
            await subscribed.wait()
        c.publish(topic, b"from gmqtt", qos=1, user_property=("k", "v"), content_type="text/x")
        async with asyncio.timeout(TIMEOUT):
            t, payload, qos, properties = await received.get()
    finally:
        await c.disconnect()
    assert (t, payload, qos) == (topic, b"from gmqtt", 1)
    assert properties["user_property"] == [("k", "v")]
    assert properties["content_type"] == ["text/x"]


def _mosquitto_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: mosquitto-clients)")
    return path


def _auth(target: MqttTarget) -> list[str]:
    if target.username is None:
        return []
    return ["-u", target.username, "-P", target.password or ""]


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_pub_and_sub(mqtt_target: MqttTarget, names, version: str) -> None:
    """``mosquitto_sub`` gets a retained message (proof it has subscribed), then a live
    QoS 2 message from ``mosquitto_pub``, and prints both with their topics."""
    pub_tool, sub_tool = _mosquitto_tool("mosquitto_pub"), _mosquitto_tool("mosquitto_sub")
    ready, live = names.topic("ready"), names.topic("live")
    common = ["-h", mqtt_target.host, "-p", str(mqtt_target.port), "-V", version]
    common += _auth(mqtt_target)
    subprocess.run(
        [pub_tool, *common, "-t", ready, "-m", "ready", "-r", "-q", "1"], check=True, timeout=10
    )
    try:
        with subprocess.Popen(
            [sub_tool, *common, "-t", ready, "-t", live, "-q", "2", "-v", "-C", "2", "-W", "10"],
            stdout=subprocess.PIPE,
            text=True,
        ) as sub:
            assert sub.stdout is not None
            assert sub.stdout.readline() == f"{ready} ready\n"
            subprocess.run(
                [pub_tool, *common, "-t", live, "-m", "hello from mosquitto_pub", "-q", "2"],
                check=True,
                timeout=10,
            )
            assert sub.stdout.readline() == f"{live} hello from mosquitto_pub\n"
            assert sub.wait(timeout=10) == 0
    finally:
        subprocess.run([pub_tool, *common, "-t", ready, "-n", "-r"], check=True, timeout=10)
