"""05: limits and malformed framing, byte for byte (docs/mqtt.md, "Limits").

The broker of these tests (conftest.py) has low limits: packets of 4096 bytes
after CONNECT and 1024 until then, client ids of 64 bytes, topics of 200 bytes
and 8 levels, a 1 s connect timeout; inflight is the default 10.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from mqtt_raw_client import (
    CONNACK_5,
    CONNACK_311,
    CONNECT_TIMEOUT,
    MAX_CLIENT_ID,
    MAX_LEVELS,
    MAX_PACKET,
    MAX_TOPIC,
    RawClient,
    connect_bytes,
    packet,
    remaining_length,
    string,
)

from pigeon.config import Config
from pigeon.protocols.mqtt.packets import MQTT_3_1_1, MQTT_5
from pigeon.protocols.mqtt.properties import Properties

Raw = Callable[..., RawClient]
VERSIONS = [MQTT_3_1_1, MQTT_5]


def _publish(version: int, topic: bytes, payload: bytes, *, qos: int = 0, pid: int = 0) -> bytes:
    body = string(topic) + (pid.to_bytes(2, "big") if qos else b"")
    body += b"\x00" if version == MQTT_5 else b""
    return packet(0x30 | qos << 1, body + payload)


def _sized_publish(version: int, size: int) -> bytes:
    """A QoS 0 PUBLISH of exactly ``size`` bytes, fixed header included."""
    length = size - len(_publish(version, b"raw05/size", b""))
    data = _publish(version, b"raw05/size", b"x" * length)
    while len(data) > size:  # a longer Remaining Length takes a byte of the payload's
        length -= 1
        data = _publish(version, b"raw05/size", b"x" * length)
    assert len(data) == size, len(data)
    return data


def test_a_packet_of_exactly_the_maximum_size_passes(raw: Raw) -> None:
    client = raw(MQTT_5)  # the CONNACK advertised 4096 (property 0x27)
    assert client.connect("raw05-fits") == CONNACK_5
    client.send(_sized_publish(MQTT_5, MAX_PACKET))
    client.ping()


def test_a_packet_above_the_maximum_size_is_refused_from_its_header(raw: Raw) -> None:
    # [MQTT-3.2.2-15] gives the client the limit; above it: DISCONNECT 0x95 Packet too large
    # (§4.13), known from the fixed header alone: the body is never sent
    client = raw(MQTT_5)
    client.connect("raw05-big5")
    client.send(b"\x30" + remaining_length(MAX_PACKET - 2))  # 4097 bytes with its header
    client.expect_then_closed(b"\xe0\x01\x95")


def test_a_packet_above_the_maximum_size_closes_a_3_1_1_connection(raw: Raw) -> None:
    client = raw(MQTT_3_1_1)
    client.connect("raw05-big3")
    client.send(b"\x30" + remaining_length(200_000_000))
    client.expect_closed()


@pytest.mark.parametrize("version", VERSIONS)
def test_an_oversized_packet_right_behind_connect(raw: Raw, version: int) -> None:
    # The broker's limit holds before the CONNACK too (not the 256 MiB MQTT can frame)
    client = raw(version)
    client.send(connect_bytes(version, f"raw05-early{version}") + b"\x30\xff\xff\xff\x7f")
    client.expect(CONNACK_5 if version == MQTT_5 else CONNACK_311)
    if version == MQTT_5:
        client.expect(b"\xe0\x01\x95")
    client.expect_closed()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_connect_above_the_unauthenticated_limit(raw: Raw, version: int) -> None:
    # Before CONNECT is read, 1024 bytes (RabbitMQ's max_packet_size_unauthenticated);
    # its version is not known yet, so no CONNACK: the connection is closed
    client = raw(version)
    client.send(b"\x10" + remaining_length(2000))
    client.expect_closed()


@pytest.mark.parametrize("version", VERSIONS)
def test_remaining_length_over_four_bytes(raw: Raw, version: int) -> None:
    # §1.5.5: at most four bytes: a Malformed Packet
    client = raw(version)
    client.connect(f"raw05-rl{version}")
    client.send(b"\x30\xff\xff\xff\xff\x01")
    if version == MQTT_5:
        client.expect(b"\xe0\x01\x81")
    client.expect_closed()


def test_remaining_length_not_in_its_shortest_form(raw: Raw) -> None:
    client = raw(MQTT_5)  # [MQTT-1.5.5-1]: 0x80 0x00 for 0
    client.connect("raw05-rl-long")
    client.send(b"\xc0\x80\x00")
    client.expect_then_closed(b"\xe0\x01\x81")


@pytest.mark.parametrize("version", VERSIONS)
def test_garbage_after_a_valid_packet(raw: Raw, version: int) -> None:
    # The valid PINGREQ is answered; then packet type 0, reserved [MQTT-2.1.3-1]
    client = raw(version)
    client.connect(f"raw05-garbage{version}")
    client.send(b"\xc0\x00\x00\x00\x00\xde\xad\xbe\xef")
    client.expect(b"\xd0\x00")
    if version == MQTT_5:
        client.expect(b"\xe0\x01\x81")
    client.expect_closed()


def test_a_client_id_at_the_limit_is_accepted(raw: Raw) -> None:
    client = raw(MQTT_5)
    assert client.connect("i" * MAX_CLIENT_ID) == CONNACK_5


@pytest.mark.parametrize(
    ("version", "answer"),
    [(MQTT_5, b"\x20\x03\x00\x85\x00"), (MQTT_3_1_1, b"\x20\x02\x00\x02")],
)
def test_a_client_id_above_the_limit(raw: Raw, version: int, answer: bytes) -> None:
    # [MQTT-3.1.3-9]: the server may refuse a client id: 0x85 / return code 2
    client = raw(version)
    client.send(connect_bytes(version, "i" * (MAX_CLIENT_ID + 1)))
    client.expect_then_closed(answer)


def test_topic_names_above_the_limits(raw: Raw) -> None:
    long_name = b"t" * (MAX_TOPIC + 1)
    deep_name = b"/".join([b"l"] * (MAX_LEVELS + 1))
    for name in (long_name, deep_name):
        client = raw(MQTT_5)
        client.connect("raw05-topic")
        client.send(_publish(MQTT_5, b"/".join([b"l"] * MAX_LEVELS), b"fits", qos=1, pid=1))
        client.expect(b"\x40\x03\x00\x01\x10")  # routed to no one: 0x10, but accepted
        client.send(_publish(MQTT_5, name, b"x", qos=1, pid=2))
        client.expect_then_closed(b"\xe0\x01\x90")  # Topic Name invalid


def test_topic_filters_above_the_limits(raw: Raw) -> None:
    client = raw(MQTT_5)
    client.connect("raw05-filter")
    entries = (b"f" * (MAX_TOPIC + 1), b"/".join([b"+"] * (MAX_LEVELS + 1)), b"raw05/+/ok")
    body = b"\x00\x01\x00" + b"".join(string(e) + b"\x01" for e in entries)
    client.send(packet(0x82, body))
    client.expect(b"\x90\x06\x00\x01\x00\x8f\x8f\x01")  # Topic Filter invalid, twice
    client.ping()


@pytest.mark.parametrize("partial", [b"", b"\x10\x10\x00\x04MQ"])
def test_the_connect_timeout(raw: Raw, partial: bytes) -> None:
    client = raw(MQTT_5)
    started = time.monotonic()
    client.send(partial)
    client.expect_closed(timeout=CONNECT_TIMEOUT + 4)
    assert time.monotonic() - started >= CONNECT_TIMEOUT * 0.9


def _qos1_subscriber(raw: Raw, client_id: str, topic: bytes, **kw: object) -> RawClient:
    client = raw(MQTT_5)
    client.connect(client_id, **kw)
    client.send(packet(0x82, b"\x00\x01\x00" + string(topic) + b"\x01"))
    client.expect(b"\x90\x04\x00\x01\x00\x01")
    return client


def _deliveries(client: RawClient) -> list[int]:
    """Packet ids of the QoS 1 PUBLISHes that come until a PINGRESP."""
    client.send(b"\xc0\x00")
    ids = []
    while (data := client.read_packet()) != b"\xd0\x00":
        assert data[0] == 0x32, data
        topic_length = int.from_bytes(data[2:4], "big")
        ids.append(int.from_bytes(data[4 + topic_length : 6 + topic_length], "big"))
    return ids


@pytest.mark.parametrize(("receive_maximum", "inflight"), [(None, Config().mqtt_inflight), (3, 3)])
def test_inflight_is_bounded(raw: Raw, receive_maximum: int | None, inflight: int) -> None:
    # mqtt_inflight (its default), or the client's Receive Maximum below it [MQTT-3.3.4-9]
    topic = f"raw05/inflight/{receive_maximum}".encode()
    properties = Properties(receive_maximum=receive_maximum)
    sub = _qos1_subscriber(raw, f"raw05-infl{receive_maximum}", topic, properties=properties)
    pub = raw(MQTT_5)
    pub.connect(f"raw05-inflp{receive_maximum}")
    for pid in range(1, inflight + 6):
        pub.send(_publish(MQTT_5, topic, b"m", qos=1, pid=pid))
        pub.expect(b"\x40\x02" + pid.to_bytes(2, "big"))
    first = _deliveries(sub)
    assert len(first) == inflight
    sub.send(b"\x40\x02" + first[0].to_bytes(2, "big"))  # one PUBACK: one more comes
    assert len(_deliveries(sub)) == 1
    assert _deliveries(sub) == []
