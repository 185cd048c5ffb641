"""04: retained messages, byte for byte (Mosquitto's test/broker/04-*)."""

from __future__ import annotations

from collections.abc import Callable

from mqtt_raw_client import RawClient, packet, string

from pigeon.protocols.mqtt.packets import MQTT_3_1_1, MQTT_5

Raw = Callable[..., RawClient]


def test_a_retained_message_reaches_a_later_subscriber_with_retain_set(raw: Raw) -> None:
    publisher = raw(MQTT_3_1_1)
    publisher.connect("raw04-pub")
    publisher.send(packet(0x31, string(b"raw04/kept") + b"value"))  # QoS 0, RETAIN
    publisher.ping()
    late = raw(MQTT_3_1_1)
    late.connect("raw04-late")
    late.send(packet(0x82, b"\x00\x01" + string(b"raw04/+") + b"\x00"))
    late.expect(b"\x90\x03\x00\x01\x00")  # the SUBACK first [MQTT-3.3.1-9]
    late.expect(packet(0x31, string(b"raw04/kept") + b"value"))  # RETAIN=1 [MQTT-3.3.1-8]
    publisher.send(packet(0x31, string(b"raw04/kept")))  # empty: cleared [MQTT-3.3.1-10]
    publisher.ping()
    again = raw(MQTT_3_1_1)
    again.connect("raw04-again")
    again.send(packet(0x82, b"\x00\x02" + string(b"raw04/+") + b"\x00"))
    again.expect(b"\x90\x03\x00\x02\x00")
    again.ping()  # nothing retained came before the PINGRESP


def test_retain_handling_2_sends_none(raw: Raw) -> None:
    publisher = raw(MQTT_5)
    publisher.connect("raw04-pub5")
    publisher.send(packet(0x31, string(b"raw04/rh") + b"\x00kept"))
    publisher.ping()
    client = raw(MQTT_5)
    client.connect("raw04-rh2")
    client.send(packet(0x82, b"\x00\x01\x00" + string(b"raw04/rh") + b"\x20"))  # §3.8.3.1
    client.expect(b"\x90\x04\x00\x01\x00\x00")
    client.ping()
    client.send(packet(0x82, b"\x00\x02\x00" + string(b"raw04/rh") + b"\x00"))  # handling 0
    client.expect(b"\x90\x04\x00\x02\x00\x00")
    client.expect(packet(0x31, string(b"raw04/rh") + b"\x00kept"))
