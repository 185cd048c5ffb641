"""02: SUBSCRIBE and UNSUBSCRIBE edge cases, byte for byte (Mosquitto's test/broker/02-*).

A bad filter is refused in its own SUBACK entry (0x8F; 3.1.1: 0x80) and the
connection goes on; a SUBSCRIBE that breaks the packet's rules closes it (5.0:
DISCONNECT with the reason first).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mqtt_raw_client import RawClient, packet, string

from pigeon.protocols.mqtt.packets import MQTT_3_1_1, MQTT_5

Raw = Callable[..., RawClient]


def _subscribe(version: int, *entries: tuple[bytes, int], packet_id: int = 1) -> bytes:
    props = b"\x00" if version == MQTT_5 else b""
    body = packet_id.to_bytes(2, "big") + props
    return packet(0x82, body + b"".join(string(f) + bytes([o]) for f, o in entries))


def _suback(version: int, *codes: int, packet_id: int = 1) -> bytes:
    props = b"\x00" if version == MQTT_5 else b""
    return packet(0x90, packet_id.to_bytes(2, "big") + props + bytes(codes))


@pytest.mark.parametrize(
    "bad",
    [b"a/#/b", b"a#", b"a/b+", b"+a", b""],
    ids=["hash-not-last", "hash-in-level", "plus-in-level", "plus-prefix", "empty"],
)
def test_an_invalid_filter_is_refused_in_its_suback_entry(raw: Raw, bad: bytes) -> None:
    # [MQTT-4.7.1-1,2], [MQTT-4.7.3-1]: 0x8F in 5.0, 0x80 in 3.1.1; the good one granted
    for version, refused in ((MQTT_5, 0x8F), (MQTT_3_1_1, 0x80)):
        client = raw(version)
        client.connect(f"raw02-bad{version}")
        client.send(_subscribe(version, (bad, 0x01), (b"raw02/ok", 0x01)))
        client.expect(_suback(version, refused, 0x01))
        client.ping()


def test_a_shared_subscription_with_a_bad_group(raw: Raw) -> None:
    client = raw(MQTT_5)  # [MQTT-4.8.2-2]: the group has no wildcard
    client.connect("raw02-share")
    client.send(_subscribe(MQTT_5, (b"$share/g+/t", 0x01), (b"$share//t", 0x00)))
    client.expect(_suback(MQTT_5, 0x8F, 0x8F))
    client.ping()


def test_a_subscribe_without_filters_5_0(raw: Raw) -> None:
    client = raw(MQTT_5)  # [MQTT-3.8.3-2]: a Protocol Error
    client.connect("raw02-none5")
    client.send(_subscribe(MQTT_5))
    client.expect_then_closed(b"\xe0\x01\x82")


def test_a_subscribe_without_filters_3_1_1(raw: Raw) -> None:
    client = raw(MQTT_3_1_1)  # [MQTT-3.8.3-3]
    client.connect("raw02-none3")
    client.send(_subscribe(MQTT_3_1_1))
    client.expect_closed()


@pytest.mark.parametrize(
    ("options", "what"),
    [(0xC1, "reserved bits 6-7 [MQTT-3.8.3-5]"), (0x03, "QoS 3 [MQTT-3-8.3-4]")],
)
def test_bad_subscription_options(raw: Raw, options: int, what: str) -> None:
    five = raw(MQTT_5)
    five.connect("raw02-opts5")
    five.send(_subscribe(MQTT_5, (b"raw02/t", options)))
    five.expect_then_closed(b"\xe0\x01\x81")  # Malformed Packet
    three = raw(MQTT_3_1_1)
    three.connect("raw02-opts3")
    three.send(_subscribe(MQTT_3_1_1, (b"raw02/t", options)))
    three.expect_closed()


def test_retain_handling_3_is_a_protocol_error(raw: Raw) -> None:
    client = raw(MQTT_5)  # §3.8.3.1: Retain Handling 3 is a Protocol Error
    client.connect("raw02-rh3")
    client.send(_subscribe(MQTT_5, (b"raw02/t", 0x30)))
    client.expect_then_closed(b"\xe0\x01\x82")


def test_subscribe_options_beyond_qos_in_3_1_1(raw: Raw) -> None:
    # 3.1.1 §3.8.3.1: the upper six bits are reserved and must be 0 [MQTT-3-8.3-4]
    client = raw(MQTT_3_1_1)
    client.connect("raw02-nl3")
    client.send(_subscribe(MQTT_3_1_1, (b"raw02/t", 0x05)))
    client.expect_closed()


def test_no_local_on_a_shared_subscription(raw: Raw) -> None:
    client = raw(MQTT_5)  # [MQTT-3.8.3-4]
    client.connect("raw02-nl-share")
    client.send(_subscribe(MQTT_5, (b"$share/g/t", 0x05)))
    client.expect_then_closed(b"\xe0\x01\x82")


@pytest.mark.parametrize("first", [0x80, 0x83, 0x8A])
def test_subscribe_with_wrong_fixed_header_flags(raw: Raw, first: int) -> None:
    # [MQTT-3.8.1-1]: SUBSCRIBE's flags are 0010
    client = raw(MQTT_5)
    client.connect(f"raw02-flags{first}")
    client.send(bytes([first]) + _subscribe(MQTT_5, (b"raw02/t", 0x01))[1:])
    client.expect_then_closed(b"\xe0\x01\x81")


def test_packet_identifier_0(raw: Raw) -> None:
    client = raw(MQTT_5)  # [MQTT-2.2.1-3]
    client.connect("raw02-id0")
    client.send(_subscribe(MQTT_5, (b"raw02/t", 0x01), packet_id=0))
    client.expect_then_closed(b"\xe0\x01\x82")


def test_an_unsubscribe_without_filters(raw: Raw) -> None:
    client = raw(MQTT_5)  # [MQTT-3.10.3-2]
    client.connect("raw02-unsub")
    client.send(packet(0xA2, b"\x00\x02\x00"))
    client.expect_then_closed(b"\xe0\x01\x82")


def test_unsubscribe_answers_per_filter(raw: Raw) -> None:
    client = raw(MQTT_5)  # 0x00 for one that existed, 0x11 for one that did not
    client.connect("raw02-unsub-ok")
    client.send(_subscribe(MQTT_5, (b"raw02/u", 0x01)))
    client.expect(_suback(MQTT_5, 0x01))
    client.send(packet(0xA2, b"\x00\x02\x00" + string(b"raw02/u") + string(b"raw02/none")))
    client.expect(b"\xb0\x05\x00\x02\x00\x00\x11")
