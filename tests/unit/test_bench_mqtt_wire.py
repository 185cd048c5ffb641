"""The load generator's MQTT encoding against bytes written by hand from the standards.

Section numbers are MQTT 3.1.1 (OASIS 2014) unless they say 5.0.
"""

from __future__ import annotations

import struct

import pytest

from pigeon.bench import mqtt_wire as mw
from pigeon.bench.mqtt_client import MqttUrl


@pytest.mark.parametrize(
    ("value", "encoded"),
    [  # the table of §2.2.3
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length(value: int, encoded: bytes) -> None:
    assert mw.varint(value) == encoded


def test_remaining_length_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        mw.varint(268_435_456)


def test_connect_311_clean_session() -> None:
    # §3.1: fixed header 0x10, remaining length 13; "MQTT", level 4, flags 0x02
    # (clean session), keep-alive 60; payload: client id "a".
    expected = b"\x10\x0d" + b"\x00\x04MQTT" + b"\x04\x02\x00\x3c" + b"\x00\x01a"
    assert mw.connect("a") == expected


def test_connect_311_username_password() -> None:
    # §3.1.2.8/9: user name flag 0x80, password flag 0x40; payload order id, user, password.
    expected = (
        b"\x10\x15\x00\x04MQTT\x04\xc2\x00\x0a" + b"\x00\x01a" + b"\x00\x02us" + b"\x00\x02pw"
    )
    assert mw.connect("a", keepalive=10, username="us", password="pw") == expected


def test_connect_5_has_empty_properties() -> None:
    # 5.0 §3.1.2: level 5, then a property length of 0 after the keep-alive.
    expected = b"\x10\x0e\x00\x04MQTT\x05\x02\x00\x3c\x00" + b"\x00\x01a"
    assert mw.connect("a", version=mw.V5) == expected


def test_subscribe() -> None:
    # §3.8: first byte 0x82 [MQTT-3.8.1-1], packet id 1, filter "a/b", requested QoS 1.
    assert mw.subscribe(1, "a/b", 1) == b"\x82\x08\x00\x01\x00\x03a/b\x01"
    # 5.0 §3.8.2.1: a property length (0) after the packet id.
    assert mw.subscribe(1, "a/b", 0, mw.V5) == b"\x82\x09\x00\x01\x00\x00\x03a/b\x00"


def test_puback_and_fixed_packets() -> None:
    assert mw.puback(0x1234) == b"\x40\x02\x12\x34"  # §3.4
    assert mw.PINGREQ_PACKET == b"\xc0\x00"  # §3.12
    assert mw.DISCONNECT_PACKET == b"\xe0\x00"  # §3.14


def _payload(seq: int, ts: int, size: int) -> bytes:
    return struct.pack(">QQ", seq, ts) + bytes(size - 16)


def test_publish_qos0_batch() -> None:
    # §3.3: 0x30, remaining length 2 + 3 + 16, topic "a/b", no packet id at QoS 0.
    template = mw.PublishTemplate("a/b", 0, 16)
    batch = template.batch(7, 2, 99)
    one = b"\x30\x15\x00\x03a/b"
    assert bytes(batch) == one + _payload(7, 99, 16) + one + _payload(8, 99, 16)


def test_publish_qos1_packet_ids() -> None:
    # §3.3.1.2: QoS 1 is flag bits 01 (first byte 0x32); the packet id follows the topic.
    template = mw.PublishTemplate("t", 1, 20)
    batch = template.batch(65535, 2, 5)
    first = b"\x32\x19\x00\x01t\xff\xff" + _payload(65535, 5, 20)
    second = b"\x32\x19\x00\x01t\x00\x01" + _payload(65536, 5, 20)  # never id 0
    assert bytes(batch) == first + second


def test_publish_qos1_v5_property_length_after_packet_id() -> None:
    # 5.0 §3.3.2: topic, packet id, then properties (length 0).
    template = mw.PublishTemplate("t", 1, 16, mw.V5)
    assert bytes(template.batch(3, 1, 0)) == b"\x32\x16\x00\x01t\x00\x03\x00" + _payload(3, 0, 16)


def test_publish_too_small() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        mw.PublishTemplate("t", 0, 15)


def _collect(version: int = mw.V311) -> tuple[mw.PacketReader, list[tuple[int, int, bytes]]]:
    seen: list[tuple[int, int, bytes]] = []
    reader = mw.PacketReader(
        lambda kind, flags, body: seen.append((kind, flags, bytes(body))), version
    )
    return reader, seen


def test_reader_counts_deliveries_split_anywhere() -> None:
    # A CONNACK (§3.2), a QoS 0 and a QoS 1 PUBLISH, a PINGRESP (§3.13), fed a byte at a time.
    qos0 = b"\x30\x15\x00\x03a/b" + _payload(1, 1_000, 16)
    qos1 = b"\x32\x17\x00\x03a/b\x00\x09" + _payload(2, 2_000, 16)
    stream = b"\x20\x02\x00\x00" + qos0 + qos1 + b"\xd0\x00"
    reader, seen = _collect()
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1], 5_000)
    assert reader.delivered == 2
    assert list(reader.latencies) == [4_000, 3_000]
    assert bytes(reader.acks) == b"\x40\x02\x00\x09"  # the PUBACK owed for packet id 9
    assert seen == [(mw.CONNACK, 0, b"\x00\x00"), (mw.PINGRESP, 0, b"")]


def test_reader_v5_skips_publish_properties_and_times_only_the_window() -> None:
    # 5.0 §3.3.2.3: a property length of 2 (payload format indicator = 1) before the payload.
    reader = mw.PacketReader(lambda kind, flags, body: None, mw.V5)
    reader.record_from_ns = 1_500
    body = b"\x00\x01t" + b"\x02\x01\x01" + _payload(1, 1_000, 16)
    late = b"\x00\x01t" + b"\x00" + _payload(2, 2_000, 16)
    reader.feed(b"\x30" + bytes([len(body)]) + body + b"\x30" + bytes([len(late)]) + late, 9_000)
    assert reader.delivered == 2
    assert list(reader.latencies) == [7_000]  # the first was sent before the window


def test_reader_rejects_a_five_byte_remaining_length() -> None:
    reader, _ = _collect()
    with pytest.raises(mw.MqttError, match="remaining length"):
        reader.feed(b"\x30\xff\xff\xff\xff\x01", 0)


def test_mqtt_url() -> None:
    assert MqttUrl.parse("mqtt://u:p%40@127.0.0.1:1884") == MqttUrl("127.0.0.1", 1884, "u", "p@")
    assert MqttUrl.parse("mqtt://127.0.0.1") == MqttUrl("127.0.0.1", 1883, None, None)
    with pytest.raises(ValueError, match="mqtt://"):
        MqttUrl.parse("amqp://127.0.0.1")


# --- against Pigeon's own codec (``pigeon.protocols.mqtt``) as a second reader ---------


@pytest.mark.parametrize("version", [mw.V311, mw.V5])
def test_pigeon_codec_reads_what_the_load_generator_sends(version: int) -> None:
    from pigeon.protocols.mqtt.codec import Decoder
    from pigeon.protocols.mqtt.packets import Connect, Publish, Subscribe

    stream = (
        mw.connect("c1", version=version, keepalive=30, username="u", password="p")
        + mw.subscribe(7, "bench/x/0", 1, version)
        + bytes(mw.PublishTemplate("bench/x/0", 1, 32, version).batch(65535, 2, 123))
        + mw.puback(9)
        + mw.PINGREQ_PACKET
        + mw.DISCONNECT_PACKET
    )
    packets = Decoder().feed(stream)
    connect, sub, first, second = packets[:4]
    assert isinstance(connect, Connect)
    assert (connect.protocol_level, connect.client_id, connect.keepalive) == (version, "c1", 30)
    assert (connect.username, connect.password, connect.clean_start) == ("u", b"p", True)
    assert isinstance(sub, Subscribe)
    assert sub.packet_id == 7 and sub.subscriptions[0][0] == "bench/x/0"
    assert sub.subscriptions[0][1].qos == 1
    assert isinstance(first, Publish) and isinstance(second, Publish)
    assert (first.qos, first.packet_id, second.packet_id) == (1, 65535, 1)
    assert first.payload == _payload(65535, 123, 32)
    assert [p.kind.name for p in packets[4:]] == ["PUBACK", "PINGREQ", "DISCONNECT"]


@pytest.mark.parametrize("version", [mw.V311, mw.V5])
def test_load_generator_reads_what_pigeon_encodes(version: int) -> None:
    from pigeon.protocols.mqtt.codec import encode
    from pigeon.protocols.mqtt.packets import Puback, Publish

    reader, seen = _collect(version)
    stream = encode(Publish("a/b", _payload(1, 10, 40), qos=1, packet_id=5), version)
    stream += encode(Publish("a/b", _payload(2, 20, 16)), version) + encode(Puback(3), version)
    reader.feed(stream, 100)
    assert reader.delivered == 2
    assert list(reader.latencies) == [90, 80]
    assert bytes(reader.acks) == b"\x40\x02\x00\x05"
    assert [(kind, body[:2]) for kind, _, body in seen] == [(mw.PUBACK, b"\x00\x03")]
