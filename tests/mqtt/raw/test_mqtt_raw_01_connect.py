"""01: CONNECT edge cases, byte for byte (the area of Mosquitto's test/broker/01-*).

A 5.0 client is told why with a CONNACK or DISCONNECT reason code; a 3.1.1 client
gets a CONNACK return code where 3.1.1 has one, and the connection closed where
it has none.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mqtt_raw_client import CONNACK_5, CONNACK_311, RawClient, connect_bytes, packet, string

from pigeon.protocols.mqtt.packets import MQTT_3_1_1, MQTT_5

Raw = Callable[..., RawClient]
VERSIONS = [MQTT_3_1_1, MQTT_5]


def _connect(version: int, flags: int, *payload: bytes, keepalive: int = 60) -> bytes:
    """A CONNECT with these flags and payload strings, as the bytes go (§3.1.2)."""
    header = string(b"MQTT") + bytes([version, flags]) + keepalive.to_bytes(2, "big")
    if version == MQTT_5:
        header += b"\x00"  # no properties
    return packet(0x10, header + b"".join(string(p) for p in payload))


def test_a_second_connect_is_a_protocol_error_5_0(raw: Raw) -> None:
    # [MQTT-3.1.0-2]: DISCONNECT 0x82, then the close
    client = raw(MQTT_5)
    client.send(connect_bytes(MQTT_5, "raw01-a") * 2)
    client.expect(CONNACK_5)
    client.expect_then_closed(b"\xe0\x01\x82")


def test_a_second_connect_closes_a_3_1_1_connection(raw: Raw) -> None:
    client = raw(MQTT_3_1_1)
    client.send(connect_bytes(MQTT_3_1_1, "raw01-b") * 2)  # [MQTT-3.1.0-2]
    client.expect(CONNACK_311)
    client.expect_closed()


@pytest.mark.parametrize(
    ("flags", "what"),
    [
        (0x03, "reserved flag [MQTT-3.1.2-3]"),
        (0x0A, "will QoS 1 without the will flag [MQTT-3.1.2-13]"),
        (0x22, "will retain without the will flag [MQTT-3.1.2-15]"),
    ],
)
def test_bad_connect_flags(raw: Raw, flags: int, what: str) -> None:
    five = raw(MQTT_5)
    five.send(_connect(MQTT_5, flags, b"raw01-flags"))
    five.expect_then_closed(b"\x20\x03\x00\x81\x00")  # CONNACK 0x81 Malformed Packet
    three = raw(MQTT_3_1_1)
    three.send(_connect(MQTT_3_1_1, flags, b"raw01-flags"))
    three.expect_closed()  # no CONNACK: 3.1.1 has no code for it [MQTT-3.1.4-1]


def test_will_qos_3(raw: Raw) -> None:
    # [MQTT-3.1.2-14]: will flag, will QoS 3, clean start
    five = raw(MQTT_5)
    body = string(b"MQTT") + bytes([5, 0x1E, 0, 60, 0]) + string(b"raw01-w")
    five.send(packet(0x10, body + b"\x00" + string(b"w/t") + string(b"bye")))
    five.expect_then_closed(b"\x20\x03\x00\x81\x00")
    three = raw(MQTT_3_1_1)
    three.send(_connect(MQTT_3_1_1, 0x1E, b"raw01-w", b"w/t", b"bye"))
    three.expect_closed()


def test_a_password_without_a_username_3_1_1(raw: Raw) -> None:
    # [MQTT-3.1.2-22]: malformed in 3.1.1, closed without a CONNACK [MQTT-3.1.4-1]
    client = raw(MQTT_3_1_1)
    client.send(_connect(MQTT_3_1_1, 0x42, b"raw01-pw", b"secret"))
    client.expect_closed()


def test_a_password_without_a_username_5_0_is_refused_as_rabbitmq_does(raw: Raw) -> None:
    # 5.0 allows the form (§3.1.2.9); RabbitMQ refuses it as bad credentials: 0x86
    client = raw(MQTT_5)
    client.send(_connect(MQTT_5, 0x42, b"raw01-pw5", b"secret"))
    client.expect_then_closed(b"\x20\x03\x00\x86\x00")


def test_an_empty_client_id_without_clean_session_3_1_1(raw: Raw) -> None:
    client = raw(MQTT_3_1_1)  # [MQTT-3.1.3-8]: return code 2, identifier rejected
    client.send(_connect(MQTT_3_1_1, 0x00, b""))
    client.expect_then_closed(b"\x20\x02\x00\x02")


def test_an_empty_client_id_with_clean_session_3_1_1(raw: Raw) -> None:
    client = raw(MQTT_3_1_1)  # [MQTT-3.1.3-7]
    client.send(_connect(MQTT_3_1_1, 0x02, b""))
    client.expect(CONNACK_311)
    client.ping()


def test_an_empty_client_id_5_0_gets_one_assigned(raw: Raw) -> None:
    # [MQTT-3.2.2-16]: the CONNACK names it (property 0x12), the rest as usual
    client = raw(MQTT_5)
    client.send(_connect(MQTT_5, 0x00, b""))
    connack = client.read_packet()
    assert connack[:6] == bytes([0x20, 0x36, 0x00, 0x00, 0x33, 0x12])
    assert connack[6:8] == b"\x00\x1d" and connack[8:15] == b"pigeon-"
    assert connack[37:] == CONNACK_5[5:]
    client.ping()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_protocol_level_we_do_not_speak(raw: Raw, version: int) -> None:
    # [MQTT-3.1.2-2]: return code 1 (3.1.1's form, as RabbitMQ answers) then the close
    client = raw(version)
    client.send(packet(0x10, string(b"MQTT") + bytes([6, 0x02, 0, 60]) + string(b"x")))
    client.expect_then_closed(b"\x20\x02\x00\x01")


def test_a_protocol_name_other_than_mqtt_is_closed_silently(raw: Raw) -> None:
    # [MQTT-3.1.2-1]: the server MAY disconnect; it does, without a CONNACK
    client = raw(MQTT_5)
    client.send(packet(0x10, string(b"MQTX") + bytes([5, 0x02, 0, 60, 0]) + string(b"x")))
    client.expect_closed()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_first_packet_other_than_connect_is_closed_silently(raw: Raw, version: int) -> None:
    client = raw(version)  # [MQTT-3.1.0-1]
    client.send(b"\xc0\x00")  # PINGREQ
    client.expect_closed()


@pytest.mark.parametrize("version", VERSIONS)
def test_packets_behind_connect_before_connack_are_handled_in_order(raw: Raw, version: int) -> None:
    # A client need not wait for the CONNACK (§3.1.4): SUBSCRIBE and PINGREQ behind it
    client = raw(version)
    props = b"\x00" if version == MQTT_5 else b""
    subscribe = packet(0x82, b"\x00\x01" + props + string(b"raw01/early") + b"\x01")
    client.send(connect_bytes(version, f"raw01-early{version}") + subscribe + b"\xc0\x00")
    client.expect(CONNACK_5 if version == MQTT_5 else CONNACK_311)
    client.expect(b"\x90\x04\x00\x01\x00\x01" if version == MQTT_5 else b"\x90\x03\x00\x01\x01")
    client.expect(b"\xd0\x00")


def test_auth_without_an_authentication_method_5_0(raw: Raw) -> None:
    # AUTH when the CONNECT named no method is a Protocol Error (§4.12, [MQTT-4.12.0-1])
    client = raw(MQTT_5)
    client.connect("raw01-auth")
    client.send(b"\xf0\x00")
    client.expect_then_closed(b"\xe0\x01\x82")


def test_auth_in_3_1_1_is_not_a_packet_type(raw: Raw) -> None:
    client = raw(MQTT_3_1_1)  # type 15 is reserved in 3.1.1 (§2.2.1)
    client.connect("raw01-auth3")
    client.send(b"\xf0\x00")
    client.expect_closed()
