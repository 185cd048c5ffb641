"""03: PUBLISH and its QoS flows, byte for byte (Mosquitto's test/broker/03-*)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mqtt_raw_client import RawClient, packet, string

from pigeon.protocols.mqtt.packets import MQTT_3_1_1, MQTT_5

Raw = Callable[..., RawClient]
VERSIONS = [MQTT_3_1_1, MQTT_5]


def _publish(
    version: int, topic: bytes, payload: bytes, *, qos: int = 0, pid: int = 0, props: bytes = b""
) -> bytes:
    body = string(topic) + (pid.to_bytes(2, "big") if qos else b"")
    if version == MQTT_5:
        body += bytes([len(props)]) + props
    return packet(0x30 | qos << 1, body + payload)


def _subscriber(raw: Raw, version: int, client_id: str, topic: bytes, qos: int) -> RawClient:
    client = raw(version)
    client.connect(client_id)
    props = b"\x00" if version == MQTT_5 else b""
    client.send(packet(0x82, b"\x00\x01" + props + string(topic) + bytes([qos])))
    client.expect(packet(0x90, b"\x00\x01" + props + bytes([qos])))
    return client


@pytest.mark.parametrize("topic", [b"raw03/+", b"raw03/#", b"+", b"a/#/b"])
def test_a_wildcard_in_a_topic_name(raw: Raw, topic: bytes) -> None:
    # [MQTT-3.3.2-2]: 5.0 DISCONNECT 0x90 Topic Name invalid; 3.1.1 closed
    five = raw(MQTT_5)
    five.connect("raw03-wild5")
    five.send(_publish(MQTT_5, topic, b"x", qos=1, pid=1))
    five.expect_then_closed(b"\xe0\x01\x90")
    three = raw(MQTT_3_1_1)
    three.connect("raw03-wild3")
    three.send(_publish(MQTT_3_1_1, topic, b"x", qos=1, pid=1))
    three.expect_closed()


def test_an_empty_topic_without_an_alias(raw: Raw) -> None:
    client = raw(MQTT_5)  # [MQTT-4.7.3-1]; without a Topic Alias: a Protocol Error (§3.3.2.1)
    client.connect("raw03-empty")
    client.send(_publish(MQTT_5, b"", b"x"))
    client.expect_then_closed(b"\xe0\x01\x82")


def test_topic_alias_0(raw: Raw) -> None:
    client = raw(MQTT_5)  # [MQTT-3.3.2-8]; §3.3.2.3.4: 0x94 Topic Alias invalid
    client.connect("raw03-alias0")
    client.send(_publish(MQTT_5, b"raw03/a", b"x", props=b"\x23\x00\x00"))
    client.expect_then_closed(b"\xe0\x01\x94")


def test_topic_alias_above_the_maximum(raw: Raw) -> None:
    client = raw(MQTT_5)  # the CONNACK said 64 [MQTT-3.3.2-9]
    client.connect("raw03-alias65")
    client.send(_publish(MQTT_5, b"raw03/a", b"x", props=b"\x23\x00\x41"))
    client.expect_then_closed(b"\xe0\x01\x94")


def test_a_topic_alias_never_set(raw: Raw) -> None:
    client = raw(MQTT_5)  # §3.3.2.3.4: a Protocol Error
    client.connect("raw03-alias-unset")
    client.send(_publish(MQTT_5, b"", b"x", props=b"\x23\x00\x05"))
    client.expect_then_closed(b"\xe0\x01\x82")


@pytest.mark.parametrize("first", [0x36, 0x38])
def test_qos_3_and_dup_at_qos_0(raw: Raw, first: int) -> None:
    # [MQTT-3.3.1-4] QoS 3; [MQTT-3.3.1-2] DUP set at QoS 0: Malformed Packet
    client = raw(MQTT_5)
    client.connect(f"raw03-bad{first}")
    body = string(b"raw03/t") + (b"\x00\x01" if first == 0x36 else b"") + b"\x00x"
    client.send(packet(first, body))
    client.expect_then_closed(b"\xe0\x01\x81")


@pytest.mark.parametrize("version", VERSIONS)
def test_qos_1_flow(raw: Raw, version: int) -> None:
    sub = _subscriber(raw, version, f"raw03-q1s{version}", b"raw03/q1/" + bytes([48 + version]), 1)
    pub = raw(version)
    pub.connect(f"raw03-q1p{version}")
    topic = b"raw03/q1/" + bytes([48 + version])
    pub.send(_publish(version, topic, b"one", qos=1, pid=7))
    pub.expect(b"\x40\x02\x00\x07")  # PUBACK, success
    delivered = sub.read_packet()
    assert delivered == _publish(version, topic, b"one", qos=1, pid=1)
    sub.send(b"\x40\x02\x00\x01")
    sub.ping()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_qos_2_publish_sent_again_with_the_same_id_is_routed_once(raw: Raw, version: int) -> None:
    # [MQTT-4.3.3-10]: until PUBREL the packet id names the same message
    topic = b"raw03/q2/" + bytes([48 + version])
    sub = _subscriber(raw, version, f"raw03-q2s{version}", topic, 2)
    pub = raw(version)
    pub.connect(f"raw03-q2p{version}")
    first = _publish(version, topic, b"once", qos=2, pid=9)
    pub.send(first)
    pub.expect(b"\x50\x02\x00\x09")  # PUBREC
    pub.send(bytes([first[0] | 0x08]) + first[1:])  # DUP
    pub.expect(b"\x50\x02\x00\x09")
    pub.send(b"\x62\x02\x00\x09")  # PUBREL
    pub.expect(b"\x70\x02\x00\x09")  # PUBCOMP
    assert sub.read_packet() == _publish(version, topic, b"once", qos=2, pid=1)
    sub.send(b"\x50\x02\x00\x01")
    sub.expect(b"\x62\x02\x00\x01")  # PUBREL
    sub.send(b"\x70\x02\x00\x01")
    sub.ping()  # and nothing else came: the message was routed once


def test_pubrel_for_an_unknown_packet_id(raw: Raw) -> None:
    five = raw(MQTT_5)  # §3.7.2.1: PUBCOMP 0x92 Packet Identifier not found
    five.connect("raw03-pubrel5")
    five.send(b"\x62\x02\x00\x07")
    five.expect(b"\x70\x03\x00\x07\x92")
    five.ping()
    three = raw(MQTT_3_1_1)  # 3.1.1 has no code: PUBCOMP all the same [MQTT-4.3.3-2]
    three.connect("raw03-pubrel3")
    three.send(b"\x62\x02\x00\x07")
    three.expect(b"\x70\x02\x00\x07")
    three.ping()


def test_puback_and_pubrec_for_unknown_ids_are_harmless(raw: Raw) -> None:
    client = raw(MQTT_5)
    client.connect("raw03-acks")
    client.send(b"\x40\x02\x00\x05")  # PUBACK: ignored
    client.send(b"\x50\x02\x00\x06")  # PUBREC: PUBREL 0x92 (§3.6.2.1)
    client.expect(b"\x62\x03\x00\x06\x92")
    client.send(b"\x70\x02\x00\x08")  # PUBCOMP: ignored
    client.ping()


def test_pubrel_with_wrong_flags(raw: Raw) -> None:
    client = raw(MQTT_5)  # [MQTT-3.6.1-1]: PUBREL's flags are 0010
    client.connect("raw03-pubrel-flags")
    client.send(b"\x60\x02\x00\x07")
    client.expect_then_closed(b"\xe0\x01\x81")


def test_a_server_packet_from_a_client(raw: Raw) -> None:
    client = raw(MQTT_5)  # a CONNACK from a client: Protocol Error
    client.connect("raw03-connack")
    client.send(b"\x20\x03\x00\x00\x00")
    client.expect_then_closed(b"\xe0\x01\x82")
