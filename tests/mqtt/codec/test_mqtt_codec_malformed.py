"""Hostile and malformed input: each refusal with the reason code the standard calls for."""

from __future__ import annotations

import tracemalloc

import pytest

from pigeon.protocols.mqtt.codec import Decoder, encode
from pigeon.protocols.mqtt.packets import (
    MQTT_3_1_1,
    MQTT_5,
    Connect,
    Pingreq,
    Properties,
    Publish,
)
from pigeon.protocols.mqtt.reasons import ProtocolViolation, ReasonCode
from pigeon.protocols.mqtt.wire import encode_varint

MALFORMED = ReasonCode.MALFORMED_PACKET
PROTOCOL = ReasonCode.PROTOCOL_ERROR


def frame(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_varint(len(body)) + body


def s(text: bytes) -> bytes:
    """An MQTT string or binary field: two-byte length, then the bytes."""
    return len(text).to_bytes(2, "big") + text


def connected(version: int) -> Decoder:
    decoder = Decoder()
    decoder.feed(encode(Connect(version, "c"), version))
    return decoder


def refusal(decoder: Decoder, wire: bytes) -> ProtocolViolation:
    with pytest.raises(ProtocolViolation) as caught:
        decoder.feed(wire)
    return caught.value


def connect_body(level: int = 4, flags: int = 0x02, name: bytes = b"MQTT") -> bytes:
    properties = b"\x00" if level == MQTT_5 else b""
    return s(name) + bytes((level, flags)) + b"\x00\x3c" + properties + s(b"c")


# (version, packet after CONNECT, reason, what it breaks)
AFTER_CONNECT = [
    (4, b"\x00\x00", MALFORMED, "packet type 0 is reserved"),
    (4, b"\xf0\x00", MALFORMED, "AUTH is reserved in 3.1.1"),
    (4, b"\x80\x06\x00\x01\x00\x01a\x00", MALFORMED, "SUBSCRIBE flags 0000 [MQTT-2.1.3-1]"),
    (5, b"\xa0\x05\x00\x01\x00\x00\x00", MALFORMED, "UNSUBSCRIBE flags 0000"),
    (4, b"\x60\x02\x00\x01", MALFORMED, "PUBREL flags 0000"),
    (4, b"\x41\x02\x00\x01", MALFORMED, "PUBACK flags 0001"),
    (4, b"\xc8\x00", MALFORMED, "PINGREQ flags 1000"),
    (4, b"\xe2\x00", MALFORMED, "DISCONNECT flags 0010"),
    (4, frame(0x36, s(b"t") + b"\x00\x01"), MALFORMED, "PUBLISH QoS 3 [MQTT-3.3.1-4]"),
    (5, frame(0x38, s(b"t") + b"\x00"), MALFORMED, "DUP at QoS 0 [MQTT-3.3.1-2]"),
    (4, b"\x30\xff\xff\xff\xff\x01", MALFORMED, "Remaining Length of five bytes"),
    (4, b"\x30\x80\x00", MALFORMED, "Remaining Length not minimal [MQTT-1.5.5-1]"),
    (4, b"\x30\x83\x80\x00", MALFORMED, "Remaining Length with a zero last group"),
    (4, frame(0x10, connect_body()), PROTOCOL, "a second CONNECT [MQTT-3.1.0-2]"),
    (4, b"\x20\x02\x00\x00", PROTOCOL, "CONNACK from a client"),
    (4, b"\x90\x03\x00\x01\x00", PROTOCOL, "SUBACK from a client"),
    (4, b"\xd0\x00", PROTOCOL, "PINGRESP from a client"),
    (4, frame(0x30, s(b"a\xc3\x28")), MALFORMED, "ill-formed UTF-8 [MQTT-1.5.4-1]"),
    (4, frame(0x30, s(b"\xc0\xaf")), MALFORMED, "overlong UTF-8"),
    (4, frame(0x30, s(b"\xed\xa0\x80")), MALFORMED, "U+D800 encoded [MQTT-1.5.4-1]"),
    (4, frame(0x30, s(b"a\x00b")), MALFORMED, "U+0000 [MQTT-1.5.4-2]"),
    (4, frame(0x30, s(b"a/+")), ReasonCode.TOPIC_NAME_INVALID, "wildcard [MQTT-3.3.2-2]"),
    (5, frame(0x30, s(b"a/#") + b"\x00"), ReasonCode.TOPIC_NAME_INVALID, "'#' in a name"),
    (4, frame(0x30, s(b"")), PROTOCOL, "empty topic [MQTT-4.7.3-1]"),
    (5, frame(0x30, s(b"") + b"\x00"), PROTOCOL, "empty topic without a topic alias"),
    (4, frame(0x30, b"\x00"), MALFORMED, "topic length cut short"),
    (4, frame(0x30, b"\x00\x05ab"), MALFORMED, "topic longer than the packet"),
    (4, frame(0x32, s(b"t") + b"\x00\x00"), PROTOCOL, "PUBLISH packet id 0 [MQTT-2.2.1-3]"),
    (4, frame(0x32, s(b"t") + b"\x00"), MALFORMED, "PUBLISH packet id cut short"),
    (4, b"\x40\x02\x00\x00", PROTOCOL, "PUBACK packet id 0"),
    (4, frame(0x82, b"\x00\x00" + s(b"a") + b"\x00"), PROTOCOL, "SUBSCRIBE packet id 0"),
    (4, frame(0xA2, b"\x00\x00" + s(b"a")), PROTOCOL, "UNSUBSCRIBE packet id 0"),
    (4, frame(0x82, b"\x00\x01"), PROTOCOL, "SUBSCRIBE without a filter [MQTT-3.8.3-2]"),
    (5, frame(0x82, b"\x00\x01\x00"), PROTOCOL, "5.0 SUBSCRIBE without a filter"),
    (4, frame(0xA2, b"\x00\x01"), PROTOCOL, "UNSUBSCRIBE without a filter [MQTT-3.10.3-2]"),
    (4, frame(0x82, b"\x00\x01" + s(b"a") + b"\x03"), MALFORMED, "SUBSCRIBE QoS 3"),
    (4, frame(0x82, b"\x00\x01" + s(b"a") + b"\x04"), MALFORMED, "3.1.1 options reserved bits"),
    (5, frame(0x82, b"\x00\x01\x00" + s(b"a") + b"\x40"), MALFORMED, "5.0 options bit 6"),
    (5, frame(0x82, b"\x00\x01\x00" + s(b"a") + b"\x30"), PROTOCOL, "Retain Handling 3"),
    (5, frame(0x82, b"\x00\x01\x00" + s(b"$share/g/a") + b"\x04"), PROTOCOL, "No Local shared"),
    (4, frame(0x82, b"\x00\x01" + s(b"a")), MALFORMED, "SUBSCRIBE options byte missing"),
    (4, b"\xc0\x01\x00", MALFORMED, "PINGREQ with a body"),
    (4, b"\xe0\x01\x00", MALFORMED, "3.1.1 DISCONNECT with a body"),
    (4, b"\x40\x03\x00\x01\x00", MALFORMED, "3.1.1 PUBACK of 3 bytes"),
    (4, b"\x40\x01\x00", MALFORMED, "PUBACK of 1 byte"),
    (5, b"\x40\x03\x00\x01\x05", PROTOCOL, "PUBACK reason 0x05 is not defined"),
    (5, b"\x62\x03\x00\x01\x10", PROTOCOL, "PUBREL reason 0x10 is PUBACK's"),
    (5, b"\xe0\x01\x03", PROTOCOL, "DISCONNECT reason 0x03 is not defined"),
    (5, b"\xf0\x01\x01", PROTOCOL, "AUTH reason 0x01 is not defined"),
]


@pytest.mark.parametrize(("version", "wire", "reason", "why"), AFTER_CONNECT)
def test_malformed_packets_are_refused_with_their_reason(
    version: int, wire: bytes, reason: ReasonCode, why: str
) -> None:
    error = refusal(connected(version), wire)
    assert error.reason == reason, why
    assert error.text


def _props(*items: bytes) -> bytes:
    body = b"".join(items)
    return encode_varint(len(body)) + body


SESSION_EXPIRY = b"\x11\x00\x00\x00\x0a"
# (properties of a 5.0 PUBLISH or CONNECT, reason, what they break)
PROPERTY_CASES = [
    (0x30, _props(b"\x05\x00"), MALFORMED, "unknown property 0x05"),
    (0x30, _props(b"\x23\x00\x01", b"\x23\x00\x02"), PROTOCOL, "topic alias twice"),
    (0x30, _props(SESSION_EXPIRY), MALFORMED, "Session Expiry Interval in PUBLISH"),
    (0x30, _props(b"\x23\x00\x00"), ReasonCode.TOPIC_ALIAS_INVALID, "topic alias 0"),
    (0x30, _props(b"\x01\x02"), PROTOCOL, "payload format indicator 2"),
    (0x30, _props(b"\x0b\x00"), PROTOCOL, "subscription identifier 0"),
    (0x30, _props(b"\x0b\x80\x00"), MALFORMED, "subscription identifier not minimal"),
    (0x30, b"\x09\x26\x00\x01a", MALFORMED, "property length past the packet"),
    (0x30, _props(b"\x26\x00\x01a\x00\x02"), MALFORMED, "user property value cut short"),
    (0x30, _props(b"\x03\x00\x01\x00"), MALFORMED, "content type with U+0000"),
    (0x30, _props(b"\x08\x00\x02\xed\xb0"), MALFORMED, "ill-formed response topic"),
    (0x30, _props(b"\x08\x00\x03a/#"), PROTOCOL, "wildcard in a response topic"),
]


@pytest.mark.parametrize(("first", "properties", "reason", "why"), PROPERTY_CASES)
def test_bad_publish_properties_are_refused(
    first: int, properties: bytes, reason: ReasonCode, why: str
) -> None:
    wire = frame(first, s(b"t") + properties)
    assert refusal(connected(MQTT_5), wire).reason == reason, why


def _connect_5(properties: bytes) -> bytes:
    return frame(0x10, s(b"MQTT") + b"\x05\x02\x00\x3c" + properties + s(b"c"))


@pytest.mark.parametrize(
    ("properties", "reason", "why"),
    [
        (_props(SESSION_EXPIRY, SESSION_EXPIRY), PROTOCOL, "Session Expiry Interval twice"),
        (_props(b"\x21\x00\x00"), PROTOCOL, "Receive Maximum 0"),
        (_props(b"\x27\x00\x00\x00\x00"), PROTOCOL, "Maximum Packet Size 0"),
        (_props(b"\x17\x02"), PROTOCOL, "Request Problem Information 2"),
        (_props(b"\x19\x07"), PROTOCOL, "Request Response Information 7"),
        (_props(b"\x23\x00\x01"), MALFORMED, "Topic Alias in CONNECT"),
        (_props(b"\x18\x00\x00\x00\x01"), MALFORMED, "Will Delay Interval outside the will"),
        (_props(b"\xff\x01"), MALFORMED, "an identifier of two bytes"),
        (_props(b"\x16\x00\x01x"), PROTOCOL, "Authentication Data without a method"),
    ],
)
def test_bad_connect_properties_are_refused(
    properties: bytes, reason: ReasonCode, why: str
) -> None:
    assert refusal(Decoder(), _connect_5(properties)).reason == reason, why


def test_repeatable_properties_may_repeat() -> None:
    pairs = b"\x26" + s(b"k") + s(b"1") + b"\x26" + s(b"k") + s(b"2")
    wire = frame(0x30, s(b"t") + _props(pairs, b"\x0b\x01", b"\x0b\x02"))
    (packet,) = Decoder(version=MQTT_5, from_client=False).feed(wire)
    assert packet == Publish(
        "t",
        properties=Properties(
            user_properties=(("k", "1"), ("k", "2")), subscription_identifiers=(1, 2)
        ),
    )


def test_a_subscribe_carries_one_subscription_identifier_at_most() -> None:
    wire = frame(0x82, b"\x00\x01" + _props(b"\x0b\x01", b"\x0b\x02") + s(b"a") + b"\x00")
    assert refusal(connected(MQTT_5), wire).reason == PROTOCOL


@pytest.mark.parametrize(
    ("wire", "reason", "why"),
    [
        (frame(0x30, s(b"t")), PROTOCOL, "PUBLISH first [MQTT-3.1.0-1]"),
        (b"\xc0\x00", PROTOCOL, "PINGREQ first"),
        (b"\x11\x00", MALFORMED, "CONNECT flags 0001"),
        (b"\x00\x00", MALFORMED, "type 0 first"),
        (
            frame(0x10, connect_body(3, name=b"MQIsdp")),
            ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
            "3.1",
        ),
        (frame(0x10, connect_body(6)), ReasonCode.UNSUPPORTED_PROTOCOL_VERSION, "level 6"),
        (frame(0x10, connect_body(name=b"MQTX")), PROTOCOL, "protocol name [MQTT-3.1.2-1]"),
        (frame(0x10, connect_body(flags=0x03)), MALFORMED, "reserved flag [MQTT-3.1.2-3]"),
        (frame(0x10, connect_body(flags=0x1E)), MALFORMED, "will QoS 3 [MQTT-3.1.2-12]"),
        (frame(0x10, connect_body(flags=0x0A)), MALFORMED, "will QoS without will"),
        (frame(0x10, connect_body(flags=0x22)), MALFORMED, "will retain without will"),
        (frame(0x10, connect_body(flags=0x42)), MALFORMED, "3.1.1 password without user"),
        (frame(0x10, connect_body(flags=0x06)), MALFORMED, "will flag, no will fields"),
        (frame(0x10, connect_body() + b"\x00"), MALFORMED, "a byte after the payload"),
        (frame(0x10, connect_body()[:-1]), MALFORMED, "client identifier cut short"),
        (frame(0x10, s(b"MQTT")), MALFORMED, "no protocol level"),
    ],
)
def test_a_bad_first_packet_is_refused(wire: bytes, reason: ReasonCode, why: str) -> None:
    assert refusal(Decoder(), wire).reason == reason, why


def test_the_version_is_known_when_a_connect_body_is_refused() -> None:
    # The session answers a refused CONNECT in the client's version (CONNACK 0x81 in 5.0).
    decoder = Decoder()
    error = refusal(decoder, frame(0x10, connect_body(5, flags=0x03)))
    assert error.reason == MALFORMED
    assert decoder.version == MQTT_5


def test_5_0_allows_a_password_without_a_user_name() -> None:
    wire = frame(0x10, connect_body(5, flags=0x42) + s(b"pw"))
    (packet,) = Decoder().feed(wire)
    assert packet == Connect(MQTT_5, "c", keepalive=60, password=b"pw")


def test_a_refusal_keeps_the_packets_before_it_and_sticks() -> None:
    decoder = connected(MQTT_3_1_1)
    error = refusal(decoder, encode(Pingreq(), MQTT_3_1_1) + b"\x00\x00")
    assert error.packets == (Pingreq(),)
    again = refusal(decoder, encode(Pingreq(), MQTT_3_1_1))
    assert again.reason == MALFORMED
    assert again.packets == ()


def test_packet_size_is_refused_from_the_fixed_header_alone() -> None:
    decoder = connected(MQTT_5)
    decoder.maximum_packet_size = 1024 * 1024
    header = b"\x30" + encode_varint(200 * 1024 * 1024)  # a PUBLISH announcing 200 MB
    tracemalloc.start()
    try:
        error = refusal(decoder, header)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.reason == ReasonCode.PACKET_TOO_LARGE
    assert "209715205" in error.text
    assert peak < 64 * 1024


def test_the_maximum_counts_the_whole_packet() -> None:
    packet = encode(Publish("t", b"x" * 100), MQTT_3_1_1)
    at_limit = connected(MQTT_3_1_1)
    at_limit.maximum_packet_size = len(packet)
    assert at_limit.feed(packet) == [Publish("t", b"x" * 100)]
    over = connected(MQTT_3_1_1)
    over.maximum_packet_size = len(packet) - 1
    assert refusal(over, packet[:2]).reason == ReasonCode.PACKET_TOO_LARGE


def test_an_unauthenticated_connect_is_held_to_64_kib() -> None:
    header = b"\x10" + encode_varint(65_536)  # 65,539 bytes with its fixed header
    assert refusal(Decoder(), header).reason == ReasonCode.PACKET_TOO_LARGE
    roomy = Decoder(connect_maximum_packet_size=1 << 20)
    assert roomy.feed(header) == []


def test_a_body_is_buffered_as_it_arrives() -> None:
    decoder = connected(MQTT_3_1_1)
    packet = Publish("t", b"y" * 100_000)
    wire = encode(packet, MQTT_3_1_1)
    body, last = wire[:-1], wire[-1:]
    for start in range(0, len(body), 1000):
        assert decoder.feed(body[start : start + 1000]) == []
    assert decoder.feed(last) == [packet]


def test_a_client_may_not_send_a_subscription_identifier() -> None:
    wire = frame(0x30, s(b"t") + _props(b"\x0b\x01"))  # [MQTT-3.3.4-6]
    assert refusal(connected(MQTT_5), wire).reason == PROTOCOL
