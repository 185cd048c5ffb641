"""07: will messages, byte for byte (Mosquitto's test/broker/07-*)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mqtt_raw_client import RawClient, connect_bytes, packet, string

from pigeon.protocols.mqtt.packets import MQTT_3_1_1, MQTT_5, Will

Raw = Callable[..., RawClient]


def _watch(raw: Raw, client_id: str, topic: bytes) -> RawClient:
    watcher = raw(MQTT_5)
    watcher.connect(client_id)
    watcher.send(packet(0x82, b"\x00\x01\x00" + string(topic) + b"\x00"))
    watcher.expect(b"\x90\x04\x00\x01\x00\x00")
    return watcher


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_the_will_goes_out_when_the_socket_is_lost(raw: Raw, version: int) -> None:
    # [MQTT-3.1.2-8]: published when the connection ends without DISCONNECT
    topic = f"raw07/lost/{version}".encode()
    watcher = _watch(raw, f"raw07-w{version}", topic)
    dying = raw(version)
    dying.connect(f"raw07-d{version}", will=Will(topic.decode(), b"gone"))
    dying.close()
    watcher.expect(packet(0x30, string(topic) + b"\x00gone"))


def test_no_will_after_disconnect(raw: Raw) -> None:
    # [MQTT-3.1.2-10]: DISCONNECT removes the will
    watcher = _watch(raw, "raw07-w-quiet", b"raw07/quiet")
    leaving = raw(MQTT_3_1_1)
    leaving.connect("raw07-quiet", will=Will("raw07/quiet", b"never"))
    leaving.send(b"\xe0\x00")
    leaving.expect_closed()
    watcher.ping()  # only the PINGRESP: no will came before it


def test_the_will_goes_out_after_a_protocol_error(raw: Raw) -> None:
    watcher = _watch(raw, "raw07-w-bad", b"raw07/bad")
    bad = raw(MQTT_5)
    bad.connect("raw07-bad", will=Will("raw07/bad", b"broke"))
    bad.send(b"\x00\x00")  # packet type 0
    bad.expect_then_closed(b"\xe0\x01\x81")
    watcher.expect(packet(0x30, string(b"raw07/bad") + b"\x00broke"))


@pytest.mark.parametrize("topic", ["raw07/+", "raw07/#", "/".join(["l"] * 9)])
def test_a_will_topic_that_is_no_topic_name(raw: Raw, topic: str) -> None:
    # A wildcard [MQTT-3.3.2-2], or past the level limit: 5.0 CONNACK 0x90;
    # 3.1.1 has no code, so closed without a CONNACK [MQTT-3.1.4-1]
    five = raw(MQTT_5)
    five.send(connect_bytes(MQTT_5, "raw07-wild5", will=Will(topic, b"x")))
    five.expect_then_closed(b"\x20\x03\x00\x90\x00")
    three = raw(MQTT_3_1_1)
    three.send(connect_bytes(MQTT_3_1_1, "raw07-wild3", will=Will(topic, b"x")))
    three.expect_closed()
