"""Byte-exact packets, written by hand from the field layouts and examples of the standards."""

from __future__ import annotations

import pytest

from pigeon.protocols.mqtt.codec import Decoder, encode
from pigeon.protocols.mqtt.packets import (
    MQTT_3_1_1,
    MQTT_5,
    NO_PROPERTIES,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Properties,
    Puback,
    Publish,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Will,
)
from pigeon.protocols.mqtt.reasons import ReasonCode
from pigeon.protocols.mqtt.wire import encode_varint, read_varint

# 3.1.1 §3.1.2.10 figure 3.6 (5.0 §3.1.2.12 figure 3-5 without properties): name
# "MQTT", level, flags 0xCE (user name, password, will QoS 1, will, clean), keep alive 10.
_CONNECT_311 = (
    b"\x10\x19"  # CONNECT, remaining length 25
    b"\x00\x04MQTT\x04\xce\x00\x0a"
    b"\x00\x01c"  # client identifier "c"
    b"\x00\x01w\x00\x01x"  # will topic "w", will payload b"x"
    b"\x00\x01u\x00\x01p"  # user name "u", password b"p"
)
# The same in 5.0 (§3.1.2.12 figure 3-5): properties Session Expiry Interval 10 and
# (added here) Receive Maximum 20, and an empty will property list (§3.1.3.2).
_CONNECT_5 = (
    b"\x10\x23"  # remaining length 35
    b"\x00\x04MQTT\x05\xce\x00\x0a"
    b"\x08\x11\x00\x00\x00\x0a\x21\x00\x14"
    b"\x00\x01c"
    b"\x00"  # no will properties
    b"\x00\x01w\x00\x01x\x00\x01u\x00\x01p"
)


def _connect(level: int, properties: Properties = NO_PROPERTIES) -> Connect:
    will = Will("w", b"x", qos=1, retain=False)
    return Connect(level, "c", True, 10, "u", b"p", will, properties)


EXAMPLES: list[tuple[int, bytes, Packet]] = [
    (MQTT_3_1_1, _CONNECT_311, _connect(MQTT_3_1_1)),
    (
        MQTT_5,
        _CONNECT_5,
        _connect(MQTT_5, Properties(session_expiry_interval=10, receive_maximum=20)),
    ),
    # 3.1.1 §3.3.2.3 figure 3.11: topic "a/b", packet identifier 10, then the payload.
    (MQTT_3_1_1, b"\x32\x09\x00\x03a/b\x00\x0ahi", Publish("a/b", b"hi", 1, packet_id=10)),
    (MQTT_5, b"\x32\x0a\x00\x03a/b\x00\x0a\x00hi", Publish("a/b", b"hi", 1, packet_id=10)),
    (MQTT_5, b"\x31\x06\x00\x03a/b\x00", Publish("a/b", b"", retain=True)),
    # 3.1.1 §3.8.3 figure 3.22: "a/b" at QoS 1 and "c/d" at QoS 2, packet identifier 10.
    (
        MQTT_3_1_1,
        b"\x82\x0e\x00\x0a\x00\x03a/b\x01\x00\x03c/d\x02",
        Subscribe(10, (("a/b", SubscriptionOptions(1)), ("c/d", SubscriptionOptions(2)))),
    ),
    # 5.0 §3.8.3.1: No Local (bit 2), Retain As Published (bit 3), Retain Handling 2 (bits 4-5).
    (
        MQTT_5,
        b"\x82\x07\x00\x0a\x00\x00\x01a\x2d",
        Subscribe(10, (("a", SubscriptionOptions(1, True, True, 2)),)),
    ),
    # 3.1.1 §3.9.3 figure 3.26: return codes 0, 1, 2 and Failure.
    (
        MQTT_3_1_1,
        b"\x90\x06\x00\x0a\x00\x01\x02\x80",
        Suback(10, (ReasonCode(0), ReasonCode(1), ReasonCode(2), ReasonCode(0x80))),
    ),
    (MQTT_3_1_1, b"\x20\x02\x01\x00", Connack(session_present=True)),
    (MQTT_3_1_1, b"\x20\x02\x00\x05", Connack(reason_code=ReasonCode.NOT_AUTHORIZED)),
    (MQTT_5, b"\x20\x03\x00\x87\x00", Connack(reason_code=ReasonCode.NOT_AUTHORIZED)),
    (MQTT_3_1_1, b"\x40\x02\x00\x0a", Puback(10)),
    # 5.0 §3.4.2.1: reason 0 and no properties may be left out; a reason alone is 3 bytes.
    (MQTT_5, b"\x40\x02\x00\x0a", Puback(10)),
    (MQTT_5, b"\x40\x03\x00\x0a\x10", Puback(10, ReasonCode.NO_MATCHING_SUBSCRIBERS)),
    (MQTT_3_1_1, b"\x62\x02\x00\x0a", Pubrel(10)),  # PUBREL flags are 0010
    (MQTT_3_1_1, b"\xb0\x02\x00\x0a", Unsuback(10)),
    (MQTT_3_1_1, b"\xc0\x00", Pingreq()),
    (MQTT_3_1_1, b"\xe0\x00", Disconnect()),
    (MQTT_5, b"\xe0\x00", Disconnect()),
    (MQTT_5, b"\xe0\x01\x04", Disconnect(ReasonCode.DISCONNECT_WITH_WILL_MESSAGE)),
    # 5.0 §3.14.2.2: a Reason String property "bye".
    (
        MQTT_5,
        b"\xe0\x08\x8b\x06\x1f\x00\x03bye",
        Disconnect(ReasonCode.SERVER_SHUTTING_DOWN, Properties(reason_string="bye")),
    ),
]


@pytest.mark.parametrize(("version", "wire", "packet"), EXAMPLES)
def test_encodes_the_bytes_of_the_standard(version: int, wire: bytes, packet: Packet) -> None:
    assert encode(packet, version) == wire


@pytest.mark.parametrize(("version", "wire", "packet"), EXAMPLES)
def test_decodes_the_bytes_of_the_standard(version: int, wire: bytes, packet: Packet) -> None:
    from_client = not isinstance(packet, Connack | Suback | Unsuback)
    if isinstance(packet, Connect):
        decoder = Decoder()
    else:
        decoder = Decoder(version=version, from_client=from_client)
    assert decoder.feed(wire) == [packet]


# 5.0 §1.5.5 table 1-1 (3.1.1 §2.2.3 table 2.4): the edges of each length of encoding.
VARINTS = [
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16_383, b"\xff\x7f"),
    (16_384, b"\x80\x80\x01"),
    (2_097_151, b"\xff\xff\x7f"),
    (2_097_152, b"\x80\x80\x80\x01"),
    (268_435_455, b"\xff\xff\xff\x7f"),
]


@pytest.mark.parametrize(("value", "wire"), VARINTS)
def test_variable_byte_integers_of_the_standard(value: int, wire: bytes) -> None:
    assert encode_varint(value) == wire
    assert read_varint(wire, 0, len(wire)) == (value, len(wire))


def test_utf8_example_of_the_standard_round_trips() -> None:
    # 3.1.1 §1.5.3 figure 1.3: "A" U+2A6D4 is 00 05 41 F0 AA 9B 94.
    packet = Publish("A\U0002a6d4", b"")
    assert encode(packet, MQTT_3_1_1) == b"\x30\x07\x00\x05\x41\xf0\xaa\x9b\x94"
    assert Decoder(version=MQTT_3_1_1).feed(encode(packet, MQTT_3_1_1)) == [packet]


def test_a_leading_byte_order_mark_is_kept() -> None:
    # [MQTT-1.5.4-3]: 0xEF 0xBB 0xBF is U+FEFF, never skipped or stripped.
    wire = b"\x30\x06\x00\x04\xef\xbb\xbfa"
    assert Decoder(version=MQTT_3_1_1).feed(wire) == [Publish("\ufeffa")]


def test_3_1_1_leaves_out_what_it_cannot_carry() -> None:
    packet = Publish("t", b"", properties=Properties(message_expiry_interval=5))
    assert encode(packet, MQTT_3_1_1) == b"\x30\x03\x00\x01t"
    failed = Suback(1, (ReasonCode.GRANTED_QOS_1, ReasonCode.TOPIC_FILTER_INVALID))
    assert encode(failed, MQTT_3_1_1) == b"\x90\x04\x00\x01\x01\x80"
    refused = Connack(reason_code=ReasonCode.BANNED)
    assert encode(refused, MQTT_3_1_1) == b"\x20\x02\x00\x05"  # Not authorized
    assert encode(Puback(3, ReasonCode.QUOTA_EXCEEDED), MQTT_3_1_1) == b"\x40\x02\x00\x03"


def test_encode_refuses_what_no_version_can_carry() -> None:
    with pytest.raises(ValueError, match="packet identifier"):
        encode(Publish("t", b"", qos=1), MQTT_5)
    with pytest.raises(ValueError, match="user name"):
        encode(Connect(MQTT_3_1_1, "c", password=b"p"), MQTT_3_1_1)
    with pytest.raises(ValueError, match="AUTH"):
        encode(Auth(), MQTT_3_1_1)
    with pytest.raises(ValueError, match="65535"):
        encode(Subscribe(1, (("a" * 70_000, SubscriptionOptions()),)), MQTT_5)
